"""Keypoint AP (vitpose.evaluation.metrics) against pycocotools called directly, on the shared real annotations.

The references here are built independently of the module: COCO objects, result sets and COCO-WholeBody part
ground truth are assembled by hand and scored by pycocotools' COCOeval.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from conftest import DATA, require_shared
from vitpose.datasets import get_dataset_info
from vitpose.evaluation.metrics import (
    METRIC_NAMES,
    AnnotationError,
    coco_keypoint_metrics,
    evaluate_predictions,
    format_metrics_table,
    load_coco_keypoints,
    validate_predictions,
    wholebody_metrics,
    wholebody_part_gt,
)

STATS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
WB_FIELDS = ["keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"]
WB_SIZES = [17, 6, 68, 21, 21]
WB_PARTS = ["body", "foot", "face", "lefthand", "righthand"]


def _path(relative: str) -> Path:
    return require_shared(DATA / relative)


def _json(relative: str):
    return json.loads(_path(relative).read_text())


def _wb_flat(entry: dict) -> list[float]:
    return [v for field in WB_FIELDS for v in entry[field]]


def _gt_as_predictions(gt: dict, wholebody: bool = False) -> list[dict]:
    """Ground truth as results: coordinates copied, each keypoint scored 1.0 where labelled (v > 0), else 0."""
    out = []
    for ann in gt["annotations"]:
        flat = np.array(_wb_flat(ann) if wholebody else ann["keypoints"], dtype=float).reshape(-1, 3)
        flat[:, 2] = (flat[:, 2] > 0).astype(float)
        out.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "keypoints": flat.reshape(-1).tolist(),
                "score": 1.0,
            }
        )
    return out


def _perturb(gt: dict, seed: int, wholebody: bool = False, bbox: bool = False, noise: float = 2.0) -> list[dict]:
    """Noisy results: a few pixels of noise, random scores, each instance dropped, kept or duplicated."""
    rng = np.random.default_rng(seed)
    out = []
    for ann in gt["annotations"]:
        kp = np.array(_wb_flat(ann) if wholebody else ann["keypoints"], dtype=float).reshape(-1, 3)
        for _ in range(rng.integers(0, 3)):
            k = kp.copy()
            k[:, :2] += rng.normal(0.0, noise, size=(len(k), 2))
            k[:, 2] = rng.uniform(0.0, 1.0, len(k))
            pred = {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "keypoints": k.reshape(-1).tolist(),
                "score": float(rng.uniform(0.05, 1.0)),
            }
            if bbox:
                pred["bbox"] = [float(v + rng.normal(0.0, 3.0)) for v in ann["bbox"]]
            out.append(pred)
    # A false positive per image, far from everyone.
    for image in gt["images"]:
        n = len(out[0]["keypoints"]) // 3
        k = np.column_stack([rng.uniform(0, 20, n), rng.uniform(0, 20, n), rng.uniform(0.1, 1.0, n)])
        pred = {"image_id": image["id"], "category_id": out[0]["category_id"], "keypoints": k.reshape(-1).tolist()}
        pred["score"] = float(rng.uniform(0.05, 1.0))
        if bbox:
            pred["bbox"] = [0.0, 0.0, 20.0, 20.0]
        out.append(pred)
    return out


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def _coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = copy.deepcopy(dataset)
    with _quiet():
        coco.createIndex()
    return coco


def _cocoeval(gt: COCO, dt: COCO, sigmas=None) -> dict[str, float]:
    with _quiet():
        ev = COCOeval(gt, dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.array(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(STATS, (float(s) for s in ev.stats), strict=True))


def _direct(gt: dict, predictions: list[dict], sigmas=None) -> dict[str, float]:
    """pycocotools on its own: COCOeval(gt, gt.loadRes(predictions), 'keypoints')."""
    coco_gt = _coco(gt)
    with _quiet():
        coco_dt = coco_gt.loadRes(copy.deepcopy(predictions))
    return _cocoeval(coco_gt, coco_dt, sigmas)


def _aic_for_pycocotools(gt: dict) -> dict:
    """AIC has no area / iscrowd: fill them as xtcocotools' use_area=False does (0.53 of the box)."""
    gt = copy.deepcopy(gt)
    for ann in gt["annotations"]:
        ann.setdefault("area", ann["bbox"][2] * ann["bbox"][3] * 0.53)
        ann.setdefault("iscrowd", 0)
    return gt


# ---------------------------------------------------------------------------------------------------------------------
# Perfect predictions.


def test_coco_ground_truth_scores_one(coco_dir):
    gt = json.loads((coco_dir / "test_coco.json").read_text())
    preds = _gt_as_predictions(gt)
    empty = [i for i, a in enumerate(gt["annotations"]) if a["num_keypoints"] == 0]
    assert len(empty) == 2  # two instances without labelled keypoints
    # As results, those two are false positives (their keypoints sit at (0, 0)): pycocotools says AP < 1 ...
    with_empty = coco_keypoint_metrics(gt, preds)
    assert with_empty == pytest.approx(_direct(gt, preds), abs=1e-12)
    assert with_empty["AP"] < 0.95 and with_empty["AR"] == 1.0
    # ... and without them every statistic is 1.
    preds = [p for i, p in enumerate(preds) if i not in empty]
    metrics = coco_keypoint_metrics(coco_dir / "test_coco.json", preds)
    assert list(metrics) == list(METRIC_NAMES) == STATS
    assert all(v == pytest.approx(1.0) for v in metrics.values()), metrics


@pytest.mark.parametrize(("relative", "dataset"), [("aic/test_aic.json", "aic"), ("ap10k/test_ap10k.json", "ap10k")])
def test_aic_ap10k_ground_truth_scores_one(relative, dataset):
    gt = _json(relative)
    metrics = evaluate_predictions(_path(relative), _gt_as_predictions(gt), dataset)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AR"] == pytest.approx(1.0)
    # Every statistic is 1, or -1 where no instance falls in the area range (no medium-sized ones here).
    assert all(v == pytest.approx(1.0) or v == -1.0 for v in metrics.values()), metrics
    assert metrics["APm"] == -1.0


def test_wholebody_ground_truth_scores_one_in_every_part(coco_dir):
    gt = json.loads((coco_dir / "test_coco_wholebody.json").read_text())
    metrics = wholebody_metrics(gt, _gt_as_predictions(gt, wholebody=True))
    for part in [*WB_PARTS, "hand"]:
        assert metrics[f"{part}_AP"] == pytest.approx(1.0), part
        assert metrics[f"{part}_AR"] == pytest.approx(1.0), part
    assert all(metrics[s] == pytest.approx(1.0) for s in STATS), metrics


# ---------------------------------------------------------------------------------------------------------------------
# Perturbed predictions against pycocotools directly.


@pytest.mark.parametrize("bbox", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    ("relative", "dataset"),
    [("coco/test_coco.json", "coco"), ("aic/test_aic.json", "aic"), ("ap10k/test_ap10k.json", "ap10k")],
)
def test_perturbed_matches_pycocotools(relative, dataset, seed, bbox):
    gt = _json(relative)
    preds = _perturb(gt, seed, bbox=bbox)
    if dataset == "coco":
        reference = _direct(gt, preds)  # pycocotools' default sigmas are COCO's
    elif dataset == "aic":
        reference = _direct(_aic_for_pycocotools(gt), preds, get_dataset_info("aic").sigmas)
    else:
        reference = _direct(gt, preds, get_dataset_info(dataset).sigmas)
    before = copy.deepcopy(preds)
    metrics = evaluate_predictions(_path(relative), preds, dataset)
    assert preds == before  # not mutated (pycocotools' loadRes writes into its input)
    assert list(metrics) == STATS
    for name in STATS:
        assert metrics[name] == pytest.approx(reference[name], abs=1e-6), name
    if dataset != "ap10k":  # with 2 instances AP-10K can land on 1.0
        assert 0.0 < metrics["AP"] < 1.0


def test_wrong_sigmas_would_be_caught():
    """The AIC comparison is sensitive to the sigmas: COCO's first 14 give other numbers."""
    gt = _json("aic/test_aic.json")
    preds = _perturb(gt, 0)
    ours = coco_keypoint_metrics(_path("aic/test_aic.json"), preds, "aic")
    wrong = _direct(_aic_for_pycocotools(gt), preds, get_dataset_info("coco").sigmas[:14])
    assert abs(ours["AP"] - wrong["AP"]) > 1e-3


def test_predictions_file_equals_list(tmp_path, coco_dir):
    gt = json.loads((coco_dir / "test_coco.json").read_text())
    preds = _perturb(gt, 3)
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(preds))
    assert evaluate_predictions(coco_dir / "test_coco.json", path, "coco") == evaluate_predictions(gt, preds, "coco")


def test_empty_predictions():
    coco = evaluate_predictions(_path("coco/test_coco.json"), [], "coco")
    assert coco == dict.fromkeys(STATS, 0.0)
    aic = evaluate_predictions(_path("aic/test_aic.json"), [], "aic")
    assert aic["AP"] == 0.0 and aic["AR"] == 0.0
    assert aic["APm"] == -1.0 and aic["ARm"] == -1.0  # no medium-sized instance: pycocotools' "no ground truth"
    wb = evaluate_predictions(_path("coco/test_coco_wholebody.json"), [], "wholebody")
    assert wb["AP"] == 0.0 and wb["hand_AP"] == 0.0 and wb["face_AR"] == 0.0


# ---------------------------------------------------------------------------------------------------------------------
# COCO-WholeBody, part by part, against hand-built part ground truth.


def _hand_part_gt(gt: dict, part: str) -> dict:
    """Written out independently: the part's keypoints, num_keypoints recounted, the person's area kept."""
    fields = WB_FIELDS if part == "wholebody" else [WB_FIELDS[WB_PARTS.index(part)]]
    annotations = []
    for ann in gt["annotations"]:
        kp = [v for f in fields for v in ann[f]]
        annotations.append(
            {
                "id": ann["id"],
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": ann["bbox"],
                "area": ann["area"],
                "iscrowd": ann["iscrowd"],
                "keypoints": kp,
                "num_keypoints": sum(1 for v in kp[2::3] if v > 0),
            }
        )
    return {"images": gt["images"], "categories": gt["categories"], "annotations": annotations}


def _hand_part_results(gt: dict, preds: list[dict], part: str) -> COCO:
    """xtcocotools' part results: the slice, all-zero parts dropped, <part>_score, area of the body extent / box."""
    offsets = np.cumsum([0, *WB_SIZES])
    lo, hi = (0, 133) if part == "wholebody" else (offsets[WB_PARTS.index(part)], offsets[WB_PARTS.index(part) + 1])
    boxes = "bbox" in preds[0]
    anns = []
    for i, pred in enumerate(preds):
        kp = np.array(pred["keypoints"], dtype=float).reshape(-1, 3)
        if not np.any(kp[lo:hi, 2] > 0):
            continue
        if boxes:
            area = pred["bbox"][2] * pred["bbox"][3]
        else:
            body = kp[:17]
            area = np.ptp(body[:, 0]) * np.ptp(body[:, 1])
        score = pred["score"] if part == "body" else pred.get(f"{part}_score", pred["score"])
        anns.append(
            {
                "id": i + 1,
                "image_id": pred["image_id"],
                "category_id": pred["category_id"],
                "keypoints": kp[lo:hi].reshape(-1).tolist(),
                "score": score,
                "area": float(area),
                "iscrowd": 0,
            }
        )
    return _coco({"images": gt["images"], "categories": gt["categories"], "annotations": anns})


def _to_mmpose_layout(preds: list[dict]) -> list[dict]:
    out = []
    offsets = np.cumsum([0, *WB_SIZES]) * 3
    for pred in preds:
        new = {k: v for k, v in pred.items() if k != "keypoints"}
        for field, lo, hi in zip(WB_FIELDS, offsets[:-1], offsets[1:], strict=True):
            new[field] = pred["keypoints"][lo:hi]
        out.append(new)
    return out


@pytest.mark.parametrize(("seed", "bbox"), [(0, False), (1, True), (2, False)])
def test_wholebody_parts_match_pycocotools(coco_dir, seed, bbox):
    gt = json.loads((coco_dir / "test_coco_wholebody.json").read_text())
    preds = _perturb(gt, seed, wholebody=True, bbox=bbox, noise=1.0)
    rng = np.random.default_rng(seed)
    for pred in preds:  # some results without a left hand, some with their own foot score
        if rng.uniform() < 0.3:
            pred["keypoints"][3 * 91 + 2 : 3 * 112 : 3] = [0.0] * 21
        if rng.uniform() < 0.5:
            pred["foot_score"] = float(rng.uniform(0.05, 1.0))
    metrics = wholebody_metrics(coco_dir / "test_coco_wholebody.json", preds)
    sigmas = get_dataset_info("wholebody").sigmas
    offsets = np.cumsum([0, *WB_SIZES])
    for i, part in enumerate(WB_PARTS):
        ref = _cocoeval(
            _coco(_hand_part_gt(gt, part)), _hand_part_results(gt, preds, part), sigmas[offsets[i] : offsets[i + 1]]
        )
        assert metrics[f"{part}_AP"] == pytest.approx(ref["AP"], abs=1e-6), part
        assert metrics[f"{part}_AR"] == pytest.approx(ref["AR"], abs=1e-6), part
    whole = _cocoeval(_coco(_hand_part_gt(gt, "wholebody")), _hand_part_results(gt, preds, "wholebody"), sigmas)
    for name in STATS:
        assert metrics[name] == pytest.approx(whole[name], abs=1e-6), name
    assert metrics["hand_AP"] == pytest.approx((metrics["lefthand_AP"] + metrics["righthand_AP"]) / 2)
    assert metrics["hand_AR"] == pytest.approx((metrics["lefthand_AR"] + metrics["righthand_AR"]) / 2)
    assert 0.0 < metrics["AP"] < 1.0 and 0.0 < metrics["face_AP"] < 1.0
    # The mmpose layout (17 body keypoints in 'keypoints', the rest in the part fields) scores the same.
    assert wholebody_metrics(gt, _to_mmpose_layout(preds)) == metrics


def test_wholebody_part_gt_helper(coco_dir):
    gt = json.loads((coco_dir / "test_coco_wholebody.json").read_text())
    for part in [*WB_PARTS, "wholebody"]:
        ours = wholebody_part_gt(gt, part)
        ref = _hand_part_gt(gt, part)
        assert [a["keypoints"] for a in ours["annotations"]] == [a["keypoints"] for a in ref["annotations"]]
        assert [a["num_keypoints"] for a in ours["annotations"]] == [a["num_keypoints"] for a in ref["annotations"]]
        assert [a["area"] for a in ours["annotations"]] == [a["area"] for a in ref["annotations"]]
    # The sample's instances without a left hand are ignored for that part (num_keypoints 0).
    lefthand = wholebody_part_gt(gt, "lefthand")["annotations"]
    assert sum(a["num_keypoints"] == 0 for a in lefthand) == 9
    with pytest.raises(ValueError, match="unknown part 'hands'"):
        wholebody_part_gt(gt, "hands")


def test_wholebody_drops_parts_without_scores_and_uses_part_scores(coco_dir):
    gt = json.loads((coco_dir / "test_coco_wholebody.json").read_text())
    perfect = _gt_as_predictions(gt, wholebody=True)
    # An extra, top-scored result far from everyone, its left hand scored 0 everywhere: xtcocotools drops it for
    # the left hand only; in the other parts it is a false positive ranked first.
    extra = copy.deepcopy(perfect[0])
    extra["keypoints"] = [v for i in range(133) for v in (5.0, 5.0, 0.0 if 91 <= i < 112 else 1.0)]
    extra["score"] = 2.0
    metrics = wholebody_metrics(gt, [*perfect, extra])
    assert metrics["lefthand_AP"] == pytest.approx(1.0)
    assert metrics["righthand_AP"] < 0.99 and metrics["body_AP"] < 0.99
    # Part scores: a bad right hand with a high 'score' but a low 'righthand_score' ranks last for that part.
    bad = copy.deepcopy(perfect)
    for pred in bad:
        pred["keypoints"][3 * 112 : 3 * 133 : 3] = [v + 300.0 for v in pred["keypoints"][3 * 112 : 3 * 133 : 3]]
        pred["score"], pred["righthand_score"] = 5.0, 0.01
    for pred in perfect:
        pred["righthand_score"] = 0.9
    metrics = wholebody_metrics(gt, perfect + bad)
    assert metrics["righthand_AP"] == pytest.approx(1.0)
    for pred in bad:
        del pred["righthand_score"]
    assert wholebody_metrics(gt, perfect + bad)["righthand_AP"] < 0.7  # ranked by score: false positives first


# ---------------------------------------------------------------------------------------------------------------------
# Loading, filling, formatting.


def test_load_fills_and_copies():
    raw = _json("aic/test_aic.json")
    before = copy.deepcopy(raw)
    gt = load_coco_keypoints(raw, "aic")
    assert raw == before  # input untouched
    ann, src = gt["annotations"][0], raw["annotations"][0]
    assert "area" not in src and "iscrowd" not in src
    assert ann["area"] == pytest.approx(src["bbox"][2] * src["bbox"][3] * 0.53)
    assert ann["iscrowd"] == 0 and ann["num_keypoints"] == src["num_keypoints"] == 10
    del raw["annotations"][0]["num_keypoints"]
    assert load_coco_keypoints(raw, "aic")["annotations"][0]["num_keypoints"] == 10  # counted from v > 0
    coco = load_coco_keypoints(_path("coco/test_coco.json"), get_dataset_info("coco"))
    assert coco["annotations"][0]["area"] == pytest.approx(27789.11055)  # an existing area is kept


def test_format_metrics_table():
    metrics = dict(zip(STATS, [0.758, 0.905, 0.83, 0.72, -1.0, 0.81, 0.95, 0.87, 0.77, 0.85], strict=True))
    table = format_metrics_table(metrics, "coco")
    assert "COCO" in table.splitlines()[0]
    assert re.search(r"\bAP\s+75\.8\b", table) and re.search(r"\bAR50\s+95\.0\b", table)
    assert re.search(r"\bAPl\s+n/a", table)
    wb = format_metrics_table({"body_AP": 0.5, "body_AR": 0.6, "hand_AP": 0.25, "hand_AR": 0.3, **metrics}, "wholebody")
    assert re.search(r"body\s+50\.0\s+60\.0", wb) and re.search(r"hand\s+25\.0\s+30\.0", wb)
    assert "COCO-WholeBody" in wb


# ---------------------------------------------------------------------------------------------------------------------
# Bad files.


def _write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_missing_annotations_key(tmp_path):
    gt = _json("coco/test_coco.json")
    del gt["annotations"]
    path = _write(tmp_path, "gt.json", gt)
    with pytest.raises(AnnotationError, match=r"gt\.json: missing top-level key 'annotations'"):
        evaluate_predictions(path, [], "coco")


def test_annotation_without_keypoints(tmp_path):
    gt = _json("coco/test_coco.json")
    del gt["annotations"][3]["keypoints"]
    path = _write(tmp_path, "gt.json", gt)
    with pytest.raises(AnnotationError, match=r"gt\.json: annotation 3 \(id 1202706\): missing 'keypoints'"):
        load_coco_keypoints(path, "coco")


def test_keypoint_count_mismatch_names_the_dataset():
    with pytest.raises(
        AnnotationError, match="has 17 keypoints per instance but dataset 'aic' has 14: pass --dataset coco"
    ):
        evaluate_predictions(_path("coco/test_coco.json"), [], "aic")
    with pytest.raises(
        AnnotationError, match="has 14 keypoints per instance but dataset 'coco' has 17: pass --dataset aic"
    ):
        evaluate_predictions(_path("aic/test_aic.json"), [], "coco")
    with pytest.raises(AnnotationError, match=r"but dataset 'aic' has 14: pass --dataset ap10k"):
        evaluate_predictions(_path("ap10k/test_ap10k.json"), [], "aic")
    with pytest.raises(AnnotationError, match=r"missing 'foot_kpts'.*pass --dataset coco"):
        evaluate_predictions(_path("coco/test_coco.json"), [], "wholebody")


def test_prediction_with_unknown_image_id(coco_dir):
    preds = _gt_as_predictions(json.loads((coco_dir / "test_coco.json").read_text()))
    preds[1]["image_id"] = 12345
    with pytest.raises(AnnotationError, match=r"prediction 1 \(image_id 12345\): image_id 12345 is not in the annot"):
        evaluate_predictions(coco_dir / "test_coco.json", preds, "coco")


def test_string_image_id_and_wrong_subject(coco_dir):
    preds = _gt_as_predictions(json.loads((coco_dir / "test_coco.json").read_text()))
    preds[0]["image_id"] = str(preds[0]["image_id"])
    with pytest.raises(AnnotationError, match=r"it is a string; the annotations use the integer 785"):
        evaluate_predictions(coco_dir / "test_coco.json", preds, "coco")
    with pytest.warns(UserWarning, match=r"look like animals but dataset 'coco' is for people.*pass --dataset ap10k"):
        evaluate_predictions(_path("ap10k/test_ap10k.json"), [], "coco")


def test_prediction_with_wrong_keypoint_length(tmp_path, coco_dir):
    preds = _gt_as_predictions(json.loads((coco_dir / "test_coco.json").read_text()))
    preds[2]["keypoints"] = preds[2]["keypoints"][:42]
    path = _write(tmp_path, "preds.json", preds)
    with pytest.raises(
        AnnotationError,
        match=r"preds\.json: prediction 2 \(image_id 40083\): 'keypoints' has 42 values .*pass --dataset aic",
    ):
        evaluate_predictions(coco_dir / "test_coco.json", path, "coco")


def test_other_bad_predictions(coco_dir):
    gt = json.loads((coco_dir / "test_coco.json").read_text())
    good = _gt_as_predictions(gt)
    cases = [
        (lambda p: p[0].pop("category_id"), r"prediction 0 .*missing 'category_id'"),
        (lambda p: p[0].update(category_id=7), r"prediction 0 .*'category_id' 7 is not in"),
        (lambda p: p[4].update(score=float("nan")), r"prediction 4 .*'score' must be a finite number"),
        (lambda p: p[4].pop("score"), r"prediction 4 .*missing 'score'"),
        (lambda p: p[5]["keypoints"].__setitem__(7, None), r"prediction 5 .*'keypoints'\[7\] is None"),
        (lambda p: p[0].update(bbox=[1, 2, 3, 4]), r"prediction 1 .*'bbox' must be 4 finite numbers"),
    ]
    for mutate, message in cases:
        preds = copy.deepcopy(good)
        mutate(preds)
        with pytest.raises(AnnotationError, match=message):
            validate_predictions(preds, gt, "coco")
    with pytest.raises(AnnotationError, match="predictions must be a JSON list"):
        evaluate_predictions(gt, {"annotations": []}, "coco")


def test_non_json_and_missing_files(tmp_path, coco_dir):
    bad = _write(tmp_path, "broken.json", '{"images": [')
    with pytest.raises(AnnotationError, match=r"broken\.json is not valid JSON"):
        evaluate_predictions(bad, [], "coco")
    with pytest.raises(AnnotationError, match=r"broken\.json is not valid JSON"):
        evaluate_predictions(coco_dir / "test_coco.json", bad, "coco")
    missing = tmp_path / "nope.json"
    with pytest.raises(AnnotationError, match=r"annotation file not found: .*nope\.json"):
        evaluate_predictions(missing, [], "coco")
    with pytest.raises(AnnotationError, match=r"predictions file not found: .*nope\.json"):
        evaluate_predictions(coco_dir / "test_coco.json", missing, "coco")
    with pytest.raises(AnnotationError, match="top level is a list"):
        load_coco_keypoints(_path("mpii/test_mpii.json"), "mpii")
    assert issubclass(AnnotationError, ValueError)
