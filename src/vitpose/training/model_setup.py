"""The model to train: a checkpoint or a preset, fitted to the data sets it will learn.

- `--model` is a checkpoint (hub id, hub-format directory, original `.pth`) or a preset name: `tiny` (width 96,
  3 blocks: tests and quick experiments), `small`, `base`, `large`, `huge`, each with a `+` for ViTPose++ (six
  experts and the six heads of COCO, AI Challenger, MPII, AP-10K, APT-36K, COCO-WholeBody). Presets start from random
  weights (the original starts from MAE pre-training, which is not published in a format loaded here).
- A head whose keypoint count differs from its data set's is replaced by a freshly initialised one (the original's
  head init: normal std 0.001, zero bias); the backbone and the other heads keep their weights. Heads for data set
  indices the checkpoint lacks are added.
- A different input size interpolates the position embedding (bicubic over the token grid, the class-token slot
  kept), as the original does when it loads pre-trained weights at another resolution.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from vitpose.config import DROP_PATH_RATES, PRESET_ALIASES, PRESETS, VitPoseConfig
from vitpose.datasets import DatasetInfo, get_dataset_info
from vitpose.errors import VitPoseError
from vitpose.models.pose import VitPoseForPoseEstimation
from vitpose.models.surgery import adapt_heads, init_head, resize_input, set_drop_path

__all__ = ["PRESET_NAMES", "adapt_heads", "build_training_model", "is_preset", "preset_config", "resize_input"]

TINY = {"hidden_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4, "part_features": 24}
PRESET_NAMES = ("tiny", "small", "base", "large", "huge")
_PRESET_RE = re.compile(r"^(?:vitpose[-_]?)?(tiny|small|base|large|huge|[sblh])(\+|[-_]?plus)?$", re.IGNORECASE)


def is_preset(source: str) -> bool:
    """Whether `source` names a preset (and not an existing file or folder)."""
    return bool(_PRESET_RE.match(str(source))) and not Path(source).exists()


def preset_config(
    name: str,
    *,
    input_size: Sequence[int] | None = None,
    decoder: str | None = None,
    num_labels: int = 17,
) -> VitPoseConfig:
    """Config of a preset: `tiny`/`small`/`base`/`large`/`huge`, `+` (or `-plus`) for ViTPose++.

    Args:
        input_size: (height, width), default (256, 192).
        decoder: "classic" (two deconvolutions, the default of the papers' main results) or "simple".
    """
    m = _PRESET_RE.match(name)
    if not m:
        raise VitPoseError(f"unknown preset {name!r}; presets: {', '.join(PRESET_NAMES)} (add '+' for ViTPose++)")
    size = PRESET_ALIASES.get(m.group(1).lower(), m.group(1).lower())
    plus = m.group(2) is not None
    decoder = decoder or "classic"
    if decoder not in ("simple", "classic"):
        raise VitPoseError(f"decoder must be 'simple' or 'classic', got {decoder!r}")
    backbone = dict(TINY if size == "tiny" else PRESETS[size])
    backbone.update(
        num_experts=6 if plus else 1,
        layer_norm_eps=1e-6,
        image_size=list(input_size) if input_size is not None else [256, 192],
        drop_path_rate=DROP_PATH_RATES.get(size, 0.0),
    )
    associate = [get_dataset_info(i).num_keypoints for i in range(1, 6)] if plus else None
    config = VitPoseConfig(
        backbone_config=backbone,
        num_labels=num_labels,
        use_simple_decoder=decoder == "simple",
        associate_num_labels=associate,
    )
    return config


def build_training_model(
    source: str | VitPoseForPoseEstimation,
    datasets: Sequence[DatasetInfo],
    *,
    input_size: Sequence[int] | None = None,
    decoder: str | None = None,
    drop_path: float | None = None,
    device: torch.device | str | None = None,
) -> tuple[VitPoseForPoseEstimation, list[str]]:
    """The model to train and a list of the changes made to it (heads replaced, input resized).

    Args:
        source: checkpoint (hub id, directory, `.pth`), preset name, or a model.
        datasets: the training data sets (their `dataset_index` and keypoint counts decide the heads).
        input_size: (height, width); None keeps the checkpoint's (256 x 192 for presets).
        decoder: presets only: "classic" (default) or "simple".
        drop_path: stochastic depth rate; None keeps the checkpoint's (presets: the original's per size).
    """
    changes: list[str] = []
    if isinstance(source, VitPoseForPoseEstimation):
        model = source
    elif is_preset(str(source)):
        main = next((d for d in datasets if d.dataset_index == 0), None)
        config = preset_config(
            str(source), input_size=input_size, decoder=decoder, num_labels=main.num_keypoints if main else 17
        )
        model = VitPoseForPoseEstimation(config)
        for head in [model.keypoint_head, *model.associate_keypoint_heads]:
            init_head(head)
        changes.append(f"preset {source}: random initialisation")
    else:
        if decoder is not None:
            warnings.warn(
                f"decoder={decoder!r} applies to presets only; the checkpoint's decoder is kept", stacklevel=2
            )
        model = VitPoseForPoseEstimation.from_pretrained(source)
    if input_size is not None and list(input_size) != list(model.config.backbone_config.image_size):
        old = list(model.config.backbone_config.image_size)
        resize_input(model, input_size)
        changes.append(f"input {old[0]}x{old[1]} -> {input_size[0]}x{input_size[1]} (position embedding resized)")
    changes += adapt_heads(model, datasets)
    if drop_path is not None:
        set_drop_path(model, drop_path)
    if device is not None:
        model.to(device)
    return model.train(), changes
