"""Training and fine-tuning of ViTPose / ViTPose++ with the original recipe (`vitpose train`).

- `train(...)` / `TrainConfig` / `Trainer`: a run (evaluation, checkpoints, resume, CSV log and plot, torchrun); the
  set-up in `trainer`, the epochs in `loop`, the files in `out` in `checkpointing`, torchrun in `distributed`.
- `heatmap_loss`, `LossFn`: the default training loss and the signature of `train(..., loss_fn=...)`.
- `KeypointDataset`, `MultiDataset`, `collate_samples`, `ResumableSampler`: top-down training samples from COCO-format
  keypoint files, with the original augmentations and UDP heatmap targets from `vitpose.ops.codec.UDPHeatmapCodec`.
- `AugmentConfig`, `sample_geometry`: the augmentations as crop geometry.
- `heatmap_mse_loss`: the weighted heatmap MSE (mmpose `JointsMSELoss(use_target_weight=True)`), also behind
  `VitPoseForPoseEstimation(..., labels=..., label_weights=...).loss`.
- `param_groups`, `build_optimizer`, `build_scheduler`, `lr_factor`: AdamW with layer-wise lr decay, warm-up and steps.
- `build_training_model`, `adapt_heads`, `preset_config`: the model to train (checkpoint or preset, heads fitted).
- `load_dataset_info`, `dataset_info_from_dict`: custom data sets (keypoints, skeleton, flip pairs, sigmas) from JSON.
- `distill(...)` / `DistillConfig` / `DistillationLoss`: knowledge transfer from a large model to a small one (the
  paper's output distillation and knowledge token, `vitpose distill`), in `distill`.
"""

from vitpose.datasets.custom import (
    dataset_info_from_dict,
    infer_dataset_info,
    load_dataset_info,
    resolve_dataset_info,
)
from vitpose.models.loss import heatmap_mse_loss
from vitpose.training.augment import AugmentConfig, CropGeometry, sample_geometry
from vitpose.training.data import (
    KeypointDataset,
    MultiDataset,
    ResumableSampler,
    TrainingSample,
    collate_samples,
    load_coco_instances,
)
from vitpose.training.distill import DistillationLoss, DistillConfig, DistillResult, distill
from vitpose.training.model_setup import adapt_heads, build_training_model, is_preset, preset_config
from vitpose.training.optim import (
    build_optimizer,
    build_scheduler,
    default_layer_decay,
    default_lr_steps,
    layer_id,
    lr_factor,
    param_groups,
)
from vitpose.training.plot import plot_history
from vitpose.training.trainer import LossFn, TrainConfig, Trainer, TrainerState, TrainResult, heatmap_loss, train

__all__ = [
    "AugmentConfig",
    "CropGeometry",
    "DistillConfig",
    "DistillResult",
    "DistillationLoss",
    "KeypointDataset",
    "LossFn",
    "MultiDataset",
    "ResumableSampler",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainerState",
    "TrainingSample",
    "adapt_heads",
    "build_optimizer",
    "build_scheduler",
    "build_training_model",
    "collate_samples",
    "dataset_info_from_dict",
    "default_layer_decay",
    "default_lr_steps",
    "distill",
    "heatmap_loss",
    "heatmap_mse_loss",
    "infer_dataset_info",
    "is_preset",
    "layer_id",
    "load_coco_instances",
    "load_dataset_info",
    "lr_factor",
    "param_groups",
    "plot_history",
    "preset_config",
    "resolve_dataset_info",
    "sample_geometry",
    "train",
]
