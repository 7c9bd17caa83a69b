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
import torch.nn.functional as F
from torch import nn

from vitpose.config import DROP_PATH_RATES, PRESET_ALIASES, PRESETS, VitPoseConfig
from vitpose.datasets import DatasetInfo, get_dataset_info
from vitpose.models.heads import make_head
from vitpose.models.pose import VitPoseForPoseEstimation

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
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESET_NAMES)} (add '+' for ViTPose++)")
    size = PRESET_ALIASES.get(m.group(1).lower(), m.group(1).lower())
    plus = m.group(2) is not None
    decoder = decoder or "classic"
    if decoder not in ("simple", "classic"):
        raise ValueError(f"decoder must be 'simple' or 'classic', got {decoder!r}")
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


def resize_input(model: VitPoseForPoseEstimation, input_size: Sequence[int]) -> None:
    """Train at another input size (height, width): interpolate the position embedding onto the new token grid."""
    bb = model.config.backbone_config
    new = [int(input_size[0]), int(input_size[1])]
    if new == list(bb.image_size):
        return
    if min(new) < bb.patch_size[0]:
        raise ValueError(f"input size {new} is smaller than a patch ({bb.patch_size})")
    old_rows, old_cols = bb.grid_size
    bb.image_size = new
    rows, cols = bb.grid_size
    pos = model.backbone.pos_embed.data
    grid = pos[:, 1:].reshape(1, old_rows, old_cols, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1).to(pos.dtype)
    model.backbone.pos_embed = nn.Parameter(torch.cat([pos[:, :1], grid], dim=1))
    model.backbone.grid_size = (rows, cols)


def _init_head(head: nn.Module) -> None:
    """The original head init (mmpose TopdownHeatmapSimpleHead.init_weights): normal(0, 0.001) weights, zero
    biases, BatchNorm at identity."""
    for module in head.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, std=0.001)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _new_head(model: VitPoseForPoseEstimation, num_keypoints: int) -> nn.Module:
    cfg = model.config
    head = make_head(cfg.backbone_config.hidden_size, num_keypoints, cfg.use_simple_decoder, cfg.scale_factor)
    _init_head(head)
    return head.to(device=model.device, dtype=model.dtype)


def adapt_heads(model: VitPoseForPoseEstimation, datasets: Sequence[DatasetInfo]) -> list[str]:
    """Give every data set a head with its keypoint count; returns what was changed (one line each).

    `dataset_index` 0 is the main head (`keypoint_head`), j >= 1 the extra head j (`associate_keypoint_heads[j -
    1]`, ViTPose++ and the original's multi-data-set models). The main head's names, skeleton and flip pairs are set
    from its data set, so that the saved checkpoint describes what it predicts.
    """
    cfg = model.config
    changes: list[str] = []
    seen: dict[int, DatasetInfo] = {}
    for info in datasets:
        idx = info.dataset_index
        if idx in seen and seen[idx].num_keypoints != info.num_keypoints:
            raise ValueError(
                f"data sets '{seen[idx].name}' ({seen[idx].num_keypoints} keypoints) and '{info.name}' "
                f"({info.num_keypoints}) both use dataset_index {idx}: one head cannot serve both; give them "
                "different dataset_index values"
            )
        seen[idx] = info
        if model.is_moe and idx >= cfg.backbone_config.num_experts:
            raise ValueError(
                f"data set '{info.name}' has dataset_index {idx} but the model has "
                f"{cfg.backbone_config.num_experts} experts (0..{cfg.backbone_config.num_experts - 1})"
            )
        k = info.num_keypoints
        if idx == 0:
            if model.keypoint_head.num_keypoints != k:
                changes.append(f"main head: {model.keypoint_head.num_keypoints} -> {k} keypoints (new, {info.name})")
                model.keypoint_head = _new_head(model, k)
                cfg.num_labels = k
            cfg.id2label = dict(enumerate(info.keypoint_names))
            cfg.label2id = {v: i for i, v in cfg.id2label.items()}
            cfg.edges = [list(e) for e in info.skeleton]
            cfg.flip_pairs = [list(p) for p in info.flip_pairs]
            continue
        while len(model.associate_keypoint_heads) < idx:
            j = len(model.associate_keypoint_heads) + 1
            try:
                count = k if j == idx else get_dataset_info(j).num_keypoints
            except ValueError:
                count = k
            model.associate_keypoint_heads.append(_new_head(model, count))
            cfg.associate_num_labels.append(count)
            changes.append(f"head {j}: added ({count} keypoints)")
        head = model.associate_keypoint_heads[idx - 1]
        if head.num_keypoints != k:
            changes.append(f"head {idx}: {head.num_keypoints} -> {k} keypoints (new, {info.name})")
            model.associate_keypoint_heads[idx - 1] = _new_head(model, k)
            cfg.associate_num_labels[idx - 1] = k
    return changes


def set_drop_path(model: VitPoseForPoseEstimation, rate: float) -> None:
    """Stochastic depth rate of the last block (linear from 0 over the blocks, as the original)."""
    blocks = model.backbone.blocks
    n = len(blocks)
    for i, block in enumerate(blocks):
        block.drop_path.p = rate * i / max(n - 1, 1)
    model.config.backbone_config.drop_path_rate = float(rate)


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
            _init_head(head)
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
