"""OKS and OKS-NMS against hand-computed values and a plain per-pair loop written from the original's formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitpose.datasets import get_dataset_info
from vitpose.ops.oks import oks_matrix, oks_nms

COCO_SIGMAS = np.array(get_dataset_info("coco").sigmas)


def reference_oks(g, d, a_g, a_d, sigmas, vg=None, vd=None, vis_thr=None, both=False):
    """One pair, written from the formula of mmpose 0.x ``oks_iou`` (g: (K, 2), d: (K, 2))."""
    variances = (np.asarray(sigmas) * 2) ** 2
    total, count = 0.0, 0
    for k in range(len(sigmas)):
        if vis_thr is not None:
            # The original: ``list(vg > vis_thr) and list(vd > vis_thr)`` -> only d's mask when K > 0.
            visible = (vg[k] > vis_thr and vd[k] > vis_thr) if both else vd[k] > vis_thr
            if not visible:
                continue
        dx = d[k, 0] - g[k, 0]
        dy = d[k, 1] - g[k, 1]
        e = (dx**2 + dy**2) / variances[k] / ((a_g + a_d) / 2 + np.spacing(1)) / 2
        total += math.exp(-e)
        count += 1
    return total / count if count else 0.0


def reference_nms(kpts, scores, areas, sigmas, thr, kpt_scores=None, vis_thr=None, both=False):
    order = np.argsort(scores)[::-1]
    keep = []
    while len(order):
        i = order[0]
        keep.append(int(i))
        rest = []
        for j in order[1:]:
            vg = None if kpt_scores is None else kpt_scores[i]
            vd = None if kpt_scores is None else kpt_scores[j]
            oks = reference_oks(kpts[i], kpts[j], areas[i], areas[j], sigmas, vg, vd, vis_thr, both)
            if np.float32(oks) <= np.float32(thr):
                rest.append(j)
        order = np.array(rest, dtype=np.int64)
    return keep


def random_instances(rng, n, k=17, spread=30.0):
    """n noisy copies of one random pose; ``spread`` is the noise std in pixels (a number, or (n, 1, 1))."""
    base = rng.uniform(0, 200, size=(1, k, 2))
    kpts = base + rng.normal(0, 1, size=(n, k, 2)) * spread
    areas = rng.uniform(500, 20000, size=n)
    return kpts, areas


# --------------------------------------------------------------------------------------------------------------------
# oks_matrix


def test_identical_instances_have_oks_one():
    rng = np.random.default_rng(0)
    kpts = rng.uniform(0, 300, size=(1, 17, 2))
    out = oks_matrix(kpts, kpts, [1234.0], [1234.0], COCO_SIGMAS)
    assert out.shape == (1, 1) and out.dtype == np.float64
    assert out[0, 0] == 1.0


def test_known_offset_closed_form():
    # Two keypoints, sigma 0.1 each -> variance (2 * 0.1)^2 = 0.04. Areas 50 and 150 -> mean area 100.
    # Keypoint 0 identical (exp(0) = 1); keypoint 1 moved by (3, 4): d^2 = 25, e = 25 / 0.04 / 100 / 2 = 3.125.
    a = np.array([[[10.0, 20.0], [30.0, 40.0]]])
    b = np.array([[[10.0, 20.0], [33.0, 44.0]]])
    out = oks_matrix(a, b, [50.0], [150.0], [0.1, 0.1])
    expected = (1.0 + math.exp(-3.125)) / 2  # 0.52196...
    assert out[0, 0] == pytest.approx(expected, rel=1e-14)
    assert out[0, 0] == pytest.approx(0.5219684668, abs=1e-9)


def test_matrix_shape_and_symmetry_without_vis_thr():
    rng = np.random.default_rng(1)
    a, area_a = random_instances(rng, 3)
    b, area_b = random_instances(rng, 5)
    out = oks_matrix(a, b, area_a, area_b, COCO_SIGMAS)
    assert out.shape == (3, 5)
    np.testing.assert_allclose(out, oks_matrix(b, a, area_b, area_a, COCO_SIGMAS).T, rtol=0, atol=1e-15)
    assert np.all((out > 0) & (out <= 1))


@pytest.mark.parametrize("vis_thr", [None, 0.3])
@pytest.mark.parametrize("both", [False, True])
def test_matrix_equals_per_pair_loop(vis_thr, both):
    rng = np.random.default_rng(2)
    a, area_a = random_instances(rng, 6)
    b, area_b = random_instances(rng, 7)
    sa = rng.uniform(0, 1, size=(6, 17))
    sb = rng.uniform(0, 1, size=(7, 17))
    sb[0] = 0.0  # no visible keypoint in b[0] -> OKS 0
    out = oks_matrix(a, b, area_a, area_b, COCO_SIGMAS, sa, sb, vis_thr=vis_thr, require_both_visible=both)
    expected = np.array(
        [
            [
                reference_oks(a[i], b[j], area_a[i], area_b[j], COCO_SIGMAS, sa[i], sb[j], vis_thr, both)
                for j in range(7)
            ]
            for i in range(6)
        ]
    )
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    if vis_thr is not None:
        assert np.all(out[:, 0] == 0.0)


def test_matrix_chunking_matches_loop(monkeypatch):
    import vitpose.ops.oks as oks_module

    monkeypatch.setattr(oks_module, "_CHUNK_ELEMENTS", 40)  # forces several row chunks
    rng = np.random.default_rng(3)
    a, area_a = random_instances(rng, 9)
    b, area_b = random_instances(rng, 4)
    sb = rng.uniform(0, 1, size=(4, 17))
    out = oks_matrix(a, b, area_a, area_b, COCO_SIGMAS, scores_b=sb, vis_thr=0.5)
    expected = [
        [reference_oks(a[i], b[j], area_a[i], area_b[j], COCO_SIGMAS, None, sb[j], 0.5) for j in range(4)]
        for i in range(9)
    ]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_vis_thr_uses_only_second_instance_by_default():
    # Keypoint 0 identical, keypoint 1 offset (3, 4) as in the closed-form test.
    a = np.array([[[10.0, 20.0], [30.0, 40.0]]])
    b = np.array([[[10.0, 20.0], [33.0, 44.0]]])
    low_a = np.array([[0.9, 0.1]])  # a's keypoint 1 is below the threshold
    high_b = np.array([[0.9, 0.9]])
    # Original semantics: a's scores are ignored, both keypoints count.
    out = oks_matrix(a, b, [100.0], [100.0], [0.1, 0.1], low_a, high_b, vis_thr=0.5)
    assert out[0, 0] == pytest.approx((1 + math.exp(-3.125)) / 2, rel=1e-14)
    # Intended semantics: keypoint 1 is dropped, only the identical keypoint remains.
    both = oks_matrix(a, b, [100.0], [100.0], [0.1, 0.1], low_a, high_b, vis_thr=0.5, require_both_visible=True)
    assert both[0, 0] == 1.0
    # Swapping the roles: now b's (second) scores are the low ones, so the original drops keypoint 1.
    swapped = oks_matrix(b, a, [100.0], [100.0], [0.1, 0.1], high_b, low_a, vis_thr=0.5)
    assert swapped[0, 0] == 1.0
    # Nothing above the threshold -> 0; vis_thr is strict (score == vis_thr does not count).
    none = oks_matrix(a, b, [100.0], [100.0], [0.1, 0.1], scores_b=[[0.5, 0.5]], vis_thr=0.5)
    assert none[0, 0] == 0.0


def test_sigmas_from_dataset_name():
    rng = np.random.default_rng(4)
    a, area_a = random_instances(rng, 2)
    np.testing.assert_array_equal(
        oks_matrix(a, a, area_a, area_a, "coco"), oks_matrix(a, a, area_a, area_a, COCO_SIGMAS)
    )


def test_empty_inputs():
    kpts = np.zeros((3, 17, 2))
    assert oks_matrix(np.zeros((0, 17, 2)), kpts, [], np.ones(3), COCO_SIGMAS).shape == (0, 3)
    assert oks_matrix(kpts, np.zeros((0, 17, 2)), np.ones(3), [], COCO_SIGMAS).shape == (3, 0)
    # K = 0: no keypoint to compare, OKS 0 (as the original's empty mean).
    np.testing.assert_array_equal(oks_matrix(np.zeros((2, 0, 2)), np.zeros((1, 0, 2)), [1, 1], [1], []), [[0], [0]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keypoints_a": np.zeros((2, 17, 3))}, "keypoints_a must have shape"),
        ({"keypoints_b": np.zeros((2, 16, 2))}, "K = 17"),
        ({"areas_a": np.ones(3)}, "areas_a"),
        ({"areas_b": -np.ones(2)}, "non-negative"),
        ({"sigmas": COCO_SIGMAS[:16]}, "sigmas has 16"),
        ({"sigmas": np.zeros(17)}, "positive"),
        ({"vis_thr": 0.3}, "scores_b"),
        ({"vis_thr": 0.3, "scores_b": np.ones((2, 17)), "require_both_visible": True}, "scores_a"),
        ({"vis_thr": 0.3, "scores_b": np.ones((2, 16))}, "scores_b must have shape"),
    ],
)
def test_matrix_validation(kwargs, message):
    args = {
        "keypoints_a": np.zeros((2, 17, 2)),
        "keypoints_b": np.zeros((2, 17, 2)),
        "areas_a": np.ones(2),
        "areas_b": np.ones(2),
        "sigmas": COCO_SIGMAS,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        oks_matrix(**args)


# --------------------------------------------------------------------------------------------------------------------
# oks_nms


def _three_instances():
    rng = np.random.default_rng(5)
    best = rng.uniform(100, 300, size=(17, 2))
    duplicate = best + 0.5  # half a pixel off on a ~10^4 px^2 person: OKS ~0.99
    distant = best + 400.0
    return np.stack([duplicate, best, distant]), np.array([0.8, 0.9, 0.5]), np.full(3, 10000.0)


def test_nms_drops_duplicate_keeps_distant():
    kpts, scores, areas = _three_instances()
    oks = oks_matrix(kpts[1:2], kpts, areas[1:2], areas, COCO_SIGMAS)[0]
    assert oks[0] > 0.9 and oks[2] < 1e-6  # what the case is built to be
    keep = oks_nms(kpts, scores, areas, COCO_SIGMAS, thr=0.9)
    assert keep.dtype == np.int64
    assert keep.tolist() == [1, 2]  # the best first, the duplicate (index 0) suppressed
    # A threshold above the duplicate's OKS keeps all three, in descending score.
    assert oks_nms(kpts, scores, areas, COCO_SIGMAS, thr=0.999).tolist() == [1, 0, 2]


def test_nms_keeps_exactly_equal_oks():
    kpts, scores, areas = _three_instances()
    oks = float(oks_matrix(kpts[1:2], kpts[0:1], areas[1:2], areas[0:1], COCO_SIGMAS)[0, 0])
    # Only OKS > thr suppresses: at thr == OKS the duplicate survives, just below it does not.
    assert oks_nms(kpts, scores, areas, COCO_SIGMAS, thr=oks).tolist() == [1, 0, 2]
    below = float(np.nextafter(np.float32(oks), np.float32(0)))
    assert oks_nms(kpts, scores, areas, COCO_SIGMAS, thr=below).tolist() == [1, 2]


def test_nms_compares_in_float32_like_the_original():
    # One keypoint whose OKS is 0.9 + 1e-9: above 0.9 in float64, equal to float32(0.9) in float32.
    sigma, area = 0.05, 400.0
    target = 0.9 + 1e-9
    e = -math.log(target)
    dx = math.sqrt(e * (2 * sigma) ** 2 * area * 2)
    kpts = np.array([[[0.0, 0.0]], [[dx, 0.0]]])
    oks = oks_matrix(kpts[:1], kpts[1:], [area], [area], [sigma])[0, 0]
    assert oks > 0.9 and np.float32(oks) == np.float32(0.9)
    assert oks_nms(kpts, [1.0, 0.5], [area, area], [sigma], thr=0.9).tolist() == [0, 1]


def test_nms_order_and_ties():
    # Four instances far apart: nothing is suppressed; the kept order is np.argsort(scores)[::-1], ties included.
    kpts = np.stack([np.full((17, 2), 1000.0 * i) for i in range(4)])
    scores = np.array([0.5, 0.7, 0.5, 0.7])
    keep = oks_nms(kpts, scores, np.full(4, 5000.0), COCO_SIGMAS)
    assert keep.tolist() == np.argsort(scores)[::-1].tolist()
    assert sorted(keep.tolist()) == [0, 1, 2, 3]
    assert np.all(np.diff(scores[keep]) <= 0)


def test_nms_chain_is_greedy_not_transitive():
    # A (best) overlaps B, B overlaps C, A does not overlap C: B is dropped by A, so C survives.
    base = np.zeros((17, 2))
    step = np.zeros((17, 2))
    step[:, 0] = 4.0  # 4 px along x per step, area 10^4
    kpts = np.stack([base, base + step, base + 2 * step])
    areas = np.full(3, 10000.0)
    m = oks_matrix(kpts, kpts, areas, areas, COCO_SIGMAS)
    thr = (m[0, 1] + m[0, 2]) / 2  # between OKS(A,B) (adjacent) and OKS(A,C)
    assert m[0, 1] > thr and m[1, 2] > thr and m[0, 2] < thr
    assert oks_nms(kpts, [0.9, 0.8, 0.7], areas, COCO_SIGMAS, thr=thr).tolist() == [0, 2]


@pytest.mark.parametrize("thr", [0.5, 0.7, 0.9])
@pytest.mark.parametrize(("vis_thr", "both"), [(None, False), (0.4, False), (0.4, True)])
def test_nms_equals_reference_loop(thr, vis_thr, both):
    rng = np.random.default_rng(6)
    kpts, areas = random_instances(rng, 25, spread=rng.uniform(0.5, 12.0, size=(25, 1, 1)))
    scores = rng.uniform(0, 1, size=25)
    kpt_scores = rng.uniform(0, 1, size=(25, 17))
    keep = oks_nms(kpts, scores, areas, COCO_SIGMAS, thr, kpt_scores, vis_thr, require_both_visible=both)
    expected = reference_nms(kpts, scores, areas, COCO_SIGMAS, thr, kpt_scores, vis_thr, both)
    assert keep.tolist() == expected
    assert 1 < len(keep) < 25  # the case exercises both keeping and dropping


def test_nms_vis_thr_counts_candidate_scores_only():
    # The candidate (lower score) matches the best on 16 keypoints and is far off on one.
    best = np.random.default_rng(7).uniform(100, 300, size=(17, 2))
    candidate = best.copy()
    candidate[0] += 200.0
    kpts = np.stack([best, candidate])
    areas = np.full(2, 10000.0)
    # Without vis_thr: OKS ~16/17 > 0.9 -> suppressed.
    assert oks_nms(kpts, [0.9, 0.8], areas, COCO_SIGMAS).tolist() == [0]
    # The candidate's own keypoints are confident only at the far-off one -> OKS ~0 -> kept.
    cand_only_far = np.zeros((2, 17))
    cand_only_far[1, 0] = 1.0
    cand_only_far[0] = 1.0
    assert oks_nms(kpts, [0.9, 0.8], areas, COCO_SIGMAS, 0.9, cand_only_far, vis_thr=0.5).tolist() == [0, 1]
    # The best's scores are ignored by default: low scores on the best instance change nothing...
    best_low = np.ones((2, 17))
    best_low[0] = 0.0
    assert oks_nms(kpts, [0.9, 0.8], areas, COCO_SIGMAS, 0.9, best_low, vis_thr=0.5).tolist() == [0]
    # ...but with require_both_visible no keypoint counts, the OKS is 0 and the candidate is kept.
    keep = oks_nms(kpts, [0.9, 0.8], areas, COCO_SIGMAS, 0.9, best_low, vis_thr=0.5, require_both_visible=True)
    assert keep.tolist() == [0, 1]


def test_nms_empty_and_single():
    keep = oks_nms(np.zeros((0, 17, 2)), np.zeros(0), np.zeros(0), COCO_SIGMAS)
    assert keep.shape == (0,) and keep.dtype == np.int64
    assert oks_nms(np.zeros((1, 17, 2)), [0.3], [100.0], COCO_SIGMAS).tolist() == [0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scores": np.ones(3)}, "scores must have shape"),
        ({"areas": np.ones((2, 1))}, "areas must have shape"),
        ({"keypoints": np.zeros((2, 17))}, "keypoints must have shape"),
        ({"sigmas": COCO_SIGMAS[:5]}, "sigmas has 5"),
        ({"vis_thr": 0.2}, "keypoint_scores"),
        ({"vis_thr": 0.2, "keypoint_scores": np.ones((2, 5))}, "keypoint_scores must have shape"),
    ],
)
def test_nms_validation(kwargs, message):
    args = {"keypoints": np.zeros((2, 17, 2)), "scores": np.ones(2), "areas": np.ones(2), "sigmas": COCO_SIGMAS}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        oks_nms(**args)
