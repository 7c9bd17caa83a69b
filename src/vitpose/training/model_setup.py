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

import warnings
from collections.abc import Sequence

import torch

from vitpose.config import PRESET_NAMES, VitPoseConfig, is_preset, parse_input_size
from vitpose.config import preset_config as _preset_config
from vitpose.datasets import DatasetInfo
from vitpose.models.pose import VitPoseForPoseEstimation
from vitpose.models.surgery import adapt_heads, init_head, resize_input, set_drop_path

__all__ = ["PRESET_NAMES", "adapt_heads", "build_training_model", "is_preset", "preset_config", "resize_input"]


def preset_config(
    name: str,
    *,
    input_size: Sequence[int] | str | None = None,
    decoder: str | None = None,
    num_labels: int = 17,
) -> VitPoseConfig:
    """Config of a preset to train: `vitpose.config.preset_config(..., training=True)` (the one registry).

    Args:
        name: `tiny`/`small`/`base`/`large`/`huge`, `+` (or `-plus`) for ViTPose++.
        input_size: (width, height) or "HEIGHTxWIDTH" text, default (192, 256).
        decoder: "classic" (the default: the papers' main results) or "simple".
        num_labels: keypoints of the main head.

    The stochastic depth is the original's for the size (S 0.1, B 0.3, L 0.5, H 0.55, tiny 0).
    """
    return _preset_config(name, training=True, input_size=input_size, decoder=decoder, num_labels=num_labels)


def build_training_model(
    source: str | VitPoseForPoseEstimation,
    datasets: Sequence[DatasetInfo],
    *,
    input_size: Sequence[int] | None = None,
    decoder: str | None = None,
    drop_path: float | None = None,
    device: torch.device | str | None = None,
    keep_heads: bool = False,
) -> tuple[VitPoseForPoseEstimation, list[str]]:
    """The model to train and a list of the changes made to it (heads replaced, input resized).

    Args:
        source: checkpoint (hub id, directory, `.pth`), preset name, or a model.
        datasets: the training data sets (their `dataset_index` and keypoint counts decide the heads).
        input_size: (width, height) or "HEIGHTxWIDTH" text; None keeps the checkpoint's ((192, 256) for presets).
        decoder: presets only: "classic" (default) or "simple".
        drop_path: stochastic depth rate; None keeps the checkpoint's (presets: the original's per size).
        keep_heads: refuse (`VitPoseError`) a head that would be replaced or added (`adapt_heads`).
    """
    # Parsed (and warned about) once; passed on as "HEIGHTxWIDTH" text, which is unambiguous.
    size = None if input_size is None else parse_input_size(input_size)
    text = None if size is None else f"{size[1]}x{size[0]}"
    changes: list[str] = []
    if isinstance(source, VitPoseForPoseEstimation):
        model = source
    elif is_preset(str(source)):
        main = next((d for d in datasets if d.dataset_index == 0), None)
        config = preset_config(
            str(source), input_size=text, decoder=decoder, num_labels=main.num_keypoints if main else 17
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
    if size is not None and size != model.config.input_size:
        (old_w, old_h), (width, height) = model.config.input_size, size
        resize_input(model, f"{height}x{width}")  # the text form: already checked, no second warning
        changes.append(f"input {old_h}x{old_w} -> {height}x{width} (position embedding resized)")
    changes += adapt_heads(model, datasets, keep_heads=keep_heads)
    if drop_path is not None:
        set_drop_path(model, drop_path)
    if device is not None:
        model.to(device)
    return model.train(), changes
