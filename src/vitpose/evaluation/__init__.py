"""Evaluation: object keypoint similarity (OKS) and OKS non-maximum suppression."""

from vitpose.evaluation.oks import oks_matrix, oks_nms

__all__ = ["oks_matrix", "oks_nms"]
