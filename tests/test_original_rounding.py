"""Bug 8, second half: the instance rescoring compares keypoint scores with 0.2 in float64, as the original."""

from __future__ import annotations

import numpy as np

from vitpose.inference.results import instance_scores


def _original_rescore(box_score: float, keypoint_scores: np.ndarray, vis_thr: float = 0.2) -> float:
    """mmpose 0.x TopDownCocoDataset.evaluate: each float32 score `t_s > vis_thr` (a Python float: float64)."""
    kpt_score, valid_num = 0.0, 0
    for t_s in keypoint_scores:
        if float(t_s) > vis_thr:
            kpt_score += float(t_s)
            valid_num += 1
    return kpt_score / valid_num * box_score if valid_num else 0.0


def test_a_score_of_float32_point_two_counts_as_above_point_two():
    point_two = np.float32(0.2)  # 0.20000000298..., above the float64 0.2
    scores = np.array([[point_two, 0.1, 0.9], [point_two, point_two, 0.0]], dtype=np.float32)
    got = instance_scores(np.array([1.0, 0.5]), scores)
    assert got[1] > 0  # the float32 comparison dropped both keypoints (score 0)
    for i in range(2):
        np.testing.assert_allclose(got[i], _original_rescore([1.0, 0.5][i], scores[i]), rtol=1e-6)
    assert instance_scores(np.ones(1), np.array([[np.nextafter(point_two, 0)]], np.float32))[0] == 0
