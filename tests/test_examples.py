"""examples/pose_from_boxes.py (the README's main job) on a real image with a local checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import ROOT, make_hf_model, save_hf


@pytest.mark.slow
def test_pose_from_boxes_example(tmp_path, coco_dir):
    save_hf(make_hf_model(), tmp_path / "model")
    image = coco_dir / "000000196141.jpg"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "pose_from_boxes.py"),
            str(image),
            "--boxes", "247.76,74.23,169.67,300.78;555.57,99.84,48.32,113.05",
            "--model", str(tmp_path / "model"),
            "--flip-test",
            "--out", str(tmp_path / "out.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    people = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(people) == 2 and people[0]["bbox"] == [247.76, 74.23, 169.67, 300.78]
    # One COCO name table for every checkpoint format (the data-set registry's, as COCO's own annotation files).
    assert [k["name"] for k in people[0]["keypoints"]][:3] == ["nose", "left_eye", "right_eye"]
    assert cv2.imread(str(tmp_path / "out.png")).shape == cv2.imread(str(image)).shape
    # The printed values are the Python API's for those boxes with the flip test (x, y to 0.01 px, scores to 1e-4).
    from PIL import Image

    from vitpose.inference.estimator import PoseEstimator

    rgb = np.asarray(Image.open(image).convert("RGB"))
    boxes = [[247.76, 74.23, 169.67, 300.78], [555.57, 99.84, 48.32, 113.05]]
    result = PoseEstimator.from_pretrained(tmp_path / "model", device="cpu", flip_test=True)(rgb, boxes=boxes)
    for i, person in enumerate(people):
        xy = np.array([[k["x"], k["y"]] for k in person["keypoints"]])
        np.testing.assert_allclose(xy, result.keypoints[i], rtol=0, atol=6e-3)
        np.testing.assert_allclose([k["score"] for k in person["keypoints"]], result.keypoint_scores[i], atol=6e-5)
    # out.png (lossless): a red dot (BGR 0, 0, 255) on every keypoint scored above 0.3, the image elsewhere.
    drawn = cv2.imread(str(tmp_path / "out.png"))[:, :, ::-1]
    shown = result.keypoint_scores > 0.3
    assert shown.any()
    for x, y in result.keypoints[shown]:
        assert tuple(drawn[int(y), int(x)]) == (255, 0, 0)
    assert 0 < (drawn != rgb).any(axis=-1).mean() < 0.05


@pytest.mark.slow
def test_pose_from_boxes_reports_a_missing_model(tmp_path, coco_dir):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pose_from_boxes.py"), str(coco_dir / "000000196141.jpg"),
         "--boxes", "1,2,3,4", "--model", str(tmp_path / "nothing")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr and "Traceback" not in proc.stderr
