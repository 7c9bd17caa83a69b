"""Evaluation: OKS and OKS-NMS, the original's evaluation pipeline (`evaluate`), COCO keypoint AP and MPII PCKh."""

from vitpose.evaluation.pipeline import EvalReport, EvaluationError, EvaluationInterrupted, evaluate, infer_dataset
from vitpose.ops.oks import oks_matrix, oks_nms

__all__ = [
    "EvalReport",
    "EvaluationError",
    "EvaluationInterrupted",
    "evaluate",
    "infer_dataset",
    "oks_matrix",
    "oks_nms",
]
