"""`vitpose predict` on the shared COCO images with a small random-init checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from conftest import make_hf_model, save_hf
from vitpose.cli import main as cli_main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


def _check_coco_results(predictions: list, annotations) -> None:
    """The COCO keypoint results format: what pycocotools' loadRes accepts, with our file_name added."""
    from pycocotools.coco import COCO

    for entry in predictions:
        assert isinstance(entry["image_id"], int) and entry["category_id"] == 1
        assert len(entry["keypoints"]) == 17 * 3 and all(isinstance(v, float) for v in entry["keypoints"])
        assert isinstance(entry["score"], float) and len(entry["bbox"]) == 4 and entry["file_name"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = COCO(str(annotations))
        if predictions:
            assert len(gt.loadRes(predictions).getAnnIds()) == len(predictions)


@pytest.mark.slow
def test_predict_folder_with_detection_file(checkpoint, coco_dir, tmp_path):
    out = tmp_path / "out"
    code = cli_main([
        "predict", str(coco_dir), "--model", str(checkpoint), "--boxes", str(coco_dir / "test_coco_det_AP_H_56.json"),
        "--annotations", str(coco_dir / "test_coco.json"), "--det-thr", "0.0", "--device", "cpu", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    predictions = json.loads((out / "predictions.json").read_text())
    _check_coco_results(predictions, coco_dir / "test_coco.json")
    ids = {i["file_name"]: i["id"] for i in json.loads((coco_dir / "test_coco.json").read_text())["images"]}
    for name, image_id in ids.items():
        annotated = Image.open(out / name)
        assert annotated.size == Image.open(coco_dir / name).size  # image sizes match
        mine = [p for p in predictions if p["image_id"] == image_id]
        assert mine and all(p["file_name"].endswith(name) for p in mine)
    # Boxes come from the detection file (OKS-NMS may drop near-duplicates, never add).
    detections = json.loads((coco_dir / "test_coco_det_AP_H_56.json").read_text())
    det_boxes = np.array([d["bbox"] for d in detections], dtype=np.float64)
    assert 0 < len(predictions) <= len(detections)
    for p in predictions:
        assert np.isclose(det_boxes, np.asarray(p["bbox"]), atol=1e-3).all(axis=1).any(), p["bbox"]


def test_predict_files_globs_full_image_and_no_nms(checkpoint, coco_dir, tmp_path):
    out = tmp_path / "out"
    code = cli_main([
        "predict", str(coco_dir / "0000000007*.jpg"), str(coco_dir / "000000040083.jpg"), "--model", str(checkpoint),
        "--detector", "full-image", "--device", "cpu", "--batch-size", "1", "--flip-test", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(predictions) == 2 and sorted(p.name for p in out.iterdir()) == [
        "000000000785.jpg", "000000040083.jpg", "predictions.json",
    ]  # fmt: skip
    width, height = Image.open(coco_dir / "000000000785.jpg").size
    assert predictions[0]["bbox"] == [0.0, 0.0, float(width), float(height)]

    # The values are the Python API's (the same estimator, flip test on), in input order with image ids 1, 2 ...
    from vitpose.inference.estimator import PoseEstimator
    from vitpose.media import load_image

    estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image", flip_test=True)
    for position, name in enumerate(["000000000785.jpg", "000000040083.jpg"]):
        rgb, _ = load_image(coco_dir / name)
        result = estimator(rgb)
        entry = predictions[position]
        assert entry["image_id"] == position + 1 and entry["file_name"].endswith(name)
        assert entry["bbox"] == [0.0, 0.0, float(rgb.shape[1]), float(rgb.shape[0])]
        flat = np.asarray(entry["keypoints"]).reshape(17, 3)
        np.testing.assert_allclose(flat[:, :2], result.keypoints[0], atol=1e-3)  # written with 3 decimals
        np.testing.assert_allclose(flat[:, 2], result.keypoint_scores[0], atol=1e-3)
        assert entry["score"] == pytest.approx(float(result.scores[0]), abs=1e-3)
        # The annotated image is the input with this result drawn on it (kpt_thr 0.3), JPEG-encoded: where the
        # drawing changed pixels, the file is much nearer to the drawing than to the input.
        drawn = result.draw(rgb, kpt_thr=0.3).astype(np.int16)
        written = np.asarray(Image.open(out / name).convert("RGB")).astype(np.int16)
        assert written.shape == rgb.shape
        changed = np.abs(drawn - rgb).max(axis=-1) > 60
        assert changed.sum() > 500  # the full-image box alone is a frame of this many pixels
        to_drawing = np.abs(written - drawn)[changed].mean()
        to_input = np.abs(written - rgb.astype(np.int16))[changed].mean()
        assert to_drawing < 0.25 * to_input, (to_drawing, to_input)
        assert np.abs(written - drawn).mean() < 4  # elsewhere: the input, up to JPEG noise


def test_predict_reports_bad_files_and_goes_on(checkpoint, coco_dir, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(coco_dir / "000000000785.jpg", inputs / "good.jpg")
    (inputs / "empty.jpg").write_bytes(b"")
    (inputs / "truncated.jpg").write_bytes((coco_dir / "000000040083.jpg").read_bytes()[:3000])
    (inputs / "text.png").write_text("hello")
    out = tmp_path / "out"
    code = cli_main(["predict", str(inputs), str(tmp_path / "missing.jpg"), "--model", str(checkpoint),
                     "--detector", "full-image", "--device", "cpu", "--out", str(out)])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "empty.jpg: empty file" in err and "truncated.jpg: cannot decode" in err
    assert "text.png: not an image file" in err and "missing.jpg: no such file or folder" in err
    assert "4 input(s) failed" in err
    assert (out / "good.jpg").is_file()
    assert len(json.loads((out / "predictions.json").read_text())) == 1


def test_predict_decodes_each_image_once(checkpoint, coco_dir, tmp_path, capsys, monkeypatch):
    """predict draws on the image as it was decoded for the network: each input is read and decoded exactly once
    (not again to draw on it), and the annotated copy is the drawing of the results on that decoded image."""
    import collections

    import vitpose.inference.estimator as estimator_module
    import vitpose.media
    from vitpose.visualization import draw_poses

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("000000000785.jpg", "000000040083.jpg", "000000196141.jpg"):
        shutil.copy(coco_dir / name, inputs / name)
    real = vitpose.media.load_image
    reads: collections.Counter[str] = collections.Counter()

    def counted(source):
        reads[str(source)] += 1
        return real(source)

    monkeypatch.setattr(estimator_module, "load_image", counted)
    monkeypatch.setattr(vitpose.media, "load_image", counted)
    out = tmp_path / "out"
    code = cli_main(["predict", str(inputs), "--model", str(checkpoint), "--detector", "full-image",
                     "--device", "cpu", "--out", str(out), "--kpt-thr", "0"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert sorted(reads.values()) == [1, 1, 1] and len(reads) == 3
    import cv2

    predictions = json.loads((out / "predictions.json").read_text())
    for name in ("000000000785.jpg", "000000196141.jpg"):
        mine = [p for p in predictions if p["file_name"] == str(inputs / name)]
        rgb, _ = real(inputs / name)
        xy = np.array([np.reshape(p["keypoints"], (-1, 3))[:, :2] for p in mine])
        scores = np.array([np.reshape(p["keypoints"], (-1, 3))[:, 2] for p in mine])
        want = draw_poses(rgb, xy, scores, kpt_thr=0)
        got = cv2.cvtColor(cv2.imread(str(out / name)), cv2.COLOR_BGR2RGB)
        # The written copy is a JPEG of the drawing: close to it, far from the undrawn image.
        assert np.abs(got.astype(int) - want).mean() < np.abs(got.astype(int) - rgb).mean()


def test_predict_folder_without_images(checkpoint, tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.txt").write_text("no images here")
    code = cli_main(["predict", str(tmp_path / "nothing"), "--model", str(checkpoint), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "nothing: folder holds no images" in err and "no image to process" in err


@pytest.mark.slow
def test_predict_bad_model_is_one_line(tmp_path, coco_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "vitpose.cli", "predict", str(coco_dir / "000000000785.jpg"), "--model",
         str(tmp_path / "nope"), "--detector", "full-image", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "vitpose predict: error: no such file or directory" in proc.stderr


@pytest.mark.slow
def test_predict_with_hog_detector_and_images_without_people(checkpoint, coco_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main(["predict", str(coco_dir), "--model", str(checkpoint), "--detector", "hog", "--device", "cpu",
                     "--annotations", str(coco_dir / "test_coco.json"), "--out", str(out)])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    # The HOG quality warning is one plain line, not Python's "file:line: UserWarning" form.
    assert "vitpose predict: warning: the HOG person detector is weak" in err and "UserWarning" not in err
    predictions = json.loads((out / "predictions.json").read_text())
    _check_coco_results(predictions, coco_dir / "test_coco.json")
    # Every input has its annotated image, including those where HOG found nobody.
    names = sorted(p.name for p in coco_dir.glob("*.jpg"))
    assert sorted(p.name for p in out.glob("*.jpg")) == names
    from vitpose.detectors import HOGDetector

    found = [len(d) for d in HOGDetector()([np.asarray(Image.open(coco_dir / n).convert("RGB")) for n in names])]
    assert 0 in found  # the case this test is about: an image with no detection among others
    assert len(predictions) <= sum(found)
