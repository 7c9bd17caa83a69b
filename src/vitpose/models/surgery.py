"""Model surgery: changing a model's shape without training it. Folding a ViTPose++ expert into a dense MLP,
interpolating the position embedding to another input size, replacing or adding keypoint heads, setting the
stochastic depth. Functions here take a model and change or read its tensors; building models is
`vitpose.models.pose`'s job, so this module does not import the model class."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from vitpose.config import VitPoseConfig, apply_dataset_layout, parse_input_size
from vitpose.datasets import DatasetInfo, get_dataset_info
from vitpose.datasets.custom import dataset_info_to_dict, is_registered
from vitpose.errors import VitPoseError
from vitpose.models.heads import make_head

if TYPE_CHECKING:
    from vitpose.models.pose import VitPoseForPoseEstimation

__all__ = [
    "adapt_heads",
    "folded_experts",
    "init_head",
    "new_head",
    "resize_input",
    "set_drop_path",
    "set_knowledge_token",
]


def folded_experts(
    model: VitPoseForPoseEstimation, dataset: int | str
) -> tuple[VitPoseConfig, dict[str, torch.Tensor]]:
    """The config and weights of the dense copy of a ViTPose++ `model` for one data set (see
    `VitPoseForPoseEstimation.fold_experts`, which builds the model from them)."""
    if not model.is_moe:
        raise VitPoseError("fold_experts needs a ViTPose++ (mixture-of-experts) model; this one is dense")
    index = get_dataset_info(dataset).dataset_index if isinstance(dataset, str) else int(dataset)
    model.config.check_dataset_index(index, dataset=dataset)
    head = model.head_for(index)
    own_head = head is not model.keypoint_head
    head_prefix = f"associate_keypoint_heads.{index - 1}." if own_head else "keypoint_head."

    state: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if m := re.match(r"(backbone\.blocks\.\d+\.mlp\.)(fc2|experts\.(\d+))\.(weight|bias)$", key):
            prefix, what, _, kind = m.groups()
            if what == "fc2":
                chosen = model.state_dict()[f"{prefix}experts.{index}.{kind}"]
                state[key] = torch.cat([value, chosen])
            continue
        if key.startswith(("keypoint_head.", "associate_keypoint_heads.")):
            if key.startswith(head_prefix):
                state["keypoint_head." + key[len(head_prefix) :]] = value
            continue
        state[key] = value

    cfg = model.config.to_dict()
    backbone = dict(cfg.pop("backbone_config"), num_experts=1)
    for key in ("associate_num_labels", "flip_pairs", "edges", "id2label", "label2id"):
        cfg.pop(key, None)
    config = VitPoseConfig(backbone_config=backbone, num_labels=head.num_keypoints, folded_dataset_index=index, **cfg)
    if own_head or index == 0:
        apply_dataset_layout(config, index)
    else:
        config.flip_pairs, config.edges = model.config.flip_pairs, model.config.edges
        config.id2label, config.label2id = dict(model.config.id2label), dict(model.config.label2id)
    return config, state


def resize_input(model: VitPoseForPoseEstimation, input_size: Sequence[int] | str) -> None:
    """Train at another input size, (width, height) or "HEIGHTxWIDTH" text (`vitpose.config.parse_input_size`):
    interpolate the position embedding onto the new token grid."""
    bb = model.config.backbone_config
    width, height = parse_input_size(input_size)
    new = [height, width]  # transformers' image_size order
    if new == list(bb.image_size):
        return
    if min(new) < bb.patch_size[0]:
        raise VitPoseError(f"input size {new} is smaller than a patch ({bb.patch_size})")
    old_rows, old_cols = bb.grid_size
    bb.image_size = new
    rows, cols = bb.grid_size
    pos = model.backbone.pos_embed.data
    grid = pos[:, 1:].reshape(1, old_rows, old_cols, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1).to(pos.dtype)
    model.backbone.pos_embed = nn.Parameter(torch.cat([pos[:, :1], grid], dim=1))
    model.backbone.grid_size = (rows, cols)


def set_knowledge_token(model: VitPoseForPoseEstimation, token: torch.Tensor | None = None) -> nn.Parameter:
    """Give the model a knowledge token (`config.backbone_config.knowledge_token`) and return it: `token` (C,),
    (1, C) or (1, 1, C) copied in, or, when None, a new one initialised as the model's own (truncated normal, std
    `initializer_range`). A model that has a token gets its value replaced (same parameter object)."""
    bb = model.config.backbone_config
    width = bb.hidden_size
    current = model.backbone.knowledge_token
    reference = model.backbone.pos_embed
    if token is None:
        std = bb.initializer_range
        value = torch.empty(1, 1, width, dtype=torch.float32)
        nn.init.trunc_normal_(value, std=std, a=-2 * std, b=2 * std)
    else:
        value = torch.as_tensor(token).detach()
        if value.numel() != width:
            raise VitPoseError(
                f"a knowledge token of {value.numel()} values does not fit a model of width {width}: carry it "
                "across with vitpose.training.distill.carry_token (or train one for this model)"
            )
        value = value.reshape(1, 1, width)
    value = value.to(device=reference.device, dtype=reference.dtype)
    if current is not None:
        with torch.no_grad():
            current.copy_(value)
        return current
    bb.knowledge_token = True
    model.backbone.knowledge_token = nn.Parameter(value.clone())
    return model.backbone.knowledge_token


def init_head(head: nn.Module) -> None:
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


def new_head(model: VitPoseForPoseEstimation, num_keypoints: int) -> nn.Module:
    cfg = model.config
    head = make_head(cfg.backbone_config.hidden_size, num_keypoints, cfg.use_simple_decoder, cfg.scale_factor)
    init_head(head)
    return head.to(device=model.device, dtype=model.dtype)


def adapt_heads(
    model: VitPoseForPoseEstimation, datasets: Sequence[DatasetInfo], *, keep_heads: bool = False
) -> list[str]:
    """Give every data set a head with its keypoint count; returns what was changed (one line each).

    `dataset_index` 0 is the main head (`keypoint_head`), j >= 1 the extra head j (`associate_keypoint_heads[j -
    1]`, ViTPose++ and the original's multi-data-set models). The main head's names, skeleton and flip pairs are set
    from its data set, so that the saved checkpoint describes what it predicts. `keep_heads`: a head that would be
    replaced or added is a `VitPoseError` instead, raised before any head changes (a teacher, whose heads are its
    knowledge).
    """
    cfg = model.config
    changes: list[str] = []

    def change(what: str) -> None:
        if keep_heads:
            raise VitPoseError(
                f"the heads of the model do not fit the training data ({what}): give the data sets it was trained "
                "for (--dataset), or a model trained for this data"
            )
        changes.append(what)

    seen: dict[int, DatasetInfo] = {}
    for info in datasets:
        idx = info.dataset_index
        if idx in seen and seen[idx].num_keypoints != info.num_keypoints:
            raise VitPoseError(
                f"data sets '{seen[idx].name}' ({seen[idx].num_keypoints} keypoints) and '{info.name}' "
                f"({info.num_keypoints}) both use dataset_index {idx}: one head cannot serve both; give them "
                "different dataset_index values"
            )
        seen[idx] = info
        if model.is_moe:  # a dense model grows heads for new indices; a ViTPose++ model has its experts
            cfg.check_dataset_index(idx, dataset=info.name)
        k = info.num_keypoints
        if idx == 0:
            if model.keypoint_head.num_keypoints != k:
                change(f"main head: {model.keypoint_head.num_keypoints} -> {k} keypoints (new, {info.name})")
                model.keypoint_head = new_head(model, k)
                cfg.num_labels = k
            cfg.id2label = dict(enumerate(info.keypoint_names))
            cfg.label2id = {v: i for i, v in cfg.id2label.items()}
            cfg.edges = [list(e) for e in info.skeleton]
            cfg.flip_pairs = [list(p) for p in info.flip_pairs]
            # A custom skeleton's description (sigmas included) travels in config.json: predict and eval read it.
            cfg.dataset_info = None if is_registered(info) else dataset_info_to_dict(info)
            continue
        while len(model.associate_keypoint_heads) < idx:
            j = len(model.associate_keypoint_heads) + 1
            try:
                count = k if j == idx else get_dataset_info(j).num_keypoints
            except ValueError:
                count = k
            change(f"head {j}: added ({count} keypoints)")
            model.associate_keypoint_heads.append(new_head(model, count))
            cfg.associate_num_labels.append(count)
        head = model.associate_keypoint_heads[idx - 1]
        if head.num_keypoints != k:
            change(f"head {idx}: {head.num_keypoints} -> {k} keypoints (new, {info.name})")
            model.associate_keypoint_heads[idx - 1] = new_head(model, k)
            cfg.associate_num_labels[idx - 1] = k
    return changes


def set_drop_path(model: VitPoseForPoseEstimation, rate: float) -> None:
    """Stochastic depth rate of the last block (linear from 0 over the blocks, as the original)."""
    blocks = model.backbone.blocks
    n = len(blocks)
    for i, block in enumerate(blocks):
        block.drop_path.p = rate * i / max(n - 1, 1)
    model.config.backbone_config.drop_path_rate = float(rate)
