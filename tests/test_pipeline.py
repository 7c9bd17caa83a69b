"""PoseEstimator and PoseResult: batching across images, boxes, rescoring, OKS-NMS, COCO output, bad files."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import coco_annotations, coco_images_and_boxes, make_hf_model, save_hf
from vitpose import VitPoseForPoseEstimation, VitPoseImageProcessor
from vitpose.errors import ImageReadError
from vitpose.inference.estimator import PoseEstimator
from vitpose.inference.results import PoseResult, instance_scores
from vitpose.media import FailedImage, expand_inputs, load_image


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture(scope="module")
def estimator(checkpoint):
    return PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image", batch_size=4)


def test_given_boxes_round_trip_and_match_the_transformers_api(estimator, checkpoint, coco_dir):
    data = coco_images_and_boxes()
    results = estimator.predict([p for p, _ in data], boxes=[b for _, b in data])
    processor = VitPoseImageProcessor.from_pretrained(checkpoint)
    model = VitPoseForPoseEstimation.from_pretrained(checkpoint)
    for (path, boxes), result in zip(data, results, strict=True):
        image = Image.open(path)
        assert result.image_size == image.size and result.file_name == str(path)
        assert len(result) == len(boxes) and result.boxes.dtype == np.float32
        assert np.allclose(result.boxes, boxes, atol=1e-4)  # boxes round-trip, one pose per given box
        assert np.all(result.box_scores == 1)
        # The same numbers as the transformers-style API on the same boxes.
        inputs = processor(image, boxes=[boxes])
        with torch.no_grad():
            outputs = model(**inputs)
        people = processor.post_process_pose_estimation(outputs, boxes=[boxes])[0]
        expected = np.stack([p["keypoints"].numpy() for p in people])
        assert np.allclose(result.keypoints, expected, atol=1e-3)
        assert np.allclose(result.keypoint_scores, np.stack([p["scores"].numpy() for p in people]), atol=1e-5)


def test_batching_across_images_equals_one_image_at_a_time(checkpoint, coco_dir):
    data = coco_images_and_boxes()
    paths, boxes = [p for p, _ in data], [b for _, b in data]
    # Batches of 3 crops: crops of different images share batches; one image at a time as the reference.
    batched = PoseEstimator.from_pretrained(checkpoint, device="cpu", batch_size=3).predict(paths, boxes=boxes)
    single = PoseEstimator.from_pretrained(checkpoint, device="cpu", batch_size=64)
    assert [len(b) for b in boxes] == [1, 3, 5, 5]  # different numbers of people per image
    for path, b, result in zip(paths, boxes, batched, strict=True):
        alone = single(str(path), boxes=b)
        assert np.allclose(result.keypoints, alone.keypoints, atol=1e-4)
        assert np.allclose(result.keypoint_scores, alone.keypoint_scores, atol=1e-6)


def test_three_lines_with_a_detector(checkpoint, coco_dir):
    estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image")
    result = estimator(str(coco_dir / "000000000785.jpg"))
    assert isinstance(result, PoseResult) and len(result) == 1
    width, height = Image.open(coco_dir / "000000000785.jpg").size
    assert np.allclose(result.boxes[0], [0, 0, width, height])


def test_images_without_people_mixed_with_others(checkpoint, coco_dir):
    data = coco_images_and_boxes()
    paths = [p for p, _ in data]
    boxes = [b for _, b in data]
    boxes[1] = []  # an image with no person, between images with people
    estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", batch_size=2)
    results = estimator.predict(paths, boxes=boxes)
    assert [len(r) for r in results] == [len(b) for b in boxes]
    empty = results[1]
    assert empty.keypoints.shape == (0, 17, 2) and empty.keypoint_scores.shape == (0, 17)
    assert empty.to_coco(image_id=7) == [] and empty.to_dict()["instances"] == []
    assert np.array_equal(empty.draw(), np.asarray(Image.open(paths[1]).convert("RGB")))  # nothing drawn
    alone = estimator(str(paths[2]), boxes=boxes[2])
    assert np.allclose(results[2].keypoints, alone.keypoints, atol=1e-4)


def test_image_forms_and_single_vs_list(estimator, coco_dir):
    path = coco_dir / "000000196141.jpg"
    boxes = coco_images_and_boxes()[2][1]
    ref = estimator(str(path), boxes=boxes)
    pil = Image.open(path)
    for form in (pil, np.asarray(pil.convert("RGB")), path):
        other = estimator(form, boxes=boxes)
        assert np.allclose(other.keypoints, ref.keypoints, atol=1e-4)
    listed = estimator([str(path)], boxes=[boxes])
    assert isinstance(listed, list) and np.allclose(listed[0].keypoints, ref.keypoints)


def test_instance_score_is_the_original_rescoring():
    box = np.array([0.5, 1.0, 0.8])
    kpts = np.array([[0.1, 0.3, 0.5], [0.19, 0.2, 0.1], [0.9, 0.9, 0.21]])
    # Mean of the scores above 0.2 (strictly), times the box score; none above -> 0.
    assert np.allclose(instance_scores(box, kpts), [0.5 * 0.4, 0.0, 0.8 * (0.9 + 0.9 + 0.21) / 3])
    # The threshold is rescore_thr, the estimator's name (the old `threshold=` still works for one release).
    assert np.allclose(instance_scores(box, kpts, rescore_thr=0.4), [0.5 * 0.5, 0.0, 0.8 * 0.9])
    with pytest.deprecated_call(match="use rescore_thr="):
        assert np.allclose(instance_scores(box, kpts, threshold=0.4), [0.5 * 0.5, 0.0, 0.8 * 0.9])


class _FixedDetector:
    def __init__(self, boxes, scores):
        self.boxes, self.scores, self.calls = np.asarray(boxes, float), np.asarray(scores, float), 0

    def __call__(self, images, names=None):
        from vitpose.detectors import Detections

        self.calls += 1
        return [
            Detections(self.boxes.astype(np.float32), self.scores.astype(np.float32), np.zeros(len(self.boxes), int))
            for _ in images
        ]


def test_oks_nms_drops_duplicate_detections(checkpoint, coco_dir):
    box = [247.76, 74.23, 169.67, 300.78]
    far = [555.57, 99.84, 48.32, 113.05]
    detector = _FixedDetector([box, box, far], [0.9, 0.8, 0.7])
    estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector=detector)
    result = estimator(str(coco_dir / "000000196141.jpg"))
    assert len(result) == 2 and result.extra["suppressed"] == 1
    assert np.allclose(result.boxes, [box, far]) and np.allclose(result.box_scores, [0.9, 0.7])
    no_nms = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector=detector, nms_thr=None)
    assert len(no_nms(str(coco_dir / "000000196141.jpg"))) == 3
    # Boxes given by the caller are kept one for one.
    assert len(estimator(str(coco_dir / "000000196141.jpg"), boxes=[box, box])) == 2


def test_to_coco_is_loadable_by_pycocotools(estimator, coco_dir, tmp_path):
    from pycocotools.coco import COCO

    ann = coco_annotations()
    ids = {image["file_name"]: image["id"] for image in ann["images"]}
    data = coco_images_and_boxes()
    predictions = []
    for result in estimator.predict([p for p, _ in data], boxes=[b for _, b in data]):
        predictions.extend(result.to_coco(image_id=ids[result.file_name.rsplit("/", 1)[-1]]))
    assert len(predictions) == 14
    entry = predictions[0]
    assert set(entry) == {"image_id", "category_id", "keypoints", "score", "bbox", "file_name"}
    assert len(entry["keypoints"]) == 51 and entry["category_id"] == 1
    path = tmp_path / "results.json"
    path.write_text(json.dumps(predictions))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = COCO(str(coco_dir / "test_coco.json"))
        dt = gt.loadRes(str(path))
    assert len(dt.getAnnIds()) == 14
    without_id = estimator(str(data[0][0]), boxes=data[0][1])
    with pytest.raises(ValueError, match="image_id"):
        without_id.to_coco()


def test_to_supervision_and_draw(estimator, coco_dir):
    sv = pytest.importorskip("supervision")
    path, boxes = coco_images_and_boxes()[0]
    result = estimator(str(path), boxes=boxes)
    keypoints = result.to_supervision()
    assert isinstance(keypoints, sv.KeyPoints) and keypoints.xy.shape == (1, 17, 2)
    # The values, not only the shapes: supervision gets our keypoints and scores as they are, one class.
    np.testing.assert_array_equal(keypoints.xy, result.keypoints)
    np.testing.assert_array_equal(keypoints.confidence, result.keypoint_scores)
    np.testing.assert_array_equal(keypoints.class_id, np.zeros(1, dtype=int))
    rgb = np.asarray(Image.open(path).convert("RGB"))
    drawn = result.draw(rgb, kpt_thr=0.0)
    assert drawn.shape == rgb.shape and np.any(drawn != rgb)
    # The last keypoint is drawn on top of everything else: its centre pixel has its palette colour.
    x, y = result.keypoints[0, -1]
    assert tuple(int(v) for v in drawn[round(float(y)), round(float(x))]) == result.dataset.keypoint_colors[-1]
    # With every score at or below the threshold (the test is strict) and no boxes, nothing is drawn.
    no_points = result.draw(rgb, kpt_thr=float(result.keypoint_scores.max()), draw_boxes=False)
    np.testing.assert_array_equal(no_points, rgb)
    assert np.array_equal(result.draw(kpt_thr=0.0), drawn)  # no image: the result's own file is read again
    from_array = estimator(rgb, boxes=boxes)
    assert from_array.file_name is None and np.allclose(from_array.keypoints, result.keypoints)
    with pytest.raises(ValueError, match="pass the image"):
        from_array.draw()


def test_vitpose_plus_dataset_selection(tmp_path, coco_dir):
    from test_checkpoints import ASSOCIATE, _original_checkpoint, make_vit_s

    path, _ = _original_checkpoint(tmp_path, make_vit_s(num_experts=6), ASSOCIATE)
    boxes = coco_images_and_boxes()[0][1]
    image = str(coco_images_and_boxes()[0][0])
    aic = PoseEstimator.from_pretrained(path, device="cpu", dataset="aic")(image, boxes=boxes)
    assert aic.keypoints.shape == (1, 14, 2) and aic.dataset.name == "aic"
    wholebody = PoseEstimator.from_pretrained(path, device="cpu", dataset=5)(image, boxes=boxes)
    assert wholebody.keypoints.shape == (1, 133, 2) and wholebody.dataset.name == "wholebody"
    with pytest.raises(ValueError, match=r"valid indices are 0\.\.5"):
        PoseEstimator.from_pretrained(path, device="cpu", dataset=6)


def test_dense_model_dataset_declares_its_layout(checkpoint, tmp_path, coco_dir):
    with pytest.raises(ValueError, match="'mpii' has 16 keypoints but this single-data-set model predicts 17"):
        PoseEstimator.from_pretrained(checkpoint, device="cpu", dataset="mpii")
    # A 16-keypoint model declared as MPII: MPII's names, skeleton and flip pairs (the flip test needs them).
    mpii_ckpt = save_hf(make_hf_model(num_labels=16), tmp_path / "mpii")
    estimator = PoseEstimator.from_pretrained(mpii_ckpt, device="cpu", dataset="mpii", flip_test=True)
    assert estimator.dataset.name == "mpii" and estimator.dataset.keypoint_names[9] == "head_top"
    path, boxes = coco_images_and_boxes()[0]
    result = estimator(str(path), boxes=boxes)
    model = estimator.model
    crops = estimator.processor(Image.open(path), boxes=[boxes]).pixel_values
    with torch.no_grad():
        plain = model(crops).heatmaps
        mirrored = model(crops.flip(-1)).heatmaps.flip(-1)[:, estimator.dataset.flip_indices]
    expected, _ = estimator.codec.decode((plain + mirrored) / 2, *_center_scale(boxes))
    assert np.allclose(result.keypoints, expected, atol=1e-3)
    with pytest.raises(ValueError, match="left/right keypoint pairs"):  # without the layout, no pairs to flip
        PoseEstimator.from_pretrained(mpii_ckpt, device="cpu", flip_test=True)(str(path), boxes=boxes)


def _center_scale(boxes):
    from vitpose.ops.geometry import box_to_center_scale

    return box_to_center_scale(np.asarray(boxes, np.float64), input_size=(192, 256), padding=1.25)


# ---------------------------------------------------------------------------------------------- bad files
def test_unreadable_inputs_are_reported(tmp_path, coco_dir, estimator):
    good = coco_dir / "000000000785.jpg"
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:5000])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ImageReadError, match=r"empty.jpg: empty file"):
        load_image(empty)
    with pytest.raises(ImageReadError, match=r"truncated.jpg: cannot decode the image.*truncated"):
        load_image(truncated)
    with pytest.raises(ImageReadError, match=r"notes.jpg: not an image file"):
        load_image(text)
    with pytest.raises(ImageReadError, match="no such file"):
        load_image(tmp_path / "missing.jpg")

    outputs = list(estimator.iter_predict([good, truncated, empty, text, good], errors="report"))
    assert [type(o).__name__ for o in outputs] == [
        "PoseResult",
        "FailedImage",
        "FailedImage",
        "FailedImage",
        "PoseResult",
    ]
    assert isinstance(outputs[1], FailedImage) and "truncated" in outputs[1].reason
    with pytest.raises(ImageReadError):
        estimator.predict([good, empty])


def test_expand_inputs(tmp_path, coco_dir):
    (tmp_path / "empty_folder").mkdir()
    paths, missing = expand_inputs([str(coco_dir), str(tmp_path / "empty_folder"), str(tmp_path / "nope.jpg"),
                                    str(coco_dir / "*.jpg"), str(tmp_path / "*.png")])  # fmt: skip
    assert len(paths) == 8 and all(p.endswith(".jpg") for p in paths)
    reasons = {m.source.rsplit("/", 1)[-1]: m.reason for m in missing}
    assert "holds no images" in reasons["empty_folder"] and "no such file" in reasons["nope.jpg"]
    assert "matches no file" in reasons["*.png"]


def test_detector_threshold_is_now_det_thr(checkpoint):
    with pytest.warns(DeprecationWarning, match=r"detector_threshold=\.\.\.\) is deprecated: use det_thr="):
        old = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image", detector_threshold=0.5)
    assert old.det_thr == 0.5
    with pytest.warns(DeprecationWarning, match=r"PoseEstimator\.detector_threshold is deprecated"):
        assert old.detector_threshold == 0.5
    assert PoseEstimator.from_pretrained(checkpoint, device="cpu", det_thr=0.6).det_thr == 0.6


def test_a_detector_that_cannot_work_stops_the_run_while_a_bad_input_is_reported(estimator, coco_dir):
    """Bug 1 in the library: a DetectorError (now a ValueError, as every VitPoseError) was taken for a complaint
    about one input and reported per image, so `--detector rtdetr` offline ended with exit 1, not one error."""
    from vitpose.detectors import BoxesDetector, DetectorError

    class Unavailable:
        def __call__(self, images, names=None):
            raise DetectorError("no weights")

    images = [str(coco_dir / "000000000785.jpg"), str(coco_dir / "000000040083.jpg")]
    broken = PoseEstimator(estimator.model, estimator.processor, Unavailable())
    with pytest.raises(DetectorError, match="no weights"):
        list(broken.iter_predict(images, errors="report"))
    # A complaint about one input (an image the boxes' annotations do not list) is still reported, the rest go on.
    boxes = BoxesDetector({"000000000785.jpg": [[10, 10, 50, 80]]}, image_names=["000000000785.jpg"])
    results = list(PoseEstimator(estimator.model, estimator.processor, boxes).iter_predict(images, errors="report"))
    assert len(results[0]) == 1 and isinstance(results[1], FailedImage) and "no boxes" in results[1].reason


def test_estimator_rejects_what_is_not_a_pose_model_or_detector(estimator):
    from vitpose.errors import DetectorError, VitPoseError
    from vitpose.inference.backends import PoseModel, check_pose_model

    assert isinstance(estimator.model, PoseModel) and check_pose_model(estimator.model) is estimator.model
    with pytest.raises(VitPoseError, match=r"cannot serve as the pose model: it lacks __call__.*config"):
        PoseEstimator(object())
    with pytest.raises(VitPoseError, match="config must be a vitpose VitPoseConfig"):

        class Impostor(torch.nn.Module):
            config = "coco"
            is_moe = False
            device = torch.device("cpu")
            dtype = torch.float32

        PoseEstimator(Impostor())
    with pytest.raises(DetectorError, match="cannot be called as detector"):
        PoseEstimator(estimator.model, estimator.processor, detector=lambda images: [])
