"""MPII loading and PCKh (vitpose.evaluation.mpii) against the arithmetic of the original ViTPose evaluation
(mmpose 0.x TopDownMpiiDataset._get_db / evaluate)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, require_shared
from vitpose.datasets import get_dataset_info
from vitpose.evaluation.mpii import (
    MPII_JOINT_NAMES,
    MpiiAnnotationError,
    MpiiSample,
    format_pckh_table,
    load_mpii,
    mpii_to_coco,
    pckh,
    pckh_per_joint,
)

MPII_JSON = DATA / "mpii" / "test_mpii.json"
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "PCKh", "PCKh@0.1")


def _entry(joints=None, vis=None, center=(100.0, 100.0), scale=1.0, **extra) -> dict:
    """A valid MPII entry with integer 1-based joints on a grid (joint j at (10 + 20 j, 50 + 10 j))."""
    if joints is None:
        joints = [[10.0 + 20 * j, 50.0 + 10 * j] for j in range(16)]
    return {
        "image": "x.jpg",
        "joints": joints,
        "joints_vis": [1] * 16 if vis is None else vis,
        "center": list(center),
        "scale": scale,
        **extra,
    }


def _write(tmp_path: Path, data, name: str = "ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _quiet_load(path: Path, **kwargs) -> list[MpiiSample]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_mpii(path, **kwargs)


def _gt(samples) -> np.ndarray:
    return np.stack([s.joints for s in samples]).copy()


def test_joint_order_matches_dataset_info():
    assert MPII_JOINT_NAMES == get_dataset_info("mpii").keypoint_names
    assert MPII_JOINT_NAMES[6:10] == ("pelvis", "thorax", "upper_neck", "head_top")


# ------------------------------------------------------------------------------------------------------ loading


def test_load_shared_file():
    path = require_shared(MPII_JSON)
    raw = json.loads(path.read_text())
    with pytest.warns(UserWarning, match="NOT the official MPII head box") as record:
        samples = load_mpii(path)
    assert sum(issubclass(w.category, UserWarning) for w in record) == 1  # once, not once per sample
    assert len(samples) == 5
    for sample, entry in zip(samples, raw, strict=True):
        assert sample.image == entry["image"]
        assert sample.joints.shape == (16, 2) and sample.joints.dtype == np.float64
        np.testing.assert_array_equal(sample.joints, np.asarray(entry["joints"]) - 1.0)
        np.testing.assert_array_equal(sample.visible, np.asarray(entry["joints_vis"]) > 0)
        assert sample.center.shape == (2,) and sample.scale.shape == (2,)
    # Entry 0: center (966, 340), scale 4.718488 (units of 200 px), by hand from the original's formula:
    # y += 15 * scale; scale *= 1.25; center -= 1 (1-based -> 0-based); extent in pixels = scale * 200.
    assert raw[0]["center"] == [966.0, 340.0] and raw[0]["scale"] == 4.718488
    np.testing.assert_allclose(samples[0].center, [965.0, 340.0 + 15 * 4.718488 - 1.0], rtol=1e-6)
    np.testing.assert_allclose(samples[0].scale, [4.718488 * 1.25 * 200] * 2, rtol=1e-6)
    # Entry 2 has its ankles unlabelled (written -1, -1).
    assert not samples[2].visible[0] and not samples[2].visible[5] and samples[2].visible[1:5].all()
    # No head boxes in the file: the fallback (upper_neck-head_top distance) is used and flagged.
    for sample, entry in zip(samples, raw, strict=True):
        neck, top = np.asarray(entry["joints"][8]), np.asarray(entry["joints"][9])
        assert sample.head_source == "neck_head_top"
        assert sample.head_size == pytest.approx(math.hypot(*(top - neck)))


def test_center_scale_without_adjustment_when_center_x_is_minus_one(tmp_path):
    # The original shifts y and pads by 1.25 only when center[0] != -1; the -1 to 0-based shift always applies.
    samples = _quiet_load(_write(tmp_path, [_entry(center=(-1.0, 50.0), scale=2.0), _entry(center=(40, 50), scale=2)]))
    np.testing.assert_allclose(samples[0].center, [-2.0, 49.0])
    np.testing.assert_allclose(samples[0].scale, [400.0, 400.0])
    np.testing.assert_allclose(samples[1].center, [39.0, 50.0 + 30.0 - 1.0])
    np.testing.assert_allclose(samples[1].scale, [500.0, 500.0])


# ----------------------------------------------------------------------------------------------------- head sizes


def _head_entries() -> list[dict]:
    """Three persons: 0 has a headbox field, 1 only a labelled neck/head_top, 2 an unlabelled head_top."""
    e0 = _entry(headbox=[[10.0, 20.0], [40.0, 60.0]])  # diagonal 50
    e1 = _entry()
    e1["joints"][8], e1["joints"][9] = [100.0, 100.0], [106.0, 92.0]  # neck-head_top distance 10
    vis2 = [1] * 16
    vis2[9] = 0
    e2 = _entry(vis=vis2)
    return [e0, e1, e2]


def _mat_boxes(boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    """``headboxes_src`` as the original indexes it: (corner, coordinate, person)."""
    out = np.zeros((2, 2, len(boxes)))
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        out[0, :, i] = (x1, y1)
        out[1, :, i] = (x2, y2)
    return out


def test_headbox_field_both_forms(tmp_path):
    entries = [_entry(headbox=[[10, 20], [40, 60]]), _entry(headbox=[5, 5, 65, 85])]  # diagonals 50 and 100
    samples = _quiet_load(_write(tmp_path, entries))
    assert [s.head_size for s in samples] == pytest.approx([0.6 * 50, 0.6 * 100])
    assert [s.head_source for s in samples] == ["headbox", "headbox"]


def test_head_sizes_fallback_and_exclusion(tmp_path):
    path = _write(tmp_path, _head_entries())
    with pytest.warns(UserWarning, match="1 of 3 samples .* NOT the official .* 1 more have no head size"):
        samples = load_mpii(path)
    assert samples[0].head_size == pytest.approx(30.0) and samples[0].head_source == "headbox"
    assert samples[1].head_size == pytest.approx(10.0) and samples[1].head_source == "neck_head_top"
    assert samples[2].head_size is None and samples[2].head_source is None
    with pytest.warns(UserWarning, match="1 of 3 samples have no head size"):
        metrics = pckh(_gt(samples), samples)
    assert metrics["num_samples"] == 2 and metrics["num_excluded"] == 1
    assert "left out (no head size): 1" in format_pckh_table(metrics)


def test_head_sizes_from_mat_file(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    entries = _head_entries()
    path = _write(tmp_path, entries)
    mat = tmp_path / "mpii_gt_val.mat"
    # Person 1: corners (10, 20)-(40, 60), diagonal 50 (read with the wrong axis order it would be 22.4).
    # Person 2: corners (0, 0)-(60, 80), diagonal 100. Person 0's box is ignored: its headbox field comes first.
    pos = np.stack([np.asarray(e["joints"], dtype=np.float64) for e in entries], axis=-1)  # (16, 2, N), 1-based
    scipy_io.savemat(
        mat, {"headboxes_src": _mat_boxes([(0, 0, 6, 8), (10, 20, 40, 60), (0, 0, 60, 80)]), "pos_gt_src": pos}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every sample has a real head box and the positions agree: no warning
        samples = load_mpii(path, headboxes=mat)
    assert [s.head_size for s in samples] == pytest.approx([30.0, 30.0, 60.0])
    assert [s.head_source for s in samples] == ["headbox", "mat", "mat"]


def test_mat_file_in_wrong_order_warns(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    entries = _head_entries()
    for i, e in enumerate(entries):
        e["joints"] = [[x + 7 * i, y] for x, y in e["joints"]]  # persons at different places
    pos = np.stack([np.asarray(e["joints"], dtype=np.float64) for e in entries], axis=-1)
    mat = tmp_path / "gt.mat"
    scipy_io.savemat(mat, {"headboxes_src": _mat_boxes([(0, 0, 6, 8)] * 3), "pos_gt_src": pos[:, :, ::-1]})
    with pytest.warns(UserWarning, match="matched by order"):
        load_mpii(_write(tmp_path, entries), headboxes=mat)


# -------------------------------------------------------------------------------------------------------- PCKh


def test_ground_truth_as_predictions_gives_100():
    samples = _quiet_load(require_shared(MPII_JSON))
    metrics = pckh(_gt(samples), samples)
    for key in (*GROUPS, *(f"PCKh_{n}" for n in MPII_JOINT_NAMES)):
        assert metrics[key] == 100.0, key
    assert metrics["num_samples"] == 5 and metrics["num_excluded"] == 0
    assert list(metrics)[:9] == list(GROUPS)
    # (N, 16, 3) with scores is accepted, the scores ignored.
    with_scores = np.concatenate([_gt(samples), np.zeros((5, 16, 1))], axis=-1)
    assert pckh(with_scores, samples)["PCKh"] == 100.0


def _two_samples(tmp_path) -> list[MpiiSample]:
    # A: head size 0.6 * 50 = 30 (threshold 15 px); B: 0.6 * 100 = 60 (threshold 30 px).
    vis_b = [1] * 16
    vis_b[0] = vis_b[15] = 0  # B: right_ankle and left_wrist unlabelled
    entries = [_entry(headbox=[0, 0, 30, 40]), _entry(vis=vis_b, headbox=[0, 0, 60, 80])]
    return _quiet_load(_write(tmp_path, entries))


def _moved_predictions(samples) -> np.ndarray:
    pred = _gt(samples)
    pred[0, 9] += (14.99, 0)  # A head_top: inside (14.99 <= 15)
    pred[0, 10] += (9, 12)  # A right_wrist: exactly 15 px = 0.5 head: inside (the test is <=)
    pred[0, 15] += (0, 15.01)  # A left_wrist: outside
    pred[0, 1] += (16, 0)  # A right_knee: outside
    pred[1, 9] += (0, 31)  # B head_top: outside (31 > 30)
    pred[1, 13] += (18, 24)  # B left_shoulder: exactly 30 px: inside
    pred[1, 0] += (500, 500)  # B right_ankle is unlabelled: does not count
    return pred


def test_hand_built_case(tmp_path):
    samples = _two_samples(tmp_path)
    metrics = pckh(_moved_predictions(samples), samples)
    expected_joint = dict.fromkeys(MPII_JOINT_NAMES, 100.0)
    expected_joint.update(right_knee=50.0, head_top=50.0, left_wrist=0.0)  # right_ankle 1/1, left_wrist 0/1
    for name, value in expected_joint.items():
        assert metrics[f"PCKh_{name}"] == pytest.approx(value), name
    assert metrics["Head"] == pytest.approx(50.0)
    assert metrics["Shoulder"] == pytest.approx(100.0)
    assert metrics["Elbow"] == pytest.approx(100.0)
    assert metrics["Wrist"] == pytest.approx((0.0 + 100.0) / 2)  # plain mean of left and right, not count-weighted
    assert metrics["Hip"] == pytest.approx(100.0)
    assert metrics["Knee"] == pytest.approx((100.0 + 50.0) / 2)
    assert metrics["Ankle"] == pytest.approx(100.0)
    # Mean over the 14 non-masked joints, weighted by labelled counts: 12 joints x 2 + 2 joints x 1 = 26 labelled,
    # 3 misses (A right_knee, A left_wrist, B head_top).
    assert metrics["PCKh"] == pytest.approx(100.0 * 23 / 26, rel=1e-12)
    # At 0.1 (3 px for A, 6 px for B) every moved labelled joint misses: A 9, 10, 15, 1 and B 9, 13.
    assert metrics["PCKh@0.1"] == pytest.approx(100.0 * 20 / 26, rel=1e-7)
    pck, counts = pckh_per_joint(_moved_predictions(samples), samples)
    np.testing.assert_array_equal(counts, [1] + [2] * 14 + [1])
    np.testing.assert_allclose(pck, [expected_joint[n] for n in MPII_JOINT_NAMES])
    # At threshold 0.6 (18 px for A, 36 px for B) A's right_knee (16), A's left_wrist (15.01) and B's head_top (31)
    # are inside too: everything is correct.
    assert pckh(_moved_predictions(samples), samples, pckh_thr=0.6)["PCKh"] == pytest.approx(100.0)
    with pytest.deprecated_call(match=r"pckh\(threshold=\.\.\.\) is deprecated: use pckh_thr="):
        assert pckh(_moved_predictions(samples), samples, threshold=0.6)["PCKh"] == pytest.approx(100.0)


def test_pelvis_and_thorax_do_not_change_pckh(tmp_path):
    samples = _two_samples(tmp_path)
    base = pckh(_moved_predictions(samples), samples)
    far = _moved_predictions(samples)
    far[:, 6:8] += 1000.0
    moved = pckh(far, samples)
    for key in GROUPS:
        assert moved[key] == base[key], key
    assert base["PCKh_pelvis"] == 100.0 and moved["PCKh_pelvis"] == 0.0 and moved["PCKh_thorax"] == 0.0
    # upper_neck, on the contrary, counts in the mean though it belongs to no group.
    neck = _moved_predictions(samples)
    neck[:, 8] += 1000.0
    assert pckh(neck, samples)["PCKh"] == pytest.approx(100.0 * 21 / 26)


def _original_style_pckh(pred_0b, gt_0b, visible, boxes) -> tuple[float, float, float]:
    """Independent re-statement of the original's evaluate on its own data layout: 1-based (16, 2, N) positions,
    (16, N) jnt_missing, (2, 2, N) head boxes, masked arrays for pelvis/thorax, the 0.1 row of a float32 table."""
    preds = np.transpose(pred_0b + 1.0, [1, 2, 0])
    gts = np.transpose(gt_0b + 1.0, [1, 2, 0])
    jnt_visible = visible.T.astype(np.float64)
    dist = np.sqrt(((preds - gts) ** 2).sum(axis=1))
    head = np.sqrt(((boxes[1] - boxes[0]) ** 2).sum(axis=0)) * 0.6
    scaled = dist / head[None, :] * jnt_visible
    count = jnt_visible.sum(axis=1)
    per_joint = 100.0 * ((scaled <= 0.5) * jnt_visible).sum(axis=1) / count
    per_joint01 = (100.0 * ((scaled <= 0.1) * jnt_visible).sum(axis=1) / count).astype(np.float32)
    mask = np.zeros(16, dtype=bool)
    mask[6:8] = True
    ratio = np.ma.array(count, mask=mask) / count[~mask].sum()
    mean = float(np.sum(np.ma.array(per_joint, mask=mask) * ratio))
    mean01 = float(np.sum(np.ma.array(per_joint01, mask=mask) * ratio))
    wrist = 0.5 * (per_joint[15] + per_joint[10])
    return mean, mean01, wrist


def test_matches_original_layout_on_random_data(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    n = 40
    joints = rng.uniform(50, 450, size=(n, 16, 2)).round(1) + 1.0  # 1-based, as in the file
    visible = rng.random((n, 16)) > 0.15
    visible[:, :] |= ~visible.any(axis=0)  # every joint labelled at least once
    x1 = rng.uniform(0, 400, n)
    y1 = rng.uniform(0, 400, n)
    boxes = _mat_boxes(list(zip(x1, y1, x1 + rng.uniform(20, 60, n), y1 + rng.uniform(20, 60, n), strict=True)))
    entries = [_entry(joints=j.tolist(), vis=v.astype(int).tolist()) for j, v in zip(joints, visible, strict=True)]
    mat = tmp_path / "gt.mat"
    scipy_io.savemat(mat, {"headboxes_src": boxes})
    samples = load_mpii(_write(tmp_path, entries), headboxes=mat)
    pred = _gt(samples) + rng.normal(0, 12, size=(n, 16, 2))
    metrics = pckh(pred, samples)
    mean, mean01, wrist = _original_style_pckh(pred, _gt(samples), visible, boxes)
    assert 20 < metrics["PCKh"] < 95 and 0 < metrics["PCKh@0.1"] < 60  # a non-trivial case
    assert metrics["PCKh"] == pytest.approx(mean, rel=1e-12)
    assert metrics["PCKh@0.1"] == pytest.approx(mean01, rel=1e-12)
    assert metrics["Wrist"] == pytest.approx(wrist, rel=1e-12)


def test_prediction_shape_errors(tmp_path):
    samples = _two_samples(tmp_path)
    with pytest.raises(ValueError, match=r"\(N, 16, 2\)"):
        pckh(np.zeros((2, 17, 2)), samples)
    with pytest.raises(ValueError, match="3 predictions for 2 samples"):
        pckh(np.zeros((3, 16, 2)), samples)


def test_nan_prediction_is_a_miss(tmp_path):
    samples = _two_samples(tmp_path)
    pred = _gt(samples)
    pred[0, 12] = np.nan
    metrics = pckh(pred, samples)
    assert metrics["PCKh_right_shoulder"] == 50.0 and metrics["PCKh"] == pytest.approx(100.0 * 25 / 26)


def test_format_table(tmp_path):
    samples = _two_samples(tmp_path)
    table = format_pckh_table(pckh(_moved_predictions(samples), samples))
    lines = table.splitlines()
    assert lines[0].split() == list(GROUPS)
    assert lines[1].split()[:2] == ["50.00", "100.00"]
    assert f"{100 * 23 / 26:.2f}" in lines[1]
    assert any(line.split()[:2] == ["head_top", "50.00"] for line in lines)
    assert "pelvis" in table and "not in the mean" in table and "samples evaluated: 2" in table
    assert len({len(line) for line in lines[:2]}) == 1  # fixed width


def test_mpii_to_coco(tmp_path):
    samples = _two_samples(tmp_path)
    coco = mpii_to_coco(samples, image_sizes={"x.jpg": (640, 480)})
    assert coco["images"] == [{"id": 1, "file_name": "x.jpg", "width": 640, "height": 480}]
    assert [a["image_id"] for a in coco["annotations"]] == [1, 1]
    b = coco["annotations"][1]
    assert b["keypoints"][:3] == [0.0, 0.0, 0] and b["keypoints"][3:6] == [29.0, 59.0, 2] and b["num_keypoints"] == 14
    assert b["bbox"][2:] == pytest.approx([250.0, 250.0])
    assert len(coco["categories"][0]["keypoints"]) == 16
    json.dumps(coco)


# ---------------------------------------------------------------------------------------------------- bad files


def test_not_a_list(tmp_path):
    path = _write(tmp_path, {"images": [], "annotations": []})
    with pytest.raises(MpiiAnnotationError, match=r"ann\.json: top level is a JSON dict.* pass --dataset coco"):
        load_mpii(path)
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(MpiiAnnotationError, match=r"bad\.json: is not valid JSON"):
        load_mpii(bad)


def test_missing_joints(tmp_path):
    entry = _entry()
    del entry["joints"]
    path = _write(tmp_path, [_entry(), entry])
    with pytest.raises(MpiiAnnotationError, match=r"ann.json: entry 1, field 'joints': is missing; every entry needs"):
        load_mpii(path)


def test_seventeen_joints(tmp_path):
    path = _write(tmp_path, [_entry(joints=[[1.0, 2.0]] * 17, vis=[1] * 17)])
    with pytest.raises(MpiiAnnotationError) as info:
        load_mpii(path)
    message = str(info.value)
    assert "ann.json: entry 0, field 'joints'" in message
    assert "has 17 joints, MPII has 16: is it a COCO file? pass --dataset coco" in message


@pytest.mark.parametrize("scale", [0, -1.5, "2", None, float("nan")])
def test_bad_scale(tmp_path, scale):
    path = _write(tmp_path, [_entry(), _entry(), _entry(scale=scale)])
    with pytest.raises(MpiiAnnotationError, match=r"entry 2, field 'scale': .*expected a number > 0; give the person"):
        load_mpii(path)


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("joints", [[1.0, "a"]] * 16, "must be a list of 16"),
        ("joints", [[1.0, float("inf")]] * 16, "not finite"),
        ("joints_vis", [1] * 15, "expected 16 numbers"),
        ("center", [1.0], r"expected \[x, y\]"),
        ("image", 3, "expected a file name"),
        ("headbox", [1, 2, 3], "expected"),
        ("headbox", [5, 5, 5, 5], "positive size"),
    ],
)
def test_bad_fields(tmp_path, field, value, pattern):
    entry = _entry()
    entry[field] = value
    with pytest.raises(MpiiAnnotationError, match=rf"entry 0, field '{field}': .*{pattern}"):
        load_mpii(_write(tmp_path, [entry]))


def test_mat_count_mismatch(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    mat = tmp_path / "mpii_gt_val.mat"
    scipy_io.savemat(mat, {"headboxes_src": _mat_boxes([(0, 0, 6, 8)] * 2)})
    with pytest.raises(MpiiAnnotationError) as info:
        load_mpii(_write(tmp_path, _head_entries()), headboxes=mat)
    message = str(info.value)
    assert "mpii_gt_val.mat" in message and "field 'headboxes_src'" in message
    assert "has 2 head boxes but" in message and "ann.json has 3 entries" in message
    assert "pass the .mat file that belongs to this annotation file" in message


def test_mat_without_headboxes(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    mat = tmp_path / "other.mat"
    scipy_io.savemat(mat, {"something": np.zeros(3)})
    with pytest.raises(MpiiAnnotationError, match=r"other\.mat, field 'headboxes_src': missing"):
        load_mpii(_write(tmp_path, _head_entries()), headboxes=mat)
    with pytest.raises(FileNotFoundError, match=r"nope\.mat"):
        load_mpii(_write(tmp_path, _head_entries()), headboxes=tmp_path / "nope.mat")
