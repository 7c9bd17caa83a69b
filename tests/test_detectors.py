"""The person detectors: RT-DETR against transformers' own decoding (tiny random checkpoints, no download), HOG on
real COCO people, user boxes from COCO detection files, the full-image box, and `build_detector`."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vitpose.detectors.build as build_module
from conftest import coco_images_and_boxes, make_tiny_rtdetr
from vitpose.detectors import (
    ANIMAL_LABELS,
    DETECTOR_NAMES,
    BoxesDetector,
    BoxesFileError,
    Detections,
    DetectorError,
    FullImageDetector,
    HOGDetector,
    PersonDetector,
    RTDetrDetector,
    SkippedBoxesWarning,
    UnknownImageError,
    build_detector,
    check_images,
    nms_xywh,
    skip_degenerate_boxes,
)

# COCO's 80 detection categories in the contiguous 0-79 order of the RT-DETR COCO checkpoints' id2label
# (transformers converts them with huggingface/label-files coco-detection-mmdet-id2label.json).
COCO80 = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter "
    "bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee "
    "skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle "
    "wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake "
    "chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven "
    "toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
).split()
COCO_ID2LABEL = {i: name.replace("_", " ") for i, name in enumerate(COCO80)}
COCO_ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe")
DET_FILE = "test_coco_det_AP_H_56.json"
ANN_FILE = "test_coco.json"


def _images(seed: int = 1) -> list[np.ndarray]:
    """Four RGB uint8 images of different sizes, with some structure (gradients plus noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in ((200, 300), (120, 90), (333, 500), (64, 64)):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=-1)
        out.append(np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8))
    return out


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------- Detections and inputs
def test_detections_validate_and_convert():
    d = Detections([[1, 2, 3, 4]], [0.5], [0])
    assert d.boxes.dtype == np.float32 and d.scores.dtype == np.float32 and d.labels.dtype == np.int64
    assert len(d) == 1 and d.xyxy.tolist() == [[1, 2, 4, 6]]
    empty = Detections.empty()
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and empty.scores.shape == (0,)
    with pytest.raises(ValueError, match=r"box 1 .*width or height <= 0"):
        Detections([[0, 0, 1, 1], [0, 0, 0, 5]], [1, 1], [0, 0])
    with pytest.raises(ValueError, match="not finite"):
        Detections([[0, 0, np.nan, 1]], [1], [0])
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        Detections([[0, 0, 1]], [1], [0])
    with pytest.raises(ValueError, match=r"scores must have shape \(2,\)"):
        Detections([[0, 0, 1, 1], [0, 0, 2, 2]], [1], [0, 0])
    with pytest.raises(ValueError, match="integers"):
        Detections([[0, 0, 1, 1]], [1], [0.5])


def test_detections_from_detector_drops_degenerate_boxes():
    d = Detections.from_detector(
        [[0, 0, 5, 5], [1, 1, 0, 3], [1, 1, 3, -1], [np.inf, 0, 1, 1], [2, 2, 4, 4]],
        [0.9, 0.8, 0.7, 0.6, np.nan],
        [0, 0, 0, 0, 0],
    )
    assert d.boxes.tolist() == [[0, 0, 5, 5]] and d.scores.tolist() == [pytest.approx(0.9)]


def test_check_images_errors():
    image = np.zeros((10, 20, 3), np.uint8)
    with pytest.raises(TypeError, match=r"pass \[image\]"):
        check_images(image)
    with pytest.raises(ValueError, match=r"image 1 .*\(H, W, 3\)"):
        check_images([image, np.zeros((10, 20), np.uint8)])
    with pytest.raises(ValueError, match="image 0 is a float32"):
        check_images([image.astype(np.float32)])
    with pytest.raises(TypeError, match="image 0 is a Image"):
        check_images([Image.new("RGB", (4, 4))])
    with pytest.raises(ValueError, match="one name"):
        check_images([image, image], ["a.jpg"])
    assert check_images([image], None)[1] == [None]


def test_every_detector_is_a_person_detector():
    from vitpose.detectors import check_detector

    for detector in (FullImageDetector(), BoxesDetector([[[0, 0, 1, 1]]]), _quiet(HOGDetector)):
        assert isinstance(detector, PersonDetector) and check_detector(detector) is detector
    # The check rejects what cannot be called as detector(images, names): the protocol alone would not.
    assert not isinstance(object(), PersonDetector)
    with pytest.raises(DetectorError, match="not a person detector"):
        check_detector("hog detector object".split())
    with pytest.raises(DetectorError, match=r"cannot be called as detector\(images, names\)"):
        check_detector(lambda images: [])
    with pytest.raises(DetectorError, match="cannot be called"):
        check_detector(lambda images, names, threshold: [])
    fn = lambda images, names=None: []  # noqa: E731
    assert check_detector(fn) is fn  # a plain callable of the right signature is passed through as it is


# --------------------------------------------------------------------------- RT-DETR
@pytest.fixture(scope="module")
def rtdetr_dirs(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("transformers")
    base = tmp_path_factory.mktemp("rtdetr")
    specs = {
        "person": {"person_bias": 10.0, "id2label": COCO_ID2LABEL},
        "random": {"person_bias": None},
        "car": {"person_bias": None, "label_biases": {2: 10.0}, "id2label": COCO_ID2LABEL},
        "cat": {"person_bias": None, "label_biases": {15: 10.0}, "id2label": COCO_ID2LABEL},
        # a DETR-like 91-id label space, where person is 1: the default person label 0 is someone else's
        "shifted": {"person_bias": 10.0, "id2label": {0: "N/A", **{i + 1: n for i, n in COCO_ID2LABEL.items()}}},
    }
    out = {}
    for name, kwargs in specs.items():
        if name == "shifted":
            kwargs["id2label"] = {k: v for k, v in kwargs["id2label"].items() if k < 80}
        out[name] = make_tiny_rtdetr(base / name, **kwargs)
    return out


def _oracle(directory: Path, images: list[np.ndarray], threshold: float) -> list[tuple[np.ndarray, ...]]:
    """transformers' own RT-DETR pipeline, one image at a time: (xywh boxes, scores, labels) per image."""
    from transformers import AutoImageProcessor, RTDetrForObjectDetection

    processor = AutoImageProcessor.from_pretrained(directory)
    model = _quiet(RTDetrForObjectDetection.from_pretrained, directory).eval()
    out = []
    for image in images:
        inputs = processor(images=Image.fromarray(image), return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        result = processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=[image.shape[:2]])
        xyxy = result[0]["boxes"].numpy()
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        out.append((xywh, result[0]["scores"].numpy(), result[0]["labels"].numpy()))
    return out


def _canonical(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows sorted by label and box, so that near-tied scores ordered differently compare equal."""
    order = np.lexsort((np.round(boxes[:, 3], 2), np.round(boxes[:, 1], 2), np.round(boxes[:, 0], 2), labels))
    return boxes[order], scores[order], labels[order]


def _assert_same(ours: Detections, expected: tuple[np.ndarray, ...], atol: float = 1e-3) -> None:
    assert len(ours) == len(expected[0])
    got = _canonical(ours.boxes, ours.scores, ours.labels)
    want = _canonical(*expected)
    np.testing.assert_allclose(got[0], want[0], atol=atol)
    np.testing.assert_allclose(got[1], want[1], atol=1e-4)
    np.testing.assert_array_equal(got[2], want[2])


@pytest.mark.slow
def test_rtdetr_person_boxes_equal_transformers(rtdetr_dirs):
    images = _images()
    detector = RTDetrDetector(str(rtdetr_dirs["person"]), device="cpu")
    found = detector(images)
    expected = _oracle(rtdetr_dirs["person"], images, 0.3)
    assert len(found) == len(images)
    for ours, want, image in zip(found, expected, images, strict=True):
        assert len(ours) == 6 and set(ours.labels.tolist()) == {0}  # every query a person
        _assert_same(ours, want)
        # boxes are in this image's pixels: the tiny model's boxes scale with the image
        assert ours.boxes[:, 2].max() < image.shape[1] and ours.boxes[:, 3].max() < image.shape[0]
    # the same normalised boxes in images of different sizes: widths scale with the image width
    np.testing.assert_allclose(
        np.sort(found[0].boxes[:, 2]) / 300, np.sort(found[2].boxes[:, 2]) / 500, rtol=1e-3, atol=1e-3
    )


@pytest.mark.slow
def test_rtdetr_random_model_all_labels_equal_transformers(rtdetr_dirs):
    images = _images(seed=2)
    detector = RTDetrDetector(str(rtdetr_dirs["random"]), det_thr=0.0, labels=range(80), device="cpu")
    for ours, want in zip(detector(images), _oracle(rtdetr_dirs["random"], images, 0.0), strict=True):
        _assert_same(ours, want)
    # only the requested labels are kept: the oracle's, filtered
    wanted = sorted({int(label) for _, _, labels in _oracle(rtdetr_dirs["random"], images, 0.0) for label in labels})
    subset = tuple(wanted[::2])
    detector = RTDetrDetector(str(rtdetr_dirs["random"]), det_thr=0.0, labels=subset, device="cpu")
    for ours, (boxes, scores, labels) in zip(
        detector(images), _oracle(rtdetr_dirs["random"], images, 0.0), strict=True
    ):
        keep = np.isin(labels, subset)
        assert set(ours.labels.tolist()) <= set(subset)
        _assert_same(ours, (boxes[keep], scores[keep], labels[keep]))


@pytest.mark.slow
def test_rtdetr_threshold(rtdetr_dirs):
    images = _images(seed=3)
    all_scores = np.concatenate([s for _, s, _ in _oracle(rtdetr_dirs["random"], images, 0.0)])
    threshold = float(np.median(all_scores))
    assert 0 < (all_scores > threshold).sum() < len(all_scores)  # the threshold does cut
    detector = RTDetrDetector(str(rtdetr_dirs["random"]), det_thr=threshold, labels=range(80), device="cpu")
    found = detector(images)
    assert sum(len(d) for d in found) == int((all_scores > threshold).sum())
    assert all((d.scores > threshold).all() for d in found)
    for ours, want in zip(found, _oracle(rtdetr_dirs["random"], images, threshold), strict=True):
        _assert_same(ours, want)


@pytest.mark.slow
def test_rtdetr_batches_equal_one_at_a_time(rtdetr_dirs):
    images = _images(seed=4) + _images(seed=5)[:2]
    batched = RTDetrDetector(str(rtdetr_dirs["random"]), det_thr=0.0, labels=range(80), batch_size=4)(images)
    single = RTDetrDetector(str(rtdetr_dirs["random"]), det_thr=0.0, labels=range(80), batch_size=1)
    for image, ours in zip(images, batched, strict=True):
        (alone,) = single([image])
        _assert_same(ours, (alone.boxes, alone.scores, alone.labels), atol=1e-3)
    assert RTDetrDetector(str(rtdetr_dirs["random"]))([]) == []


def test_rtdetr_keeps_only_requested_labels(rtdetr_dirs):
    images = _images()[:2]
    # every query is a car (label 2): nobody for the person detector, everything when cars are asked for
    assert [len(d) for d in RTDetrDetector(str(rtdetr_dirs["car"]))(images)] == [0, 0]
    cars = RTDetrDetector(str(rtdetr_dirs["car"]), labels=(0, 2))(images)
    assert [len(d) for d in cars] == [6, 6] and all(set(d.labels.tolist()) == {2} for d in cars)


def test_rtdetr_for_animals(rtdetr_dirs):
    assert ANIMAL_LABELS == tuple(range(14, 24))
    assert tuple(COCO_ID2LABEL[i] for i in ANIMAL_LABELS) == COCO_ANIMALS
    images = _images()[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checkpoint's names agree with the animal labels: no warning
        animals = RTDetrDetector.for_animals(model=str(rtdetr_dirs["cat"]), det_thr=0.5)
    assert animals.labels == ANIMAL_LABELS and animals.det_thr == 0.5
    found = animals(images)
    assert [len(d) for d in found] == [6, 6] and all(set(d.labels.tolist()) == {15} for d in found)  # cats
    assert [len(d) for d in RTDetrDetector(str(rtdetr_dirs["cat"]))(images)] == [0, 0]
    assert [len(d) for d in RTDetrDetector.for_animals(model=str(rtdetr_dirs["person"]))(images)] == [0, 0]
    with pytest.raises(TypeError, match="for_animals sets labels"):
        RTDetrDetector.for_animals(model=str(rtdetr_dirs["cat"]), labels=(0,))


def test_rtdetr_warns_when_label_zero_is_not_person(rtdetr_dirs):
    with pytest.warns(UserWarning, match=r"label 0 is 'N/A', not 'person'.*'person' is 1"):
        RTDetrDetector(str(rtdetr_dirs["shifted"]))
    with pytest.warns(UserWarning, match=r"label 14 is 'bench', not 'bird'"):
        RTDetrDetector.for_animals(model=str(rtdetr_dirs["shifted"]))


def test_rtdetr_argument_errors(rtdetr_dirs):
    model = str(rtdetr_dirs["person"])
    with pytest.raises(ValueError, match=r"labels \[80\] are not in .*0\.\.79"):
        RTDetrDetector(model, labels=(0, 80))
    with pytest.raises(ValueError, match="det_thr"):
        RTDetrDetector(model, det_thr=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        RTDetrDetector(model, batch_size=0)
    with pytest.raises(ValueError, match="labels must be"):
        RTDetrDetector(model, labels=())
    with pytest.raises(ValueError, match="invalid device"):
        RTDetrDetector(model, device="tpu:x")
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        RTDetrDetector(model)([np.zeros((10, 10), np.uint8)])


def test_rtdetr_without_weights_says_what_to_do(tmp_path):
    pytest.importorskip("transformers")
    missing = tmp_path / "no_such_model"
    with pytest.raises(DetectorError, match=r"no_such_model.*neither a local directory nor a hub id") as info:
        RTDetrDetector(str(missing))
    assert "--detector hog" in str(info.value) and "--boxes" in str(info.value)
    # a hub id that is not in the cache, without asking the hub
    with pytest.raises(DetectorError, match=r"'nobody/not-a-model'.*--detector hog.*full-image.*--boxes"):
        RTDetrDetector("nobody/not-a-model", local_files_only=True, cache_dir=str(tmp_path / "empty_cache"))
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(DetectorError, match="empty_dir"):
        RTDetrDetector(str(empty))


def test_rtdetr_without_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r'pip install "vitpose\[detector\]"'):
        RTDetrDetector("PekingU/rtdetr_r50vd_coco_o365")


# --------------------------------------------------------------------------- HOG
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_hog_on_coco_people(coco_dir):
    with pytest.warns(UserWarning, match=r"weak.*vitpose\[detector\]"):
        detector = HOGDetector()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's usual rule: once per place of the call
        for _ in range(3):
            HOGDetector()
    assert len([w for w in caught if "weak" in str(w.message)]) == 1

    pairs = coco_images_and_boxes()
    images = [np.asarray(Image.open(path).convert("RGB")) for path, _ in pairs]
    found = detector(images, [path.name for path, _ in pairs])
    assert len(found) == len(images)
    best = []
    for image, detections, (_, truth) in zip(images, found, pairs, strict=True):
        h, w = image.shape[:2]
        b = detections.boxes
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
        assert (b[:, 0] + b[:, 2] <= w + 1e-3).all() and (b[:, 1] + b[:, 3] <= h + 1e-3).all()
        assert ((detections.scores > 0) & (detections.scores < 1)).all()
        assert (detections.labels == 0).all()
        for i in range(len(b)):
            for j in range(i):
                assert _iou(b[i], b[j]) <= 0.5 + 1e-6  # suppressed overlaps
            best.append(max(_iou(b[i], t) for t in truth))
    assert sum(len(d) for d in found) >= 2
    assert max(best) > 0.6  # a real person found with a box close to the annotated one


def test_hog_finds_nobody_in_blank_or_tiny_images():
    detector = _quiet(HOGDetector)
    found = detector([np.full((240, 320, 3), 128, np.uint8), np.zeros((20, 10, 3), np.uint8)])
    assert [len(d) for d in found] == [0, 0]


class _FakeHOG:
    """Stands in for cv2.HOGDescriptor: fixed windows (in the upscaled image's pixels) and SVM margins."""

    def __init__(self, rects, weights):
        self.rects, self.weights, self.shapes = rects, weights, []

    def detectMultiScale(self, image, **kwargs):
        self.shapes.append(image.shape)
        return np.array(self.rects, np.int32).reshape(-1, 4), np.array(self.weights, np.float64)


def test_hog_scores_scaling_tightening_and_suppression():
    detector = _quiet(HOGDetector)
    fake = _FakeHOG(
        rects=[[80, 40, 64, 128], [84, 44, 64, 128], [400, 200, 96, 192], [920, 560, 64, 128]],
        weights=[2.0, 1.0, -1.0, 0.5],
    )
    detector._hog = fake
    (found,) = detector([np.zeros((320, 480, 3), np.uint8)])
    assert fake.shapes == [(640, 960, 3)]  # 480 -> 960: upscaled 2x
    # window 1 suppressed by window 0 (IoU 0.78); window 2 tightened then halved; window 3 clipped to the image
    expected = np.array(
        [
            [(80 + 8) / 2, (40 + 16) / 2, 48 / 2, 96 / 2],
            [(920 + 8) / 2, (560 + 16) / 2, 480 - (920 + 8) / 2, 320 - (560 + 16) / 2],  # 24 x 48 cut to 16 x 32
            [(400 + 12) / 2, (200 + 24) / 2, 72 / 2, 144 / 2],
        ]
    )
    np.testing.assert_allclose(found.boxes, expected, atol=1e-4)
    np.testing.assert_allclose(found.scores, 1 / (1 + np.exp(-np.array([2.0, 0.5, -1.0]))), atol=1e-6)

    strict = _quiet(HOGDetector, det_thr=0.5, upscale_small=False, tighten=False, nms_thr=0.95)
    strict._hog = _FakeHOG(rects=[[10, 10, 64, 128], [12, 12, 64, 128], [200, 0, 64, 128]], weights=[0.2, 0.1, -0.1])
    (found,) = strict([np.zeros((320, 480, 3), np.uint8)])
    assert strict._hog.shapes == [(320, 480, 3)]
    np.testing.assert_allclose(found.boxes, [[10, 10, 64, 128], [12, 12, 64, 128]])  # IoU 0.91 kept; score < .5 out


def test_nms_xywh():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10.5]])
    scores = np.array([0.5, 0.9, 0.3, 0.4])
    # box 1 first; box 0 overlaps it with IoU 81/119 = 0.68 and box 3 with 85.5/124.5 = 0.69: both suppressed
    assert nms_xywh(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms_xywh(boxes, scores, 0.685).tolist() == [1, 0, 2]
    assert nms_xywh(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_hog_argument_errors():
    with pytest.raises(ValueError, match="win_stride"):
        _quiet(HOGDetector, win_stride=(6, 8))
    with pytest.raises(ValueError, match="scale"):
        _quiet(HOGDetector, scale=1.0)
    with pytest.raises(ValueError, match="det_thr"):
        _quiet(HOGDetector, det_thr=1.0)


def test_hog_without_opencv_hog(monkeypatch):
    import cv2

    monkeypatch.delattr(cv2, "HOGDescriptor")
    with pytest.raises(DetectorError, match=r"no HOGDescriptor.*OpenCV 5.*opencv-python-headless<5"):
        HOGDetector()


# --------------------------------------------------------------------------- user boxes
def _coco_entries(coco_dir: Path) -> tuple[list[dict], dict[int, str]]:
    entries = json.loads((coco_dir / DET_FILE).read_text())
    images = json.loads((coco_dir / ANN_FILE).read_text())["images"]
    return entries, {image["id"]: image["file_name"] for image in images}


def test_boxes_from_coco_detections_by_image_id(coco_dir):
    entries, names = _coco_entries(coco_dir)
    assert len(entries) == 118
    detector = BoxesDetector.from_json(coco_dir / DET_FILE, annotations=coco_dir / ANN_FILE)
    order = list(names.values())
    images = [np.zeros((8, 8, 3), np.uint8)] * len(order)
    found = detector(images, [f"/somewhere/else/{name}" for name in order])
    total = 0
    for name, detections in zip(order, found, strict=True):
        mine = [e for e in entries if names[e["image_id"]] == name]
        assert len(detections) == len(mine) > 0
        np.testing.assert_allclose(detections.boxes, np.array([e["bbox"] for e in mine]), rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(detections.scores, [e["score"] for e in mine], rtol=1e-6)
        assert (detections.labels == 1).all()
        total += len(detections)
    assert total == 118

    threshold = 0.5
    strict = BoxesDetector.from_json(coco_dir / DET_FILE, coco_dir / ANN_FILE, det_thr=threshold)
    kept = strict(images, order)
    for name, detections in zip(order, kept, strict=True):
        want = [e["score"] for e in entries if names[e["image_id"]] == name and e["score"] >= threshold]
        np.testing.assert_allclose(detections.scores, want, rtol=1e-6)
    assert 0 < sum(len(d) for d in kept) < 118


def test_boxes_image_not_in_annotations_raises_naming_it(coco_dir, tmp_path):
    detector = BoxesDetector.from_json(coco_dir / DET_FILE, annotations=coco_dir / ANN_FILE)
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(UnknownImageError, match=r"holiday\.jpg.*not among the 4 images") as info:
        detector([image, image], ["000000000785.jpg", "photos/holiday.jpg"])
    assert isinstance(info.value, ValueError)  # a complaint about one input, which the pipeline reports and skips
    # an image the annotations list but the detections never mention: nobody found
    annotations = json.loads((coco_dir / ANN_FILE).read_text())
    annotations["images"].append({"id": 5, "file_name": "empty.jpg", "height": 8, "width": 8})
    (tmp_path / "ann.json").write_text(json.dumps(annotations))
    detector = BoxesDetector.from_json(coco_dir / DET_FILE, annotations=tmp_path / "ann.json")
    (found,) = detector([image], ["empty.jpg"])
    assert len(found) == 0


def test_boxes_by_file_name_match_basenames(tmp_path):
    entries = [
        {"file_name": "val/a.jpg", "bbox": [1, 2, 3, 4], "score": 0.9, "category_id": 1},
        {"file_name": "val/a.jpg", "bbox": [5, 6, 7, 8], "score": 0.2, "category_id": 1},
        {"file_name": "b.jpg", "bbox": [0, 0, 9, 9], "score": 0.8, "category_id": 3},
        {"file_name": "C:\\data\\c.jpg", "bbox": [1, 1, 2, 2], "score": 0.1},
    ]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(entries))
    image = np.zeros((8, 8, 3), np.uint8)
    detector = BoxesDetector.from_json(path)
    a, b, c, other = detector([image] * 4, ["/x/y/a.jpg", "b.jpg", "c.jpg", "unmentioned.jpg"])
    assert a.boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]] and a.scores.tolist() == pytest.approx([0.9, 0.2])
    assert len(b) == 0  # category 3 is not a person
    assert c.boxes.tolist() == [[1, 1, 2, 2]] and c.labels.tolist() == [1]  # no category_id: a person
    assert len(other) == 0  # not mentioned: the detector found nobody
    everything = BoxesDetector.from_json(path, category_ids=None, det_thr=0.5)
    a, b = everything([image, image], ["a.jpg", "b.jpg"])
    assert a.boxes.tolist() == [[1, 2, 3, 4]] and b.labels.tolist() == [3]
    with pytest.raises(ValueError, match="image 0 has no name"):
        detector([image])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"images": [], "annotations": []}', r"expected a JSON list .*COCO annotations file"),
        ("[1, 2]", r"entry 0 is a int"),
        ('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, {"image_id": 1, "score": 1}]', r"entry 1 has no 'bbox'"),
        ('[{"file_name": "a.jpg", "bbox": [0, 0, 5], "score": 1}]', r"entry 0: bbox must be a list of 4"),
        ('[{"file_name": "a.jpg", "bbox": [0, 0, 5, 5], "score": "high"}]', r"entry 0: score must be"),
        ('[{"file_name": "a.jpg", "bbox": [0, 0, 5, 5]}, {"image_id": 3, "bbox": [0, 0, 5, 5]}]', r"entry 1 .*"),
        ('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]', r"by image_id only.*--annotations"),
        ("[{'image_id': 1}", r"is not JSON"),
        ("", r"is not JSON"),
    ],
)
def test_boxes_malformed_files(tmp_path, content, message):
    path = tmp_path / "dets.json"
    path.write_text(content)
    with pytest.raises(BoxesFileError, match=message) as info:
        BoxesDetector.from_json(path)
    assert str(path) in str(info.value)


def test_boxes_annotation_problems(tmp_path, coco_dir):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": 99, "bbox": [0, 0, 1, 1], "score": 1}]))
    with pytest.raises(BoxesFileError, match="image_id 99 is not among the images"):
        BoxesDetector.from_json(path, annotations=coco_dir / ANN_FILE)
    bad = tmp_path / "ann.json"
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "a/x.jpg"}, {"id": 2, "file_name": "b/x.jpg"}]}))
    with pytest.raises(BoxesFileError, match=r"share the file name 'x\.jpg'"):
        BoxesDetector.from_json(path, annotations=bad)
    with pytest.raises(BoxesFileError, match="not found"):
        BoxesDetector.from_json(tmp_path / "missing.json")


def test_boxes_given_directly():
    image = np.zeros((8, 8, 3), np.uint8)
    by_name = BoxesDetector(
        {"dir/a.jpg": [[1, 2, 3, 4]], "b.jpg": np.zeros((0, 4))}, scores={"dir/a.jpg": [0.7], "b.jpg": []}
    )
    a, b = by_name([image, image], ["a.jpg", "b.jpg"])
    assert a.boxes.tolist() == [[1, 2, 3, 4]] and a.scores.tolist() == pytest.approx([0.7]) and len(b) == 0

    by_position = BoxesDetector([[[0, 0, 2, 2]], [[1, 1, 3, 3], [2, 2, 4, 4]], [5, 5, 1, 1]])
    first = by_position([image])
    rest = by_position([image, image])
    assert [len(d) for d in first + rest] == [1, 2, 1] and rest[1].boxes.tolist() == [[5, 5, 1, 1]]
    assert (rest[0].scores == 1).all()
    with pytest.raises(ValueError, match=r"for 3 images by position.*reset\(\)"):
        by_position([image])
    by_position.reset()
    assert by_position([image])[0].boxes.tolist() == [[0, 0, 2, 2]]

    with pytest.raises(BoxesFileError, match=r"image 1: box 0 .*height -1(\.0)? <= 0"):
        BoxesDetector([[[0, 0, 1, 1]], [[0, 0, 1, -1]]])
    with pytest.raises(BoxesFileError, match=r"shape \(n, 4\)"):
        BoxesDetector([[[0, 0, 1]]])
    with pytest.raises(BoxesFileError, match="1 boxes but 2 scores"):
        BoxesDetector([[[0, 0, 1, 1]]], scores=[[0.5, 0.5]])
    with pytest.raises(TypeError, match=r"got ndarray of shape \(2, 4\)"):
        BoxesDetector(np.zeros((2, 4)))


def test_full_image_detector():
    images = [np.zeros((30, 40, 3), np.uint8), np.zeros((7, 5, 3), np.uint8)]
    found = FullImageDetector()(images)
    assert [d.boxes.tolist() for d in found] == [[[0, 0, 40, 30]], [[0, 0, 5, 7]]]
    assert [d.scores.tolist() for d in found] == [[1.0], [1.0]]


# --------------------------------------------------------------------------- build_detector
def test_build_each_name(rtdetr_dirs):
    assert isinstance(build_detector("full-image"), FullImageDetector)
    assert isinstance(build_detector("FULL_IMAGE"), FullImageDetector)
    hog = _quiet(build_detector, "hog", det_thr=0.6)
    assert isinstance(hog, HOGDetector) and hog.det_thr == 0.6
    rt = build_detector("rtdetr", model=str(rtdetr_dirs["person"]), det_thr=0.4, device="cpu")
    assert isinstance(rt, RTDetrDetector) and rt.det_thr == 0.4 and rt.labels == (0,)
    animals = build_detector("rtdetr", model=str(rtdetr_dirs["cat"]), animals=True)
    assert animals.labels == ANIMAL_LABELS
    with pytest.raises(ValueError, match="only finds upright people"):
        build_detector("hog", animals=True)
    with pytest.raises(ValueError, match=r"unknown detector 'yolo': choose one of auto, rtdetr, hog, full-image"):
        build_detector("yolo")
    assert DETECTOR_NAMES == ("auto", "rtdetr", "hog", "full-image")


def test_build_auto_uses_rtdetr_when_it_loads(rtdetr_dirs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector = build_detector("auto", model=str(rtdetr_dirs["person"]))
    assert isinstance(detector, RTDetrDetector)


def test_build_auto_without_transformers_falls_back_to_hog(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.warns(UserWarning, match=r"RT-DETR was not used because transformers is not installed"):
        detector = build_detector("auto")
    assert isinstance(detector, HOGDetector)
    with pytest.warns(UserWarning, match=r"not used because transformers.*full-image"):
        assert isinstance(build_detector("auto", animals=True), FullImageDetector)
    with pytest.raises(ImportError, match="vitpose"):
        build_detector("rtdetr")


def test_build_auto_without_weights_falls_back_to_hog(monkeypatch, tmp_path):
    pytest.importorskip("transformers")
    monkeypatch.setattr(build_module, "hub_reachable", lambda timeout=3.0: False)
    with pytest.warns(UserWarning, match=r"'nobody/not-a-model' are not in the Hugging Face cache.*hub cannot"):
        detector = build_detector("auto", model="nobody/not-a-model", cache_dir=str(tmp_path))
    assert isinstance(detector, HOGDetector)
    # weights that fail to load: the loading error is the reason
    with pytest.warns(UserWarning, match=r"not used because could not load .*no_model_here"):
        assert isinstance(build_detector("auto", model=str(tmp_path / "no_model_here")), HOGDetector)


def test_build_auto_with_nothing_available(monkeypatch):
    import cv2

    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delattr(cv2, "HOGDescriptor")
    with pytest.raises(DetectorError, match=r"no person detector is available: RT-DETR: transformers .*HOG: .*"):
        build_detector("auto")


def test_boxes_file_skips_boxes_that_cannot_hold_a_person(tmp_path):
    """Bug 7: one policy for --boxes and eval --detections: skipped, and one warning names the entries and why."""
    good = {"file_name": "a.jpg", "bbox": [1, 2, 30, 40], "score": 0.8}
    bad = [[0, 0, 0, 5], [0, 0, 5, -1], [float("nan"), 0, 5, 5], [0, 0, float("inf"), 5]] + [[0, 0, -1, 1]] * 3
    entries = [good] + [{"file_name": "a.jpg", "bbox": box, "score": 0.9} for box in bad]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(entries))
    with pytest.warns(SkippedBoxesWarning) as caught:
        detector = BoxesDetector.from_json(path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"{path}: skipped 7 of 8 detections whose box cannot hold a person: ")
    assert "entry 1 [0, 0, 0, 5] has width 0 <= 0, entry 2 [0, 0, 5, -1] has height -1 <= 0" in message
    assert "entry 3 [nan, 0, 5, 5] is not finite, entry 4 [0, 0, inf, 5] is not finite" in message
    assert "entry 5 [0, 0, -1, 1] has width -1 <= 0, and 2 more" in message and "entry 6" not in message
    assert caught[0].filename == __file__  # reported at the caller of from_json
    found = detector([np.zeros((50, 50, 3), np.uint8)], ["a.jpg"])[0]
    assert found.boxes.tolist() == [[1, 2, 30, 40]] and found.scores.tolist() == pytest.approx([0.8])
    # The policy itself: flags in file order; nothing to say, no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert skip_degenerate_boxes([[0, 0, 1, 1], [2, 2, 3, 3]], "f.json") == [True, True]
    with pytest.warns(SkippedBoxesWarning, match=r"f\.json: skipped 1 of 2 .*entry 1 \[0, 0, 1, 0\] has height"):
        assert skip_degenerate_boxes([[0, 0, 1, 1], [0, 0, 1, 0]], "f.json") == [True, False]
    # Boxes given in Python (not a file) are still checked strictly: a wrong array is a bug of the caller.
    with pytest.raises(BoxesFileError, match=r"box 0 \[0\.0, 0\.0, 0\.0, 5\.0\] has width 0\.0 <= 0"):
        BoxesDetector([[[0, 0, 0, 5]]])


def test_old_threshold_names_work_for_one_release_with_a_warning(coco_dir, rtdetr_dirs):
    with pytest.warns(DeprecationWarning, match=r"min_score=\.\.\.\) is deprecated: use det_thr="):
        hog = HOGDetector(min_score=0.6, nms_iou=0.4, hit_threshold=0.1)
    assert (hog.det_thr, hog.nms_thr, hog.hit_thr) == (0.6, 0.4, 0.1)
    with pytest.warns(DeprecationWarning, match=r"HOGDetector\.min_score is deprecated: use \.det_thr"):
        assert hog.min_score == 0.6
    with pytest.raises(TypeError, match="both min_score= and det_thr="):
        _quiet(HOGDetector, min_score=0.6, det_thr=0.5)
    with pytest.warns(DeprecationWarning, match="score_threshold"):
        strict = BoxesDetector.from_json(coco_dir / DET_FILE, coco_dir / ANN_FILE, score_threshold=0.5)
    assert repr(strict) == repr(BoxesDetector.from_json(coco_dir / DET_FILE, coco_dir / ANN_FILE, det_thr=0.5))
    with pytest.warns(DeprecationWarning, match="iou_threshold"):
        kept = nms_xywh(np.array([[0, 0, 10, 10], [1, 1, 10, 10]]), np.array([0.9, 0.8]), iou_threshold=0.5)
    assert kept.tolist() == [0]
    with pytest.warns(DeprecationWarning, match=r"build_detector\(threshold=\.\.\.\)"):
        rt = build_detector("rtdetr", model=str(rtdetr_dirs["person"]), threshold=0.4, device="cpu")
    assert rt.det_thr == 0.4
    with pytest.warns(DeprecationWarning, match=r"RTDetrDetector\.threshold is deprecated"):
        assert rt.threshold == 0.4


def test_build_detector_passes_det_thr_to_hog_too():
    hog = _quiet(build_detector, "hog", det_thr=0.7)
    assert hog.det_thr == 0.7
    assert _quiet(build_detector, "hog").det_thr == 0.0  # None: HOG's own default
