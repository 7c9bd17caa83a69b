"""Weak messages made clear: an empty predictions list scored as AP 0, a video that gives no frame, boxes outside
the image, a boxes file for fewer images than given (each named, with what to do)."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest

from conftest import COCO_DIR, make_hf_model, require_shared, save_hf
from vitpose.cli import main
from vitpose.errors import VitPoseError
from vitpose.evaluation.metrics import EmptyPredictionsWarning, evaluate_predictions

ANNOTATIONS = COCO_DIR / "test_coco.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("robust_messages") / "model")


@pytest.fixture(scope="module")
def estimator(checkpoint):
    from vitpose.inference.estimator import PoseEstimator

    return PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image")


def test_empty_predictions_warn_before_scoring_zero(tmp_path):
    require_shared(ANNOTATIONS)
    with pytest.warns(EmptyPredictionsWarning, match=r"no predictions to score.*AP and AR is 0 against the 14"):
        metrics = evaluate_predictions(ANNOTATIONS, [])
    assert metrics["AP"] == 0.0
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.warns(EmptyPredictionsWarning, match=str(empty).replace(".", r"\.")):
        evaluate_predictions(ANNOTATIONS, empty)
    with pytest.warns(EmptyPredictionsWarning):
        evaluate_predictions(COCO_DIR / "test_coco_wholebody.json", [], "wholebody")


def test_eval_predictions_cli_warns_on_an_empty_file(tmp_path, capsys):
    require_shared(ANNOTATIONS)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert main(["eval", "--annotations", str(ANNOTATIONS), "--predictions", str(empty)]) == 0
    assert "no predictions to score" in capsys.readouterr().err


def test_eval_run_without_any_box_notes_why_ap_is_zero(checkpoint, tmp_path):
    require_shared(ANNOTATIONS)
    from vitpose.evaluation import evaluate

    detections = tmp_path / "dets.json"
    detections.write_text(json.dumps([{"image_id": 785, "bbox": [1, 1, 50, 80], "score": 0.1, "category_id": 1}]))
    report = evaluate(checkpoint, ANNOTATIONS, COCO_DIR, detections=detections, det_thr=0.5, device="cpu")
    assert report.metrics["AP"] == 0.0 and not report.predictions
    assert any("no pose was predicted" in note and "--det-thr" in note for note in report.notes)


def _empty_avi(path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    return path


def test_zero_frame_video_leaves_no_empty_jsonl(estimator, tmp_path):
    from vitpose.video import process_video

    video = _empty_avi(tmp_path / "empty.avi")
    with pytest.raises(VitPoseError, match=r"empty\.avi: no frame could be"):
        process_video(estimator, video, jsonl=tmp_path / "out.jsonl", progress=False)
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(VitPoseError, match=r"no frame could be read.*nothing was written"):
        process_video(estimator, [], jsonl=tmp_path / "arrays.jsonl", progress=False)
    assert not (tmp_path / "arrays.jsonl").exists()


def test_zero_frame_video_cli_is_one_error_naming_it(checkpoint, tmp_path, capsys):
    video = _empty_avi(tmp_path / "empty.avi")
    jsonl = tmp_path / "out" / "r.jsonl"
    code = main(["video", str(video), "--model", str(checkpoint), "--detector", "full-image", "--jsonl", str(jsonl)])
    err = capsys.readouterr().err
    assert code == 2 and f"{video}: no frame could be" in err and "Traceback" not in err
    assert not jsonl.exists()


def test_boxes_outside_the_image_warn_naming_image_and_box(estimator):
    image = np.full((100, 120, 3), 100, np.uint8)
    with pytest.warns(UserWarning, match=r"image 0: skipped 1 of 2 boxes .*box 1 \[500\.0, 500\.0, 10\.0, 10\.0\]"):
        result = estimator(image, boxes=[[10, 10, 40, 60], [500, 500, 10, 10]])
    assert result.boxes.tolist() == [[10, 10, 40, 60]]


def test_boxes_file_for_fewer_images_warns_up_front_naming_them(checkpoint, tmp_path, capsys):
    require_shared(COCO_DIR / "000000000785.jpg")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"file_name": "000000000785.jpg", "bbox": [100, 50, 200, 300], "score": 1}]))
    images = [str(COCO_DIR / "000000000785.jpg"), str(COCO_DIR / "000000040083.jpg")]
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        code = main(
            ["predict", *images, "--model", str(checkpoint), "--boxes", str(boxes), "--out", str(tmp_path / "o")]
        )
    err = capsys.readouterr().err
    assert code == 0
    line = next(line for line in err.splitlines() if "no entry for 1 of the 2 input images" in line)
    assert "000000040083.jpg" in line and "nobody" in line
