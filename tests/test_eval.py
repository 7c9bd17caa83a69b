"""`evaluate` and `vitpose eval` end to end on the shared COCO, AI Challenger, MPII and AP-10K data.

Two kinds of model: a small random-init checkpoint (the command runs, the metrics are well-formed), and a "perfect"
model that returns the ground-truth keypoints rendered as UDP Gaussian heatmaps for the crops the pipeline asks for:
decoded, rescored, NMS-ed and scored, it must reach AP 1.0 / PCKh 100%, which checks that boxes, crops, decoding,
instance order and the scoring agree with each other.
"""

from __future__ import annotations

import json
import warnings
from collections import deque

import numpy as np
import pytest
import torch

from conftest import DATA, make_hf_model, require_shared, save_hf
from vitpose import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation
from vitpose.cli import main as cli_main
from vitpose.evaluation import EvalReport, EvaluationError, evaluate
from vitpose.ops.codec import UDPHeatmapCodec

COCO_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR")


class PerfectModel(VitPoseForPoseEstimation):
    """Returns queued heatmaps, batch by batch, in the order the pipeline crops the instances."""

    def __init__(self, num_keypoints: int, heatmaps: np.ndarray) -> None:
        backbone = VitPoseBackboneConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, out_indices=[1])
        super().__init__(VitPoseConfig(backbone_config=backbone, num_labels=num_keypoints))
        self.queue = deque(torch.from_numpy(heatmaps))
        self.calls = 0

    def forward(self, pixel_values, dataset_index=None, flip_pairs=None, flip_test=False, **kwargs):
        from vitpose.models.pose import VitPoseEstimatorOutput

        self.calls += 1
        assert pixel_values.shape[1:] == (3, 256, 192)
        return VitPoseEstimatorOutput(heatmaps=torch.stack([self.queue.popleft() for _ in range(len(pixel_values))]))


def _xywh2cs(box, aspect=192 / 256, padding=1.25):
    """The original's box -> centre / scale (pixels), written out independently of vitpose.ops.geometry."""
    x, y, w, h = box
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h]) * padding


def _gt_instances(path):
    """(centre, scale, keypoints (K, 2), visible (K,)) of the instances the original evaluates, in file order."""
    data = json.loads(path.read_text())
    sizes = {img["id"]: (img["width"], img["height"]) for img in data["images"]}
    per_image = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        if max(ann["keypoints"]) == 0:
            continue
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        x1, y1 = max(0, x), max(0, y)
        x2, y2 = min(width - 1, x1 + max(0, w - 1)), min(height - 1, y1 + max(0, h - 1))
        kpts = np.array(ann["keypoints"], np.float64).reshape(-1, 3)
        per_image[ann["image_id"]].append((*_xywh2cs([x1, y1, x2 - x1, y2 - y1]), kpts[:, :2], kpts[:, 2] > 0))
    return [inst for img in data["images"] for inst in per_image[img["id"]]]


def _within_crops(path, tmp_path):
    """A copy of the annotations in which labelled keypoints that lie outside their instance's crop (AI Challenger
    labels ankles below the person box) are unlabelled: no top-down model can place those, perfect or not."""
    data = json.loads(path.read_text())
    codec = UDPHeatmapCodec()
    instances = iter(_gt_instances(path))
    changed = 0
    for ann in sorted(data["annotations"], key=lambda a: [i["id"] for i in data["images"]].index(a["image_id"])):
        if max(ann["keypoints"]) == 0:
            continue
        center, scale, keypoints, visible = next(instances)
        _, weights = codec.encode(keypoints[None], visible[None], center[None], scale[None])
        for k in np.flatnonzero(visible & (weights[0] == 0)):
            ann["keypoints"][3 * k : 3 * k + 3] = [0, 0, 0]
            ann["num_keypoints"] -= 1
            changed += 1
    out = tmp_path / path.name
    out.write_text(json.dumps(data))
    return out, changed


def _perfect_heatmaps(instances) -> np.ndarray:
    codec = UDPHeatmapCodec()
    centers = np.stack([c for c, _, _, _ in instances])
    scales = np.stack([s for _, s, _, _ in instances])
    keypoints = np.stack([k for _, _, k, _ in instances])
    visible = np.stack([v for _, _, _, v in instances])
    heatmaps, weights = codec.encode(keypoints, visible, centers, scales)
    assert np.array_equal(weights > 0, visible)  # every labelled keypoint lies inside its crop
    return heatmaps


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_ckpt")
    return {k: save_hf(make_hf_model(num_labels=k), root / f"k{k}") for k in (14, 16, 17)}


@pytest.mark.parametrize(
    ("folder", "file", "dataset"),
    [("coco", "test_coco.json", "coco"), ("aic", "test_aic.json", "aic"), ("ap10k", "test_ap10k.json", "ap10k")],
)
def test_perfect_heatmaps_score_ap_one(folder, file, dataset, tmp_path):
    path, changed = _within_crops(require_shared(DATA / folder / file), tmp_path)
    assert changed == (2 if dataset == "aic" else 0)
    instances = _gt_instances(path)
    model = PerfectModel(len(instances[0][2]), _perfect_heatmaps(instances))
    report = evaluate(model, path, DATA / folder, batch_size=5)
    assert report.dataset.name == dataset  # inferred from the file
    assert not model.queue and model.calls == -(-len(instances) // 5)  # every crop asked for, in batches of 5
    assert report.num_instances == len(instances) and len(report.predictions) == len(instances)
    for key in ("AP", "AP50", "AP75", "AR"):
        assert report.metrics[key] == pytest.approx(1.0), (key, report.metrics)
    # The perfect keypoints come back to within 0.05 heatmap pixels, except within 8 pixels of the heatmap's edge,
    # where the Gaussian (radius 6) or the DARK blur (radius 5) is cut off and DARK (as in the original) is biased
    # by up to about a pixel. Scores are the
    # Gaussians' values at the nearest heatmap pixel: exp(-d^2 / 8) >= exp(-0.5 / 8) = 0.939 for d <= sqrt(0.5).
    predicted = np.array([p["keypoints"] for p in report.predictions]).reshape(len(instances), -1, 3)
    for (center, scale, gt, visible), pred in zip(instances, predicted, strict=True):
        pixel = scale / np.array([47, 63])  # image pixels per heatmap pixel (UDP)
        hm = (gt - center + scale / 2) / pixel
        inner = visible & np.all((hm >= 8) & (hm <= np.array([39, 55])), axis=1)
        error = np.abs(pred[:, :2] - gt) / pixel
        assert error[inner].max(initial=0) < 0.05 and error[visible].max() < 1.5
        assert np.all(pred[inner, 2] > 0.939) and np.all(pred[visible, 2] <= 1.0)


def test_perfect_heatmaps_score_pckh_100():
    path = require_shared(DATA / "mpii" / "test_mpii.json")
    entries = json.loads(path.read_text())
    # The original's MPII crop: centre y moved down by 15 * scale, scale x 1.25, 1-based MATLAB coordinates -> 0-based.
    instances = []
    for e in entries:
        center = np.array(e["center"], np.float64)
        center[1] += 15 * e["scale"]
        center -= 1
        scale = np.array([e["scale"], e["scale"]]) * 1.25 * 200
        joints = np.array(e["joints"], np.float64) - 1
        instances.append((center, scale, joints, np.array(e["joints_vis"]) > 0))
    order = list(dict.fromkeys(e["image"] for e in entries))  # images in first-seen order, people in file order
    ordered = [instances[i] for name in order for i, e in enumerate(entries) if e["image"] == name]
    model = PerfectModel(16, _perfect_heatmaps(ordered))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the head-size fallback warns: no head boxes in the test file
        report = evaluate(model, path, DATA / "mpii")
    assert report.dataset.name == "mpii" and not model.queue
    assert report.metrics["PCKh"] == pytest.approx(100.0)
    assert len(report.predictions) == len(entries)
    for e, p in zip(entries, report.predictions, strict=True):
        assert p["image"] == e["image"]
        visible = np.array(e["joints_vis"]) > 0
        assert np.abs(np.array(p["joints"])[visible] - (np.array(e["joints"]) - 1)[visible]).max() < 0.6


def test_perfect_heatmaps_with_shifted_keypoints_score_less(coco_dir):
    """The perfect model is not perfect by construction: keypoints moved by 10% of the box score well below 1."""
    path = coco_dir / "test_coco.json"
    instances = _gt_instances(path)
    moved = [(c, s, k + 0.1 * s / 1.25, v) for c, s, k, v in instances]
    report = evaluate(PerfectModel(17, _perfect_heatmaps(moved)), path, coco_dir)
    assert report.metrics["AP"] < 0.5


@pytest.mark.slow
def test_random_checkpoint_on_coco_with_detections(checkpoints, coco_dir, tmp_path):
    detections = coco_dir / "test_coco_det_AP_H_56.json"
    report = evaluate(str(checkpoints[17]), coco_dir / "test_coco.json", coco_dir, detections=detections, device="cpu")
    assert isinstance(report, EvalReport) and report.dataset.name == "coco"
    assert report.num_images == 4 and report.num_instances == len(json.loads(detections.read_text()))
    assert all(0.0 <= report.metrics[k] <= 1.0 for k in COCO_KEYS)
    # OKS-NMS at 0.9 only removes instances; without it every detection is scored.
    without = evaluate(
        str(checkpoints[17]), coco_dir / "test_coco.json", coco_dir, detections=detections, device="cpu", nms_thr=None
    )
    assert len(report.predictions) <= len(without.predictions) == report.num_instances
    # The predictions are the COCO results format (no bbox, as the original writes them), one per detection, in
    # image order then file order, rescored: box score x mean keypoint score above 0.2.
    image_order = [img["id"] for img in json.loads((coco_dir / "test_coco.json").read_text())["images"]]
    dets = sorted(json.loads(detections.read_text()), key=lambda d: image_order.index(d["image_id"]))
    assert [p["image_id"] for p in without.predictions] == [d["image_id"] for d in dets]
    for p, d in zip(without.predictions, dets, strict=True):
        assert set(p) == {"image_id", "category_id", "keypoints", "score"}
        kpt_scores = np.array(p["keypoints"]).reshape(17, 3)[:, 2]
        above = kpt_scores[kpt_scores > 0.2]
        assert p["score"] == pytest.approx(d["score"] * (above.mean() if above.size else 0.0), rel=1e-5)


@pytest.mark.parametrize(("folder", "file", "k"), [("aic", "test_aic.json", 14), ("ap10k", "test_ap10k.json", 17)])
def test_cli_eval_json_on_other_datasets(checkpoints, folder, file, k, tmp_path, capsys):
    path = require_shared(DATA / folder / file)
    out = tmp_path / "pred.json"
    code = cli_main(["eval", "--model", str(checkpoints[k]), "--annotations", str(path), "--images",
                     str(DATA / folder), "--device", "cpu", "--json", "--out", str(out)])  # fmt: skip
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    # -1 is pycocotools' "no ground truth in this area range" (these files have no medium-sized instance).
    assert set(COCO_KEYS) <= set(metrics) and all(0.0 <= metrics[key] <= 1.0 or metrics[key] == -1 for key in COCO_KEYS)
    assert metrics["APl"] >= 0.0
    predictions = json.loads(out.read_text())
    assert predictions and all(len(p["keypoints"]) == 3 * k for p in predictions)
    # Scoring the written predictions again (no model, no NMS) gives the same numbers.
    assert cli_main(["eval", "--annotations", str(path), "--predictions", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(metrics)


def test_cli_eval_mpii_table(checkpoints, capsys):
    path = require_shared(DATA / "mpii" / "test_mpii.json")
    code = cli_main(["eval", "--model", str(checkpoints[16]), "--annotations", str(path), "--images",
                     str(DATA / "mpii"), "--device", "cpu", "--flip-test"])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "PCKh" in captured.out and "5 instances, flip test" in captured.out
    assert "head" in captured.err.lower()  # the head-size fallback is said, not hidden


def test_cli_eval_table_for_coco(checkpoints, coco_dir, capsys):
    code = cli_main(["eval", "--model", str(checkpoints[17]), "--annotations", str(coco_dir / "test_coco.json"),
                     "--images", str(coco_dir), "--device", "cpu"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "4 images, 12 instances" in out and "AP" in out


def test_bad_inputs_are_clear_errors(checkpoints, coco_dir, tmp_path, capsys):
    ann = coco_dir / "test_coco.json"
    model = str(checkpoints[17])
    with pytest.raises(EvaluationError, match="not in"):
        evaluate(model, ann, tmp_path, device="cpu")  # images not found
    with pytest.raises(EvaluationError, match="annotations file not found"):
        evaluate(model, tmp_path / "missing.json", coco_dir, device="cpu")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(EvaluationError, match="cannot read it as JSON"):
        evaluate(model, tmp_path / "broken.json", coco_dir, device="cpu")
    with pytest.raises(EvaluationError, match="predicts 14 keypoints"):
        evaluate(str(checkpoints[14]), ann, coco_dir, device="cpu")  # model / data set mismatch
    detections = [{"image_id": 123456, "bbox": [1, 2, 3, 4], "score": 0.9, "category_id": 1}]
    with pytest.raises(EvaluationError, match="image_id 123456 is not an image"):
        evaluate(model, ann, coco_dir, detections=detections, device="cpu")
    with pytest.raises(EvaluationError, match="bbox must be a list of 4 numbers"):
        evaluate(model, ann, coco_dir, detections=[{"image_id": 785, "bbox": [1, 2, 3]}], device="cpu")
    # Annotation files that do not fit: named file, entry and field.
    from vitpose.evaluation.metrics import AnnotationError

    with pytest.raises(AnnotationError, match="has 17 keypoints per instance but dataset 'aic' has 14"):
        evaluate(model, ann, coco_dir, dataset="aic", device="cpu")
    broken = json.loads(ann.read_text())
    del broken["annotations"][0]["bbox"]
    (tmp_path / "no_bbox.json").write_text(json.dumps(broken))
    with pytest.raises(AnnotationError, match=r"no_bbox.json.*annotation 0 \(id 442619\): missing 'bbox'"):
        evaluate(model, tmp_path / "no_bbox.json", coco_dir, device="cpu")
    del broken["images"]
    with pytest.raises(AnnotationError, match="missing top-level key 'images'"):
        evaluate(model, broken, coco_dir, device="cpu")
    # On the command line: one line, exit code 2.
    assert cli_main(["eval", "--model", model, "--annotations", str(ann), "--images", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vitpose eval: error: 4 of the 4 annotated images are not in") and "Traceback" not in err
    assert cli_main(["eval", "--annotations", str(ann)]) == 2
    assert "--images DIR is needed" in capsys.readouterr().err
    assert cli_main(["eval", "--annotations", str(ann), "--predictions", str(ann), "--images", str(coco_dir)]) == 2
    assert "drop --model, --images and --detections" in capsys.readouterr().err


@pytest.mark.slow
def test_wholebody_reports_every_part(tmp_path, coco_dir, capsys):
    ann = require_shared(coco_dir / "test_coco_wholebody.json")
    checkpoint = save_hf(make_hf_model(num_labels=133), tmp_path / "wb")
    report = evaluate(str(checkpoint), ann, coco_dir, device="cpu")
    assert report.dataset.name == "wholebody" and report.num_instances == 12
    parts = ("body", "foot", "face", "lefthand", "righthand", "hand")
    for key in [*COCO_KEYS, *(f"{p}_AP" for p in parts), *(f"{p}_AR" for p in parts)]:
        assert -1.0 <= report.metrics[key] <= 1.0, key
    assert all(len(p["keypoints"]) == 133 * 3 for p in report.predictions)
    assert cli_main(["eval", "--model", str(checkpoint), "--annotations", str(ann), "--images", str(coco_dir),
                     "--device", "cpu", "--json"]) == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert printed == pytest.approx(report.metrics)


def test_mpii_head_boxes_found_beside_the_annotations_as_the_original(checkpoints, tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    source = require_shared(DATA / "mpii" / "test_mpii.json")
    entries = json.loads(source.read_text())
    (tmp_path / "test_mpii.json").write_text(source.read_text())
    boxes = np.zeros((2, 2, len(entries)))  # corner x (x, y) x person: a 50 x 40 head box each
    boxes[1, 0, :], boxes[1, 1, :] = 50.0, 40.0
    scipy_io.savemat(tmp_path / "mpii_gt_val.mat", {"headboxes_src": boxes})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no head-size fallback warning now
        report = evaluate(str(checkpoints[16]), tmp_path / "test_mpii.json", DATA / "mpii", device="cpu")
    assert any("head boxes from" in note for note in report.notes)
    assert not any("not the official" in note.lower() for note in report.notes)
    assert 0.0 <= report.metrics["PCKh"] <= 100.0
