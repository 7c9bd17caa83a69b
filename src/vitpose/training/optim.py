"""The optimiser and learning-rate schedule of ViTPose.

Facts from the original (ViTPose ``mmcv_custom/layer_decay_optimizer_constructor.py`` and the COCO configs):

- AdamW, lr 5e-4 (ViTPose++ 1e-3), betas (0.9, 0.999), weight decay 0.1;
- no weight decay on parameters with one dimension (biases, LayerNorm and BatchNorm), any ``.bias`` and
  ``pos_embed`` (nor on the knowledge token, which the original never had);
- layer-wise lr decay: layer id 0 for ``backbone.patch_embed.*`` and ``backbone.pos_embed`` (and cls/mask tokens),
  ``i + 1`` for ``backbone.blocks.{i}.*``, ``depth + 1`` for everything else (last norm, heads); lr scale
  ``rate ** (depth + 1 - id)``; rate 0.75 for ViT-B, 0.8 for S and L, 0.85 for H;
- gradient clipping at norm 1.0 (L2);
- linear warm-up over 500 iterations from ratio 0.001 (mmcv: ``lr = regular_lr * (1 - (1 - i / 500) * (1 -
  0.001))`` at iteration i), then step decay x0.1 at epochs 170 and 200 of 210 (mmcv ``StepLrUpdaterHook``: from
  the start of epoch 170, 0-based).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vitpose.errors import VitPoseError

__all__ = [
    "LAYER_DECAY_RATES",
    "build_optimizer",
    "build_scheduler",
    "default_layer_decay",
    "default_lr_steps",
    "layer_id",
    "lr_factor",
    "param_groups",
]

# (hidden size, depth) of the published sizes -> layer decay rate of their configs.
LAYER_DECAY_RATES = {(384, 12): 0.8, (768, 12): 0.75, (1024, 24): 0.8, (1280, 32): 0.85}

# Layer 0 with the patch embedding. The knowledge token (vitpose's, of the paper's transferability experiment) is
# prepended after the position embedding, so it sits at the same level, and like the position embedding it has no
# weight decay.
_EMBEDDING_PARAMETERS = ("backbone.pos_embed", "backbone.cls_token", "backbone.mask_token", "backbone.knowledge_token")
_BLOCK = re.compile(r"^backbone\.blocks\.(\d+)\.")


def default_layer_decay(hidden_size: int, depth: int) -> float:
    """The original's layer decay rate for a ViT of this size (0.75, as ViT-B, for sizes it never trained)."""
    return LAYER_DECAY_RATES.get((int(hidden_size), int(depth)), 0.75)


def layer_id(name: str, depth: int) -> int:
    """Layer of a parameter for layer-wise lr decay: 0 embeddings, i + 1 block i, depth + 1 the rest."""
    if name in _EMBEDDING_PARAMETERS or name.startswith("backbone.patch_embed."):
        return 0
    m = _BLOCK.match(name)
    if m:
        return int(m.group(1)) + 1
    return depth + 1


def _no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim == 1 or name.endswith(".bias") or "pos_embed" in name or name == "backbone.knowledge_token"


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.1,
    layer_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Parameter groups with layer-wise lr decay and no weight decay on 1-D parameters, biases and pos_embed.

    Each group carries `lr` (= base lr x `lr_scale`), `lr_scale`, `weight_decay`, `layer_id` and `names`. Frozen
    parameters (``requires_grad=False``) are left out. `layer_decay` None or 1.0 gives every layer the base lr.
    """
    bb = model.config.backbone_config
    depth = bb.num_hidden_layers
    rate = 1.0 if layer_decay is None else float(layer_decay)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lid = layer_id(name, depth)
        no_decay = _no_decay(name, param)
        key = (lid, no_decay)
        if key not in groups:
            scale = rate ** (depth + 1 - lid)
            groups[key] = {
                "params": [],
                "names": [],
                "lr": lr * scale,
                "lr_scale": scale,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "layer_id": lid,
            }
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def build_optimizer(
    model: nn.Module,
    lr: float = 5e-4,
    weight_decay: float = 0.1,
    layer_decay: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.AdamW:
    """AdamW over `param_groups` (the original recipe)."""
    return torch.optim.AdamW(param_groups(model, lr, weight_decay, layer_decay), lr=lr, betas=betas)


def default_lr_steps(epochs: int) -> list[int]:
    """The original's decay epochs 170 and 200 of 210, scaled to `epochs`."""
    return sorted({max(1, round(epochs * 170 / 210)), max(1, round(epochs * 200 / 210))} - {epochs}) or []


def lr_factor(
    step: int,
    epoch: int,
    *,
    warmup_iters: int = 500,
    warmup_ratio: float = 0.001,
    lr_steps: Sequence[int] = (170, 200),
    gamma: float = 0.1,
) -> float:
    """Multiplier of every group's initial lr at iteration `step` (0-based) in epoch `epoch` (0-based)."""
    factor = gamma ** sum(1 for s in lr_steps if epoch >= s)
    if warmup_iters > 0 and step < warmup_iters:
        factor *= 1 - (1 - step / warmup_iters) * (1 - warmup_ratio)
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    *,
    warmup_iters: int = 500,
    warmup_ratio: float = 0.001,
    lr_steps: Sequence[int] = (170, 200),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration `LambdaLR` of `lr_factor` (call `.step()` after every optimiser step)."""
    if steps_per_epoch < 1:
        raise VitPoseError("steps_per_epoch must be >= 1")
    steps = tuple(int(s) for s in lr_steps)

    def factor(step: int) -> float:
        return lr_factor(
            step,
            step // steps_per_epoch,
            warmup_iters=warmup_iters,
            warmup_ratio=warmup_ratio,
            lr_steps=steps,
            gamma=gamma,
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clip_gradients(parameters: Sequence[torch.Tensor], max_norm: float | None) -> float:
    """L2 gradient clipping (the original's ``grad_clip=dict(max_norm=1., norm_type=2)``); returns the norm."""
    if max_norm is None or max_norm <= 0:
        norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    return float(norm) if math.isfinite(float(norm)) else float("inf")
