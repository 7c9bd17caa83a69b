"""Ray Data stages (`vitpose.integrations.ray`) on a local Ray bound to 127.0.0.1: the same keypoints as the local
path, bad files reported in their rows, and no socket outside the loopback interface."""

from __future__ import annotations

import json
import os

import pytest

from conftest import assert_same_results, coco_images_and_boxes, make_hf_model, save_hf
from vitpose.inference.estimator import PoseEstimator
from vitpose.integrations.ray import LOCAL_RAY_ENV

# Ray's own settings, read when ray is imported (the session's `local_ray` fixture in conftest.py starts it).
os.environ.update(LOCAL_RAY_ENV)

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.slow
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


def local_predictions(checkpoint, paths, detector):
    estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector=detector)
    out = {}
    for position, (path, result) in enumerate(zip(paths, estimator.iter_predict(paths, errors="report"), strict=True)):
        if hasattr(result, "to_coco"):
            out[str(path)] = result.to_coco(image_id=position + 1)
    return out


@pytest.mark.parametrize("detector", ["full-image", "hog"])
def test_stages_give_the_local_keypoints_and_report_bad_files(local_ray, checkpoint, coco_dir, tmp_path, detector):
    from vitpose.integrations.ray import predict_dataset

    paths = [str(path) for path, _ in coco_images_and_boxes()]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    inputs = [*paths[:2], str(broken), *paths[2:]]
    rows = predict_dataset(inputs, str(checkpoint), detector=detector, images_per_batch=2).take_all()
    by_path = {row["path"]: row for row in rows}
    assert sorted(by_path) == sorted(inputs)  # one row per input: none dropped, none doubled
    assert "not an image file" in by_path[str(broken)]["error"] and by_path[str(broken)]["predictions"] is None
    want = local_predictions(checkpoint, inputs, detector)
    assert set(want) == set(paths)
    for path in paths:
        row = by_path[path]
        assert not row["error"]
        assert_same_results(json.loads(row["predictions"]), want[path], allow_empty=True)


def test_ray_listens_on_loopback_only(local_ray):
    addresses = set()
    for process in psutil.process_iter(["cmdline"]):
        if "ray" not in " ".join(process.info["cmdline"] or []):
            continue
        try:
            connections = process.net_connections(kind="inet")
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        addresses |= {c.laddr.ip for c in connections}
    assert addresses, "no Ray sockets found"
    assert addresses <= LOOPBACK, addresses
