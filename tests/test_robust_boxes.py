"""Robustness of boxes: matching a boxes file's entries to the input images, NaN / inf / huge / outside boxes, and
hostile JSON shapes through every reader of boxes, annotations and results (property-based, marker `fuzz`).

Every case ends in one of three ways: a result, a skip with a warning, or a `VitPoseError` naming the input; never
another exception, and never NaN in the JSON written."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import COCO_DIR, make_hf_model, require_shared, save_hf
from vitpose.cli import main
from vitpose.datasets.coco import load_coco_keypoints, parse_detection, read_detections
from vitpose.detectors import BoxesDetector, BoxesFileError, SkippedBoxesWarning, UnknownImageError
from vitpose.detectors.boxes import match_names, usable_boxes
from vitpose.errors import VitPoseError
from vitpose.evaluation.metrics import evaluate_predictions

IMAGES = ["000000000785.jpg", "000000040083.jpg", "000000196141.jpg"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("robust_boxes") / "model")


@pytest.fixture()
def two_cameras(tmp_path, monkeypatch):
    """cam1/x.jpg, cam1/y.jpg and cam2/x.jpg: two different images with the same file name, run from tmp_path."""
    require_shared(COCO_DIR / IMAGES[0])
    for folder, name, source in (("cam1", "x.jpg", 0), ("cam1", "y.jpg", 2), ("cam2", "x.jpg", 1)):
        (tmp_path / folder).mkdir(exist_ok=True)
        shutil.copy(COCO_DIR / IMAGES[source], tmp_path / folder / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _poses(path: Path) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for entry in json.loads(path.read_text()):
        out.setdefault(entry["file_name"], []).append(entry["keypoints"])
    return out


# --------------------------------------------------------------------------- matching entries to images
def test_predictions_fed_back_give_each_image_its_own_boxes(checkpoint, two_cameras, capsys):
    assert main(["predict", "cam1", "cam2", "--model", str(checkpoint), "--detector", "full-image", "--out", "a"]) == 0
    first = _poses(two_cameras / "a" / "predictions.json")
    assert sorted(first) == ["cam1/x.jpg", "cam1/y.jpg", "cam2/x.jpg"]
    assert (
        main(["predict", "cam1", "cam2", "--model", str(checkpoint), "--boxes", "a/predictions.json", "--out", "b"])
        == 0
    )
    assert _poses(two_cameras / "b" / "predictions.json") == first  # each image its own box, the same poses


def test_predictions_fed_back_from_another_folder_match_by_path_suffix(checkpoint, two_cameras, monkeypatch):
    assert main(["predict", "cam1", "cam2", "--model", str(checkpoint), "--detector", "full-image", "--out", "a"]) == 0
    elsewhere = two_cameras / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # "cam1/x.jpg" no longer resolves to the input: its last two parts still name it
    inputs = [str(two_cameras / "cam1"), str(two_cameras / "cam2")]
    code = main(["predict", *inputs, "--model", str(checkpoint), "--boxes", "../a/predictions.json", "--out", "b"])
    assert code == 0
    again = json.loads((elsewhere / "b" / "predictions.json").read_text())
    assert sorted(Path(e["file_name"]).relative_to(two_cameras).as_posix() for e in again) == [
        "cam1/x.jpg",
        "cam1/y.jpg",
        "cam2/x.jpg",
    ]
    first = _poses(two_cameras / "a" / "predictions.json")
    for entry in again:
        assert [entry["keypoints"]] == first[Path(entry["file_name"]).relative_to(two_cameras).as_posix()]


def test_ambiguous_base_name_is_one_error_before_any_model_work(two_cameras, capsys):
    boxes = two_cameras / "boxes.json"
    boxes.write_text(json.dumps([{"file_name": "x.jpg", "bbox": [1, 1, 50, 80], "score": 0.9}]))
    code = main(["predict", "cam1", "cam2", "--model", "no/such-model", "--boxes", str(boxes), "--out", "o"])
    err = capsys.readouterr().err
    assert code == 2 and "'x.jpg' matches 2 input images by its base name" in err
    assert "cam1/x.jpg" in err and "cam2/x.jpg" in err and "tell" in err  # the candidates, and what to do
    assert "no/such-model" not in err  # refused before the model was looked for


def test_match_names_rule():
    inputs = ["/data/cam1/x.jpg", "/data/cam2/x.jpg", "/data/cam1/y.jpg"]
    # the most trailing parts in common wins; a path given elsewhere still names its image by its tail
    assert match_names(["/old/place/cam1/x.jpg", "cam2/x.jpg", "y.jpg"], inputs) == {
        "/data/cam1/x.jpg": "/old/place/cam1/x.jpg",
        "/data/cam2/x.jpg": "cam2/x.jpg",
        "/data/cam1/y.jpg": "y.jpg",
    }
    # an entry for cam1 only: cam2/x.jpg has none (it shares only the base name, and cam1/x.jpg is named better)
    assert match_names(["cam1/x.jpg"], inputs)["/data/cam2/x.jpg"] is None
    # one input: its base name is unambiguous
    assert match_names(["val/x.jpg"], ["/else/x.jpg"]) == {"/else/x.jpg": "val/x.jpg"}
    with pytest.raises(BoxesFileError, match=r"'x\.jpg' matches 2 input images by its base name"):
        match_names(["x.jpg"], inputs)
    with pytest.raises(BoxesFileError, match=r"2 entries name the input image /z/x\.jpg equally well"):
        match_names(["a/x.jpg", "b/x.jpg"], ["/z/x.jpg"])
    # the same file given twice is one image
    assert match_names(["x.jpg"], ["/d/x.jpg", "/d/./x.jpg"]) == {"/d/x.jpg": "x.jpg", "/d/./x.jpg": "x.jpg"}


def test_check_inputs_names_the_images_without_entries(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"file_name": "/d/a.jpg", "bbox": [0, 0, 5, 5], "score": 1}]))
    detector = BoxesDetector.from_json(path)
    with pytest.warns(UserWarning, match=r"no entry for 2 of the 3 input images \(/d/b\.jpg, /d/c\.jpg\).*nobody"):
        assert detector.check_inputs(["/d/a.jpg", "/d/b.jpg", "/d/c.jpg"]) == ["/d/b.jpg", "/d/c.jpg"]
    with pytest.raises(BoxesFileError, match=r"none of its 1 image file names matches any of the 2 input images"):
        BoxesDetector.from_json(path).check_inputs(["/e/p.jpg", "/e/q.jpg"])
    with pytest.raises(BoxesFileError, match=r"by position, but there are 3 images"):
        BoxesDetector([[[0, 0, 1, 1]]]).check_inputs(["a", "b", "c"])


def test_check_inputs_with_annotations_warns_then_fails_the_unlisted(coco_dir):
    detector = BoxesDetector.from_json(coco_dir / "test_coco_det_AP_H_56.json", coco_dir / "test_coco.json")
    with pytest.warns(UserWarning, match=r"holiday\.jpg\): they are not among the images of its annotations"):
        detector.check_inputs([str(coco_dir / IMAGES[0]), "photos/holiday.jpg"])
    image = np.zeros((8, 8, 3), np.uint8)
    assert len(detector([image], [str(coco_dir / IMAGES[0])])[0]) > 0
    with pytest.raises(UnknownImageError, match="holiday"):
        detector([image], ["photos/holiday.jpg"])


def test_fewer_boxes_than_images_is_an_error_before_any_work():
    from vitpose.inference.estimator import PoseEstimator

    estimator = PoseEstimator.__new__(PoseEstimator)  # iter_predict's check comes before the model is used
    estimator.batch_size = 4
    with pytest.raises(VitPoseError, match="got boxes for 1 images but 3 images"):
        next(estimator.iter_predict(["a.jpg", "b.jpg", "c.jpg"], boxes=[[[0, 0, 5, 5]]]))


def test_hog_for_animals_is_one_error_up_front(checkpoint, tmp_path, capsys):
    require_shared(COCO_DIR / IMAGES[0])
    code = main(
        [
            *("predict", str(COCO_DIR / IMAGES[0]), str(COCO_DIR / IMAGES[1]), "--model", str(checkpoint)),
            *("--detector", "hog", "--dataset", "ap10k", "--out", str(tmp_path / "o")),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("HOG detector only finds upright people") == 1 and "--detector rtdetr" in err
    assert not (tmp_path / "o" / "predictions.json").exists()


# --------------------------------------------------------------------------- NaN, inf, huge and outside boxes
def _file(tmp_path: Path, entries: list) -> Path:
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(entries))  # Python writes NaN / Infinity, as a careless tool would
    return path


def test_nan_and_inf_scores_are_skipped_with_the_degenerate_box_warning(tmp_path):
    path = _file(
        tmp_path,
        [
            {"file_name": "a.jpg", "bbox": [0, 0, 5, 5], "score": float("nan")},
            {"file_name": "a.jpg", "bbox": [0, 0, 6, 6], "score": float("inf")},
            {"file_name": "a.jpg", "bbox": [0, 0, 7, 7], "score": 1e39},  # inf in float32
            {"file_name": "a.jpg", "bbox": [1, 1, 4, 4], "score": 0.5},
        ],
    )
    with pytest.warns(SkippedBoxesWarning, match=r"skipped 3 of 4 .*entry 0 .*score nan.*entry 1 .*score inf"):
        detector = BoxesDetector.from_json(path)
    (found,) = detector([np.zeros((8, 8, 3), np.uint8)], ["a.jpg"])
    assert found.boxes.tolist() == [[1, 1, 4, 4]] and found.scores.tolist() == [0.5]


def test_box_values_beyond_float32_are_skipped(tmp_path):
    path = _file(
        tmp_path, [{"file_name": "a.jpg", "bbox": [0, 0, 1e39, 5]}, {"file_name": "a.jpg", "bbox": [0, 0, 10**400, 5]}]
    )
    with pytest.warns(SkippedBoxesWarning, match=r"skipped 2 of 2 .*beyond float32"):
        BoxesDetector.from_json(path)


def test_usable_boxes_outside_and_huge_are_skipped_naming_the_image():
    boxes = [[10, 10, 20, 20], [200, 10, 5, 5], [-50, -50, 10, 10], [0, 0, 1e9, 1e9], [-5, -5, 10, 10]]
    with pytest.warns(SkippedBoxesWarning, match=r"photo\.jpg: skipped 3 of 5 boxes .*120x100 image.*box 1 .*outside"):
        keep = usable_boxes(boxes, np.ones(5), (120, 100), "photo.jpg")
    assert keep.tolist() == [True, False, False, False, True]
    with pytest.raises(VitPoseError, match=r"photo\.jpg: box 0 .*score nan"):
        usable_boxes([[1, 1, 5, 5]], [float("nan")], (120, 100), "photo.jpg")
    with pytest.raises(VitPoseError, match=r"box 0 .*not finite"):
        usable_boxes([[float("nan"), 1, 5, 5]], [1.0], (120, 100), "photo.jpg")


def test_predict_with_outside_and_nan_boxes_writes_strict_json(checkpoint, tmp_path, capsys):
    require_shared(COCO_DIR / IMAGES[0])
    path = _file(
        tmp_path,
        [
            {"file_name": IMAGES[0], "bbox": [100, 100, 200, 300], "score": 0.9},
            {"file_name": IMAGES[0], "bbox": [5000, 5000, 50, 50], "score": 0.9},  # outside the image
            {"file_name": IMAGES[0], "bbox": [10, 10, 50, 50], "score": float("nan")},
            {"file_name": IMAGES[0], "bbox": [float("nan"), 10, 50, 50], "score": 0.5},
        ],
    )
    out = tmp_path / "out"
    code = main(
        ["predict", str(COCO_DIR / IMAGES[0]), "--model", str(checkpoint), "--boxes", str(path), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert "skipped 2 of 4 detections" in err and "score nan" in err
    assert f"{IMAGES[0]}: skipped 1 of 2 boxes that do not fit" in err and "[5000.0, 5000.0, 50.0, 50.0]" in err
    text = (out / "predictions.json").read_text()
    predictions = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in predictions.json"))
    assert [p["bbox"] for p in predictions] == [[100.0, 100.0, 200.0, 300.0]]


def test_results_never_write_nan(tmp_path):
    from vitpose.datasets import get_dataset_info
    from vitpose.inference.results import PoseResult, person_dict

    k = np.full((1, 17, 2), np.nan, np.float32)
    result = PoseResult(
        k,
        np.full((1, 17), np.inf, np.float32),
        np.ones((1, 4), np.float32),
        np.ones(1, np.float32),
        np.full(1, np.nan, np.float32),
        get_dataset_info("coco"),
        (8, 8),
    )
    for obj in (result.to_coco(image_id=1), result.to_dict(), result.people(decimals=(3, 5))):
        text = json.dumps(obj, allow_nan=False)
        assert "null" in text
    person = person_dict([0, 0, 1, 1], 1.0, 0.5, np.zeros((17, 2)), np.ones(17))
    assert json.dumps(person, allow_nan=False) and None not in person.values()


# --------------------------------------------------------------------------- property-based
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
box_value = st.one_of(
    finite,
    st.sampled_from([0.0, -0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e39, 3.5e38, 1e300, 2**70]),
    st.integers(min_value=-(10**400), max_value=10**400),
)
odd_value = st.one_of(box_value, st.none(), st.booleans(), st.text(max_size=5), st.lists(finite, max_size=3))


def _only_vitpose_errors(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return function(*args, **kwargs)
        except VitPoseError:
            return None


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(boxes=st.lists(st.lists(box_value, min_size=4, max_size=4), max_size=4), scores=st.lists(odd_value, max_size=4))
def test_fuzz_box_values_through_a_boxes_file(tmp_path, boxes, scores):
    entries = [
        {"file_name": "a.jpg", "bbox": box, **({"score": scores[i]} if i < len(scores) else {})}
        for i, box in enumerate(boxes)
    ]
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(entries))
    detector = _only_vitpose_errors(BoxesDetector.from_json, path)
    if detector is None:
        return
    (found,) = detector([np.zeros((40, 30, 3), np.uint8)], ["a.jpg"])
    assert np.isfinite(found.boxes).all() and np.isfinite(found.scores).all()
    assert (found.boxes[:, 2:] > 0).all()
    keep = _only_vitpose_errors(usable_boxes, found.boxes, found.scores, (30, 40), "a.jpg")
    assert keep is not None  # a detector's boxes are always usable or skipped, never an error


@pytest.mark.fuzz
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    box=st.lists(
        st.one_of(finite, st.sampled_from([0.0, -5.0, float("nan"), float("inf"), 1e39, 1e30])), min_size=4, max_size=4
    ),
    score=st.one_of(finite, st.sampled_from([float("nan"), float("inf")])),
)
def test_fuzz_box_values_through_the_estimator(estimator, box, score):
    image = np.full((40, 30, 3), 128, np.uint8)
    result = _only_vitpose_errors(estimator, image, boxes=[box], box_scores=[score])
    if result is not None:
        text = json.dumps(result.to_coco(image_id=1), allow_nan=False)
        json.dumps(result.to_dict(), allow_nan=False)
        assert len(result) <= 1 and "NaN" not in text


@pytest.fixture(scope="module")
def estimator(checkpoint):
    from vitpose.inference.estimator import PoseEstimator

    return PoseEstimator.from_pretrained(checkpoint, device="cpu")


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), box_value, st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "images",
                    "annotations",
                    "categories",
                    "id",
                    "image_id",
                    "file_name",
                    "bbox",
                    "score",
                    "category_id",
                    "keypoints",
                    "num_keypoints",
                    "area",
                    "iscrowd",
                    "x",
                ]
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=25,
)


def _deep(depth: int, leaf):
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"bbox": value}
    return value


def _hostile_text(value) -> str:
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return "[" * 5000 + "]" * 5000


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(json_value, st.builds(_deep, st.integers(900, 3000), json_value)))
def test_fuzz_json_shapes_raise_only_vitpose_errors(tmp_path, value):
    path = tmp_path / "shape.json"
    path.write_text(_hostile_text(value))
    _only_vitpose_errors(BoxesDetector.from_json, path)
    _only_vitpose_errors(read_detections, path)
    entries = _only_vitpose_errors(read_detections, path)
    for index, entry in enumerate((entries or [])[:5]):
        _only_vitpose_errors(parse_detection, entry, index, str(path))
    _only_vitpose_errors(load_coco_keypoints, path)
    _only_vitpose_errors(BoxesDetector.from_json, path, annotations=path)
    ann = require_shared(COCO_DIR / "test_coco.json")
    _only_vitpose_errors(evaluate_predictions, ann, path)
    _only_vitpose_errors(evaluate_predictions, path, [])


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes_as_a_boxes_file(tmp_path, data):
    path = tmp_path / "bytes.json"
    path.write_bytes(data)
    _only_vitpose_errors(BoxesDetector.from_json, path)
    _only_vitpose_errors(BoxesDetector.from_json, path, annotations=path)


def test_nan_literal_boxes_file_through_the_reader(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('[{"file_name": "a.jpg", "bbox": [NaN, 0, 5, 5], "score": Infinity}]')
    with pytest.warns(SkippedBoxesWarning, match="not finite"):
        detector = BoxesDetector.from_json(path)
    assert len(detector([np.zeros((8, 8, 3), np.uint8)], ["a.jpg"])[0]) == 0
    assert math.isnan(parse_detection({"file_name": "a", "bbox": [0, 0, 1, 1], "score": float("nan")}, 0, "f").score)
