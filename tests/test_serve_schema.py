"""`vitpose serve` fuzzed from its own OpenAPI schema with schemathesis (in-process, ASGI).

Every operation gets schema-valid requests (real images: JPEG and PNG bodies and uploads; valid box lists) and
schema-violating ones; each answer must be one the schema documents (status, content type, body), valid requests
must be accepted and invalid ones refused, and nothing may answer 500. The budget is hypothesis' `vitpose` profile
(tests/conftest.py): 25 derandomised examples per operation, VITPOSE_FUZZ_EXAMPLES=N for more.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_hf_model, save_hf
from vitpose.inference.estimator import PoseEstimator

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
st = pytest.importorskip("hypothesis.strategies")

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]


@st.composite
def images(draw, suffix: str) -> bytes:
    """A real image file: random pixels of a random size, encoded as `suffix`."""
    import cv2

    height = draw(st.integers(8, 96))
    width = draw(st.integers(8, 96))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(suffix, pixels)
    assert ok
    return encoded.tobytes()


finite = st.floats(-500, 500, allow_nan=False, allow_infinity=False)
side = st.floats(0.5, 500, allow_nan=False, allow_infinity=False)
boxes = st.lists(st.tuples(finite, finite, side, side).map(list), max_size=3).map(json.dumps)

schemathesis.openapi.format("coco-boxes", boxes)
schemathesis.openapi.media_type("image/jpeg", images(".jpg"))
schemathesis.openapi.media_type("image/png", images(".png"))
schemathesis.openapi.media_type("application/octet-stream", images(".png"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from vitpose.serve import create_app

    checkpoint = save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")
    estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image", batch_size=4)
    app = create_app(estimator, model_name="tiny", max_upload_mb=1)
    yield app
    app.state.batcher.close()


OPERATIONS = ["POST /v1/pose", "GET /v1/model", "GET /healthz", "GET /readyz", "GET /metrics"]


CASES = [(label, "positive") for label in OPERATIONS] + [("POST /v1/pose", "negative")]  # others take no input


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_every_answer_is_documented_and_never_500(app, label, mode):
    from hypothesis import given

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = {op.ok().label: op.ok() for op in schema.get_all_operations()}
    assert set(operations) == set(OPERATIONS)  # nothing served is left out of the schema, nothing extra
    strategy = operations[label].as_strategy(generation_mode=schemathesis.GenerationMode(mode))
    statuses = []

    @given(case=strategy)
    def check(case):
        response = case.call_and_validate()
        statuses.append(response.status_code)
        assert response.status_code != 500

    check()
    assert statuses
    if label == "POST /v1/pose" and mode == "positive":
        assert 200 in statuses  # real images and valid options were accepted, not only refused


def test_schema_lists_every_status_the_pose_endpoint_answers(app):
    documented = set(app.openapi()["paths"]["/v1/pose"]["post"]["responses"])
    assert {"200", "400", "401", "413", "422", "503", "504"} <= documented
