"""The one home of each data fact: the COCO reader (vitpose.datasets.coco), the MPII reader (vitpose.datasets.mpii),
mmpose's ground-truth box clipping, the one data-set inference and the one JSON schema of a person."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, ROOT, require_shared
from vitpose.datasets import DATASETS, get_dataset_info
from vitpose.datasets.coco import (
    clip_gt_box,
    image_file_names,
    load_coco_keypoints,
    parse_detection,
    read_detections,
    read_json,
)
from vitpose.datasets.custom import dataset_info_from_dict, dataset_info_to_dict, infer_dataset_info, is_registered
from vitpose.errors import AnnotationError, DatasetError, VitPoseError
from vitpose.inference.results import PoseResult, person_dict

COCO_JSON = DATA / "coco" / "test_coco.json"


# ------------------------------------------------------------------------------------------------------- read_json


def test_read_json_names_the_file_and_the_fault(tmp_path):
    assert read_json(_write(tmp_path / "ok.json", '{"a": [1, 2]}'), "annotation") == {"a": [1, 2]}
    with pytest.raises(AnnotationError, match=r"annotation file not found: .*nope\.json"):
        read_json(tmp_path / "nope.json", "annotation")
    with pytest.raises(AnnotationError, match=r"is a directory: pass the JSON file inside it"):
        read_json(tmp_path, "annotation")
    with pytest.raises(AnnotationError, match=r"broken\.json is not valid JSON \(Expecting .* line 1 column"):
        read_json(_write(tmp_path / "broken.json", "[{"), "detections")
    (tmp_path / "latin.json").write_bytes(b'{"name": "\xe9"}')
    with pytest.raises(AnnotationError, match=r"latin\.json is not a UTF-8 text file"):
        read_json(tmp_path / "latin.json", "annotation")


def test_deep_nesting_is_a_clear_error_not_a_recursion_error(tmp_path):
    path = _write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(AnnotationError, match=r"deep\.json: its JSON is nested too deeply"):
        read_json(path, "annotation")
    with pytest.raises(AnnotationError, match="nested too deeply"):
        load_coco_keypoints(path, "coco")


def test_read_json_raises_the_callers_error_class(tmp_path):
    class BoxesError(AnnotationError):
        pass

    with pytest.raises(BoxesError, match="detections file not found"):
        read_json(tmp_path / "nope.json", "detections", error=BoxesError)


def test_evaluation_and_training_read_through_the_one_reader(tmp_path):
    """The old entry points keep their names and messages and are the one reader underneath."""
    from vitpose.evaluation.pipeline import EvaluationError
    from vitpose.evaluation.pipeline import read_json as eval_read_json
    from vitpose.training.data import read_annotations

    broken = _write(tmp_path / "broken.json", "{")
    for call in (lambda: eval_read_json(broken, "annotations"), lambda: read_annotations(broken)):
        with pytest.raises(EvaluationError, match=r"broken\.json is not valid JSON.*cannot read it as JSON"):
            call()
    with pytest.raises(AnnotationError, match="annotation file not found"):
        read_annotations(tmp_path / "nope.json")


# ------------------------------------------------------------------------------------------------ detections, ids


def test_read_detections_and_parse_detection(tmp_path):
    entries, source = read_detections([{"image_id": 5, "bbox": [1, 2, 3, 4]}])
    assert source == "detections"
    det = parse_detection(entries[0], 0, source)
    assert (det.image_id, det.bbox, det.score, det.category_id, det.file_name) == (
        5,
        (1.0, 2.0, 3.0, 4.0),
        1.0,
        1,
        None,
    )
    zero = parse_detection({"file_name": "a.jpg", "bbox": [0, 0, 0, 5], "score": 0.5, "category_id": 2}, 3, "d")
    assert zero.bbox[2] == 0.0 and zero.category_id == 2  # the policy for empty boxes is the caller's
    not_finite = parse_detection({"image_id": 1, "bbox": [0, float("nan"), 3, 4]}, 4, "d")
    assert np.isnan(not_finite.bbox[1])  # and for non-finite ones (skip_degenerate_boxes skips and reports them)
    path = _write(tmp_path / "ann.json", json.dumps({"images": [], "annotations": []}))
    with pytest.raises(AnnotationError, match="looks like a COCO annotations file"):
        read_detections(path)
    for entry, message in (
        ({"image_id": 1}, r"d: entry 2 has no 'bbox'"),
        ({"image_id": 1, "bbox": [0, 0, "wide", 1]}, r"d: entry 2: bbox must be a list of 4 numbers"),
        ({"image_id": 1, "bbox": [0, 0, 1, 1], "score": "high"}, r"d: entry 2: score must be a finite number"),
        ({"image_id": 1, "bbox": [0, 0, 1, 1], "category_id": 1.5}, r"d: entry 2: category_id must be an integer"),
        ({"bbox": [0, 0, 1, 1]}, r"d: entry 2 has neither 'image_id' nor 'file_name'"),
        ([1, 2], r"d: entry 2 is a list"),
    ):
        with pytest.raises(AnnotationError, match=message):
            parse_detection(entry, 2, "d")


def test_image_file_names(tmp_path):
    require_shared(COCO_JSON)
    names = image_file_names(COCO_JSON)
    assert names[785] == "000000000785.jpg" and len(names) == 4
    with pytest.raises(AnnotationError, match=r"images\[1\]: image id 1 appears twice"):
        image_file_names({"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}]})
    with pytest.raises(AnnotationError, match=r"images\[0\] must be an object with 'id' and a 'file_name'"):
        image_file_names({"images": [{"id": 1}]})


# ----------------------------------------------------------------------------------------------------- box clipping


def test_clip_gt_box_is_mmpose_clipping():
    assert clip_gt_box([10, 20, 30, 40], 640, 480) == [10.0, 20.0, 29.0, 39.0]  # inside: one pixel less
    assert clip_gt_box([-5, -5, 30, 40], 640, 480) == [0.0, 0.0, 29.0, 39.0]  # x1 = max(0, x), w from x1
    assert clip_gt_box([600, 450, 100, 100], 640, 480) == [600.0, 450.0, 39.0, 29.0]  # cut at W - 1, H - 1
    assert clip_gt_box([10, 20, 30, 40]) == [10.0, 20.0, 29.0, 39.0]  # no image size: clipped at 0 only
    assert clip_gt_box([700, 20, 30, 40], 640, 480) is None  # outside the image
    assert clip_gt_box([10, 20, 1, 40], 640, 480) is None  # one pixel wide: nothing left


def test_evaluation_and_training_clip_ground_truth_boxes_alike(tmp_path):
    """Both use clip_gt_box: the same annotations give the same boxes in `evaluate` and in training."""
    require_shared(COCO_JSON)
    from vitpose.evaluation.pipeline import _gt_boxes
    from vitpose.training.data import load_coco_instances

    data = json.loads(COCO_JSON.read_text())
    image = data["images"][0]
    ann = next(a for a in data["annotations"] if a["image_id"] == image["id"] and a["num_keypoints"] > 0)
    ann["bbox"] = [-3.5, 2.0, image["width"] + 10.0, 50.0]  # past the left and right edges
    info = get_dataset_info("coco")
    gt = load_coco_keypoints(data, info)
    evaluated = [box for boxes in _gt_boxes(gt, info).values() for box, _, _ in boxes]
    trained = load_coco_instances(data, DATA / "coco", info).boxes.tolist()
    assert sorted(evaluated) == sorted(trained)
    assert [0.0, 2.0, image["width"] - 1.0, 49.0] in trained


def test_training_data_does_not_import_evaluation():
    tree = ast.parse((ROOT / "src" / "vitpose" / "training" / "data.py").read_text())
    modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if m.startswith("vitpose.evaluation")], modules
    assert "vitpose.datasets.mpii" in modules and "vitpose.datasets.coco" in modules


# ------------------------------------------------------------------------------------------------------------- MPII


def test_mpii_reader_lives_in_datasets(tmp_path):
    require_shared(DATA / "mpii" / "test_mpii.json")
    from vitpose.datasets.mpii import load_mpii
    from vitpose.evaluation.mpii import load_mpii as eval_load_mpii

    path = DATA / "mpii" / "test_mpii.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_mpii(path), eval_load_mpii(path)
        from_list = load_mpii(json.loads(path.read_text()))
    assert len(ours) == len(theirs) == len(from_list) > 0
    for a, b, c in zip(ours, theirs, from_list, strict=True):
        np.testing.assert_array_equal(a.center, b.center)
        np.testing.assert_array_equal(a.scale, c.scale)
        np.testing.assert_array_equal(a.joints, b.joints)
    with pytest.raises(VitPoseError, match=r"head boxes .* needs vitpose\.evaluation\.mpii\.load_mpii"):
        load_mpii(path, headboxes=tmp_path / "mpii_gt_val.mat")


def test_mpii_deep_nesting_is_a_clear_error(tmp_path):
    from vitpose.datasets.mpii import MpiiAnnotationError, load_mpii

    with pytest.raises(MpiiAnnotationError, match="nested too deeply"):
        load_mpii(_write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000))


# ------------------------------------------------------------------------------------------------ data-set inference


def _coco_like(k: int, names: list[str] | None = None, category: str | None = "person", **ann_extra) -> dict:
    cat = {"id": 1, "supercategory": "x"}
    if category is not None:
        cat["name"] = category
    if names is not None:
        cat["keypoints"] = names
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "keypoints": [1.0, 1.0, 2] * k}
    ann.update(ann_extra)
    return {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [ann], "categories": [cat]}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([{"image": "a.jpg"}], "mpii"),  # 1. a JSON list
        (_coco_like(17, foot_kpts=[0] * 18), "wholebody"),  # 3. foot_kpts
        (_coco_like(17, list(DATASETS["coco"].keypoint_names)), "coco"),  # 4. by the names
        (_coco_like(17, list(DATASETS["ap10k"].keypoint_names), category="person"), "ap10k"),  # names win
        (_coco_like(14, [n.replace("_", " ").title() for n in DATASETS["aic"].keypoint_names]), "aic"),
        (_coco_like(16, list(DATASETS["mpii"].keypoint_names)), "mpii"),  # COCO-format file of MPII's names
        (_coco_like(17), "coco"),  # 5. 17, person
        (_coco_like(17, category="dog"), "ap10k"),  # 5. 17, named categories without person
        (_coco_like(17, category=None), "coco"),  # 5. 17, unnamed categories
        (_coco_like(14), "aic"),  # 6.
    ],
)
def test_one_set_of_inference_rules(data, expected):
    from vitpose.evaluation import infer_dataset

    assert infer_dataset_info(data).name == expected
    assert infer_dataset(data).name == expected  # the evaluation's name for the same function


def test_inference_on_the_shared_files():
    for path, expected in (
        ("coco/test_coco.json", "coco"),
        ("aic/test_aic.json", "aic"),
        ("ap10k/test_ap10k.json", "ap10k"),
        ("coco/test_coco_wholebody.json", "wholebody"),
        ("mpii/test_mpii.json", "mpii"),
    ):
        require_shared(DATA / path)
        assert infer_dataset_info(json.loads((DATA / path).read_text()), path).name == expected, path


def test_inference_of_a_custom_skeleton_and_its_errors():
    names = ["tip", "left_wing", "right_wing"]
    data = _coco_like(3, names, category="bird")
    data["categories"][0]["skeleton"] = [[1, 2], [1, 3], [2, 2], [1, 9]]  # self-links and out-of-range dropped
    with pytest.warns(UserWarning, match=r"custom skeleton 'bird' with 3 keypoints; .* 0\.05"):
        info = infer_dataset_info(data, "birds.json")
    assert (info.name, info.keypoint_names, info.skeleton) == ("bird", tuple(names), ((0, 1), (0, 2)))
    assert info.flip_pairs == ((1, 2),) and info.sigmas == (0.05,) * 3 and not is_registered(info)
    with pytest.raises(AnnotationError, match=r"birds\.json: annotations have 3 keypoints .* give 0 keypoint names"):
        infer_dataset_info(_coco_like(3), "birds.json")
    with pytest.raises(AnnotationError, match="no annotation has 'keypoints'"):
        infer_dataset_info({"annotations": [{"id": 1}], "categories": []})
    with pytest.raises(AnnotationError, match="neither a COCO-format object"):
        infer_dataset_info({"images": []})
    with pytest.raises(AnnotationError, match="neither a COCO-format object"):
        infer_dataset_info("not a dict")  # type: ignore[arg-type]


def test_dataset_description_round_trips():
    info = dataset_info_from_dict(
        {"name": "hand3", "keypoints": ["a", "left_b", "right_b"], "skeleton": [[0, 1]], "flip_pairs": [[1, 2]],
         "sigmas": [0.1, 0.2, 0.3], "upper_body": ["a"], "dataset_index": 2, "is_animal": True}
    )  # fmt: skip
    again = dataset_info_from_dict(json.loads(json.dumps(dataset_info_to_dict(info))))
    assert again == info
    assert all(is_registered(d) for d in DATASETS.values())
    with pytest.raises(DatasetError):
        dataset_info_from_dict({**dataset_info_to_dict(info), "sigmas": [0.1]})


# ------------------------------------------------------------------------------------------- the person JSON schema


def _result() -> PoseResult:
    rng = np.random.default_rng(0)
    n, k = 2, 17
    return PoseResult(
        keypoints=rng.uniform(0, 100, (n, k, 2)).astype(np.float32),
        keypoint_scores=rng.uniform(0, 1, (n, k)).astype(np.float32),
        boxes=rng.uniform(1, 50, (n, 4)).astype(np.float32),
        box_scores=np.array([0.91234567, 0.5], np.float32),
        scores=np.array([0.712345678, 0.25], np.float32),
        dataset=get_dataset_info("coco"),
        image_size=(100, 80),
        file_name="a.jpg",
        image_id=7,
    )


def test_person_dict_is_the_one_schema():
    result = _result()
    people = result.people()
    assert [list(p) for p in people] == [["bbox", "box_score", "score", "keypoints", "keypoint_scores"]] * 2
    assert result.to_dict()["instances"] == people
    first = people[0]
    assert first["bbox"] == result.boxes[0].tolist()  # full float32 precision
    assert first["keypoints"] == result.keypoints[0].tolist() and len(first["keypoints"][0]) == 2
    assert first["score"] == float(result.scores[0]) and first["box_score"] == float(result.box_scores[0])
    tracked = result.people(track_ids=np.array([4, 9]), decimals=(3, 5))
    assert next(iter(tracked[1])) == "track_id" and tracked[1]["track_id"] == 9
    assert tracked[0]["score"] == round(float(result.scores[0]), 5)
    assert tracked[0]["bbox"] == [round(float(v), 3) for v in result.boxes[0]]
    assert person_dict([0, 0, 1, 1], 1, 0.5, [[1.23456, 2]], [0.123456], decimals=(2, 3)) == {
        "bbox": [0.0, 0.0, 1.0, 1.0],
        "box_score": 1.0,
        "score": 0.5,
        "keypoints": [[1.23, 2.0]],
        "keypoint_scores": [0.123],
    }


def test_video_json_lines_use_the_person_schema():
    from vitpose.video.runner import FrameResult

    result = _result()
    frame = FrameResult(index=3, timestamp=0.1234567, result=result, track_ids=np.array([1, 2]), detected=False)
    record = frame.to_dict()
    assert list(record) == ["frame", "timestamp", "detected", "people"]
    assert record["timestamp"] == 0.123457
    assert record["people"] == result.people(track_ids=[1, 2], decimals=(3, 5))
    assert list(record["people"][0]) == ["track_id", "bbox", "box_score", "score", "keypoints", "keypoint_scores"]
    assert json.loads(json.dumps(record)) == record


def test_to_coco_serves_predict_and_the_evaluation():
    result = _result()
    default = result.to_coco()
    assert list(default[0]) == ["image_id", "category_id", "keypoints", "score", "bbox", "file_name"]
    assert default[0]["keypoints"][:3] == [
        round(float(result.keypoints[0, 0, 0]), 3),
        round(float(result.keypoints[0, 0, 1]), 3),
        round(float(result.keypoint_scores[0, 0]), 3),
    ]
    evaluation = result.to_coco(image_id="img-7", category_id=np.array([3, 4]), file_name=False, bbox=False,
                                decimals=None)  # fmt: skip
    assert list(evaluation[0]) == ["image_id", "category_id", "keypoints", "score"]
    assert [e["category_id"] for e in evaluation] == [3, 4] and evaluation[0]["image_id"] == "img-7"
    assert evaluation[1]["keypoints"][3 * 16 : 3 * 17] == [
        float(result.keypoints[1, 16, 0]),
        float(result.keypoints[1, 16, 1]),
        float(result.keypoint_scores[1, 16]),
    ]
    assert result.to_coco(image_id=np.int64(5))[0]["image_id"] == 5
    assert result.select([]).to_coco(category_id=np.array([], np.int64)) == []


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
