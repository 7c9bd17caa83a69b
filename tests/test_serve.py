"""`vitpose serve`: the HTTP service in-process (FastAPI's TestClient): the JSON, micro-batching, limits and errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import coco_images_and_boxes, make_hf_model, save_hf
from vitpose.errors import MissingDependencyError
from vitpose.inference.estimator import PoseEstimator
from vitpose.serve import create_app

pytest.importorskip("httpx")
TestClient = pytest.importorskip("fastapi.testclient").TestClient

PERSON_KEYS = ["bbox", "box_score", "score", "keypoints", "keypoint_scores"]


@pytest.fixture(scope="module")
def estimator(tmp_path_factory):
    checkpoint = save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")
    return PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image", batch_size=4)


@pytest.fixture(scope="module")
def data(coco_dir):
    return [(path, path.read_bytes(), boxes) for path, boxes in coco_images_and_boxes()]


@pytest.fixture
def make_client(estimator):
    apps = []

    def make(**kwargs):
        app = create_app(estimator, model_name="tiny", **kwargs)
        apps.append(app)
        return TestClient(app), app.state.batcher

    yield make
    for app in apps:
        app.state.batcher.close()


class Gate:
    """Wraps the batcher's model: every call waits until the gate opens (a worker blocked deterministically)."""

    def __init__(self, batcher):
        self.model, self.event = batcher.model, threading.Event()
        batcher.model = self

    def __call__(self, pixel_values, **kwargs):
        assert self.event.wait(10)
        return self.model(pixel_values, **kwargs)


def wait_for(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def pose(client, image, boxes=None, **fields):
    form = {k: str(v) for k, v in fields.items()}
    if boxes is not None:
        form["boxes"] = json.dumps(np.asarray(boxes).tolist())
    return client.post("/v1/pose", files={"image": ("a.jpg", image, "image/jpeg")}, data=form)


def assert_same(answer, expected):
    assert len(answer["people"]) == len(expected)
    got = np.array([p["keypoints"] for p in answer["people"]]).reshape(-1, expected.num_keypoints, 2)
    np.testing.assert_allclose(got, expected.keypoints, atol=1e-5, rtol=0)
    scores = np.array([p["keypoint_scores"] for p in answer["people"]]).reshape(expected.keypoint_scores.shape)
    np.testing.assert_allclose(scores, expected.keypoint_scores, atol=1e-5, rtol=0)


def test_pose_json_schema_and_keypoints_equal_predict(make_client, estimator, data):
    client, _ = make_client()
    path, image, boxes = data[0]
    response = pose(client, image, boxes)
    assert response.status_code == 200, response.text
    answer = response.json()
    keys = ["people", "skipped_boxes", "image_size", "model", "dataset", "keypoint_names", "timings"]
    assert list(answer) == keys and answer["skipped_boxes"] == []
    expected = estimator.predict([path], boxes=[boxes])[0]
    assert answer["image_size"] == list(expected.image_size) and answer["model"] == "tiny"
    assert answer["keypoint_names"] == list(expected.dataset.keypoint_names) and answer["dataset"] == "coco"
    assert set(answer["timings"]) == {"read_ms", "pose_ms", "total_ms"}
    assert all(list(person) == PERSON_KEYS for person in answer["people"])
    assert answer["people"][0]["bbox"] == pytest.approx(list(boxes[0]), abs=1e-4)
    assert_same(answer, expected)
    # A raw body, no boxes: the estimator's detector (here full-image) finds the person, as predict does.
    raw = client.post("/v1/pose?flip_test=true", content=image, headers={"content-type": "image/jpeg"})
    assert raw.status_code == 200, raw.text
    flipped = PoseEstimator(estimator.model, estimator.processor, "full-image", flip_test=True)
    assert_same(raw.json(), flipped.predict([path])[0])


def test_concurrent_requests_share_batches_and_each_gets_its_own_keypoints(make_client, estimator, data):
    client, batcher = make_client(max_batch=16, max_wait_ms=20)
    gate = Gate(batcher)
    jobs = [(path, image, boxes[:2]) for path, image, boxes in data]
    answers = [None] * len(jobs)

    def ask(i):
        answers[i] = pose(client, jobs[i][1], jobs[i][2])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    wait_for(lambda: batcher.submitted == len(jobs))  # every request's crops are queued; the worker is held
    gate.event.set()
    for t in threads:
        t.join(30)
    assert batcher.model_calls < len(jobs)
    assert max(batcher.batch_sizes) > 2  # crops of several requests in one network batch
    for (path, _, boxes), response in zip(jobs, answers, strict=True):
        assert response.status_code == 200, response.text
        assert_same(response.json(), estimator.predict([path], boxes=[boxes])[0])


def test_queue_full_is_503_with_retry_after_and_timeout_is_504(make_client, data):
    client, batcher = make_client(queue_size=2, timeout_s=5)
    gate = Gate(batcher)
    image, boxes = data[0][1], data[0][2][:1]
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(pose(client, image, boxes))) for _ in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: batcher.pending == 2)
    refused = pose(client, image, boxes)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["error"]
    not_read = client.post("/v1/pose", content=b"\xff" * (21 * 1024 * 1024))  # over --max-upload-mb 20
    assert not_read.status_code == 503  # refused before its upload is read (else 413)
    assert client.get("/readyz").status_code == 503
    gate.event.set()
    for t in threads:
        t.join(30)
    assert [a.status_code for a in answers] == [200, 200]
    assert client.get("/readyz").json() == {"ready": True, "pending": 0, "queue_size": 2}

    slow, slow_batcher = make_client(timeout_s=0.2)
    slow_gate = Gate(slow_batcher)
    late = pose(slow, image, boxes)
    assert late.status_code == 504 and "time limit" in late.json()["error"]
    slow_gate.event.set()


def test_bad_uploads_and_boxes(make_client, data, monkeypatch):
    client, _ = make_client(max_upload_mb=0.05)
    image = data[0][1][:40_000]  # a truncated JPEG
    broken = pose(client, image)
    assert broken.status_code == 400 and "truncated" in broken.json()["error"]
    text = pose(client, b"not an image at all")
    assert text.status_code == 400 and "not an image file" in text.json()["error"]
    empty = client.post("/v1/pose", content=b"")
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    big = pose(client, data[0][1])  # 130 KB > 0.05 MiB
    assert big.status_code == 413 and "limit" in big.json()["error"]
    whole = data[1][1]
    small_client, _ = make_client(max_pixels=1000)
    assert pose(small_client, whole).status_code == 413
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    monkeypatch.setenv("VITPOSE_MAX_IMAGE_PIXELS", "1000")  # no limit of the service's own: the reader's
    no_own_limit, _ = make_client(max_pixels=None)
    bomb = pose(no_own_limit, whole)
    assert bomb.status_code == 413 and "decompression-bomb limit" in bomb.json()["error"]
    for boxes in ("[[1, 2, 3]]", "nope", '{"a": 1}', "[[0, 0, -1, 5]]", '[[0, 0, "a", 5]]'):
        answer = client.post("/v1/pose", params={"boxes": boxes}, content=data[3][1][:10])
        assert answer.status_code == 422 and answer.json()["error"].startswith("boxes"), boxes
    bad_set = client.post("/v1/pose", params={"dataset": "nonexistent"}, content=b"x")
    assert bad_set.status_code == 422 and "nonexistent" in bad_set.json()["error"]
    assert client.post("/v1/pose", params={"flip_test": "maybe"}, content=b"x").status_code == 422


def test_api_key_model_health_and_openapi(make_client, data):
    client, _ = make_client(api_key="s3cret")
    assert client.get("/v1/model", headers={"x-api-key": "wrong"}).status_code == 401
    missing = client.post("/v1/pose", content=data[0][1])
    assert missing.status_code == 401 and "API key" in missing.json()["error"]
    model = client.get("/v1/model", headers={"authorization": "Bearer s3cret"})
    assert model.status_code == 200
    info = model.json()
    assert info["model"] == "tiny" and info["input_size"] == [192, 256] and info["datasets"] == ["coco"]
    assert len(info["keypoint_names"]) == 17 and [15, 13] in info["skeleton"]
    assert client.get("/healthz").json() == {"status": "ok"}
    schema = client.get("/openapi.json").json()
    responses = schema["paths"]["/v1/pose"]["post"]["responses"]
    assert {"200", "400", "401", "413", "422", "503", "504"} <= set(responses)
    assert "multipart/form-data" in schema["paths"]["/v1/pose"]["post"]["requestBody"]["content"]


def test_missing_extra_and_lazy_import(monkeypatch, capsys, estimator):
    import vitpose.serve

    monkeypatch.setattr(vitpose.serve, "_found", lambda name: False)
    with pytest.raises(MissingDependencyError, match=r'pip install "vitpose\[serve\]"'):
        vitpose.serve.create_app(estimator)
    from vitpose.cli import main

    assert main(["serve", "--model", "never-loaded"]) == 2
    assert "vitpose[serve]" in capsys.readouterr().err
    code = "import sys, vitpose, vitpose.cli; vitpose.cli.build_parser(); print('fastapi' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def metric_values(client):
    """{(name, labels...): value} of the /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return values


def test_metrics_count_requests_batches_crops_and_queue_depth(make_client, data):
    client, batcher = make_client(max_wait_ms=0)
    image, boxes = data[0][1], data[0][2]
    assert pose(client, image, np.repeat(boxes[:1], 3, axis=0)).status_code == 200
    assert pose(client, image, boxes[:1]).status_code == 200
    assert client.post("/v1/pose", params={"boxes": "nope"}, content=image).status_code == 422
    values = metric_values(client)
    ok = ("vitpose_requests_total", ("method", "POST"), ("path", "/v1/pose"), ("status", "200"))
    assert values[ok] == 2
    assert values[("vitpose_requests_total", ("method", "POST"), ("path", "/v1/pose"), ("status", "422"))] == 1
    assert values[("vitpose_request_seconds_count", ("path", "/v1/pose"))] == 3
    assert values[("vitpose_batch_size_count",)] == batcher.model_calls == 2
    assert values[("vitpose_batch_size_sum",)] == values[("vitpose_crops_total",)] == batcher.crops == 4
    assert values[("vitpose_batch_size_bucket", ("le", "1.0"))] == 1  # the one-box request ran alone
    assert values[("vitpose_crops_per_second",)] == pytest.approx(4 / 10)  # 4 crops in the last 10 s
    assert values[("vitpose_queue_depth",)] == 0 and values[("vitpose_queue_size",)] == 64
    # The metrics page itself, and an unknown path (one label for all of them), are counted too.
    assert client.get("/no/such/page").status_code == 404
    values = metric_values(client)
    assert values[("vitpose_requests_total", ("method", "GET"), ("path", "/metrics"), ("status", "200"))] == 1
    assert values[("vitpose_requests_total", ("method", "GET"), ("path", "other"), ("status", "404"))] == 1
    gate = Gate(batcher)
    held = threading.Thread(target=lambda: pose(client, image, boxes[:1]))
    held.start()
    wait_for(lambda: batcher.submitted == 3)
    assert metric_values(client)[("vitpose_queue_depth",)] == 1
    gate.event.set()
    held.join(30)


def test_annotated_image_answers(make_client, estimator, data):
    import cv2

    from vitpose.media import load_image

    client, _ = make_client()
    path, image, boxes = data[0]
    rgb = load_image(path)[0]
    expected = estimator.predict([path], boxes=[boxes])[0]
    for name, thr in (("png", None), ("png", 0.9)):
        fields = {"format": name} if thr is None else {"format": name, "kpt_thr": thr}
        response = pose(client, image, boxes, **fields)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.headers["x-people"] == str(len(expected))
        drawn = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        want = expected.draw(rgb, kpt_thr=0.3 if thr is None else thr)
        np.testing.assert_array_equal(drawn, want)  # PNG is lossless: the drawing of `vitpose predict`
        assert not np.array_equal(drawn, rgb)
    jpeg = pose(client, image, boxes, format="jpeg")
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(jpeg.content, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - expected.draw(rgb).astype(int)).mean() < 3
    bad = pose(client, image, boxes, format="gif")
    assert bad.status_code == 422 and "format" in bad.json()["error"]


def test_a_lone_request_does_not_wait_for_a_batch(make_client, data):
    # The worker waits for more crops only while other admitted requests have yet to give theirs: a lone
    # request with max_wait_ms of a minute is answered, not held until its 5 s time limit (504).
    client, batcher = make_client(max_wait_ms=60_000, timeout_s=5)
    response = pose(client, data[0][1], data[0][2][:1])
    assert response.status_code == 200, response.text
    assert batcher.batch_sizes == [1]


def test_given_boxes_that_fit_no_person_are_reported(make_client, estimator, data):
    client, _ = make_client()
    path, image, boxes = data[0]
    width = estimator.predict([path], boxes=[boxes])[0].image_size[0]
    given = [[width + 10, 5, 30, 30], boxes[0].tolist(), [0, 0, 150 * width, 40]]
    with pytest.warns(UserWarning, match="skipped 2 of 3 boxes"):
        answer = pose(client, image, given).json()
    assert len(answer["people"]) == 1
    assert answer["people"][0]["bbox"] == pytest.approx(given[1], abs=1e-4)
    assert [(s["index"], s["reason"]) for s in answer["skipped_boxes"]] == [
        (0, "outside the image"),
        (2, "over 100 times the image"),
    ]
    assert answer["skipped_boxes"][0]["bbox"] == given[0]


def test_options_in_query_and_form(make_client, estimator, data):
    client, _ = make_client()
    path, image, boxes = data[0]
    both = client.post(
        "/v1/pose",
        params={"boxes": json.dumps([[0, 0, 5, 5]])},
        files={"image": ("a.jpg", image, "image/jpeg")},
        data={"boxes": json.dumps(boxes[:1].tolist())},
    )
    assert both.status_code == 200  # a form field's value wins over the query's
    assert_same(both.json(), estimator.predict([path], boxes=[boxes[:1]])[0])
    bad_query = client.post(
        "/v1/pose", params={"kpt_thr": "2"}, files={"image": ("a.jpg", image)}, data={"kpt_thr": "0.5"}
    )
    assert bad_query.status_code == 422 and "kpt_thr" in bad_query.json()["error"]  # every value given is checked
    typo = client.post("/v1/pose", params={"flip-test": "true"}, content=image)
    assert typo.status_code == 422 and "unknown option 'flip-test'" in typo.json()["error"]
    twice = client.post("/v1/pose?flip_test=true&flip_test=false", content=image)
    assert twice.status_code == 422 and "twice" in twice.json()["error"]
    for params in ({"format": ""}, {"flip_test": "1"}, {"dataset": "0"}):
        assert client.post("/v1/pose", params=params, content=image).status_code == 422, params


def test_a_request_waiting_for_the_detector_stops_when_cancelled_or_late(make_client):
    from vitpose.serve.batching import RequestCancelled, RequestTimeout, Ticket

    client, batcher = make_client()
    detector = client.app.state.service._detector
    outcome = {}

    def wait_for_detector(ticket, key):
        try:
            with batcher.admit(ticket):
                detector([np.zeros((8, 8, 3), np.uint8)], ["x"])
        except (RequestCancelled, RequestTimeout) as err:
            outcome[key] = err

    with detector._lock:  # another request is detecting
        cancelled, late = Ticket(30), Ticket(0.2)
        threads = [
            threading.Thread(target=wait_for_detector, args=(cancelled, "cancelled")),
            threading.Thread(target=wait_for_detector, args=(late, "late")),
        ]
        for t in threads:
            t.start()
        wait_for(lambda: batcher.pending == 2)
        cancelled.cancel()
        for t in threads:
            t.join(10)
    assert isinstance(outcome["cancelled"], RequestCancelled)
    assert isinstance(outcome["late"], RequestTimeout)
    assert batcher.pending == 0


def test_serve_batch_size_is_max_batch():
    from vitpose.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["serve", "--model", "m", "--batch-size", "4"]).max_batch == 4
    assert parse(["serve", "--model", "m", "--max-batch", "8"]).max_batch == 8
    assert parse(["serve", "--model", "m"]).max_batch == 16
    assert parse(["serve", "--model", "m", "--keep-alive-s", "60"]).keep_alive_s == 60


def test_the_worker_starts_again_after_close_and_only_one_runs(estimator):
    import torch

    from vitpose.serve.batching import MicroBatcher

    batcher = MicroBatcher(estimator.model, max_wait_ms=0)
    first = batcher._thread
    batcher.close()
    assert not first.is_alive()
    batcher.open()
    second = batcher._thread
    assert second is not first and second.is_alive()
    with batcher.admit():
        out = batcher.run(torch.zeros(1, 3, 256, 192))
    assert out.heatmaps.shape[0] == 1 and batcher.model_calls == 1
    batcher.close()
    assert not second.is_alive()
