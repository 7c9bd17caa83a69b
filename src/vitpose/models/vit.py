"""The plain ViT backbone of ViTPose, dense or with the ViTPose++ mixture-of-experts MLP.

Parameter names follow the original ViTPose (timm style: `patch_embed.proj`, `pos_embed`, `blocks.{i}.attn.qkv`,
`last_norm`), so original checkpoints load by name and the transformers hub format is mapped at the boundary
(`vitpose.checkpoints`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitpose.config import VitPoseBackboneConfig
from vitpose.errors import VitPoseError

# One entry per expert a batch uses: (expert index, indices of its samples, or None when every sample uses it).
ExpertGroups = list[tuple[int, torch.Tensor | None]]


class DropPath(nn.Module):
    """Stochastic depth (training only): drop the whole residual branch of a sample with probability `p`."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed(nn.Module):
    """Conv patch embedding with padding 2 (as the original): (B, 3, H, W) -> (B, N, C)."""

    def __init__(self, config: VitPoseBackboneConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size, padding=2
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_values).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection and `scaled_dot_product_attention`."""

    def __init__(self, config: VitPoseBackboneConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.attn_drop = config.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, C) -> (B, N, C)."""
        b, n, c = x.shape
        # (B, N, 3C) -> (3, B, heads, N, head_dim): q, k, v are stacked in that order along the output dimension.
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 (C -> 4C), exact GELU, fc2 (4C -> C)."""

    def __init__(self, config: VitPoseBackboneConfig) -> None:
        super().__init__()
        hidden = int(config.hidden_size * config.mlp_ratio)
        self.fc1 = nn.Linear(config.hidden_size, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, config.hidden_size)
        self.drop = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, groups: ExpertGroups | None = None) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MoeMlp(nn.Module):
    """ViTPose++ MLP: shared fc1, shared fc2 to C - part_features channels, and per-data-set experts that produce
    the last `part_features` channels.

    Only the experts a batch uses run, and only on the samples that use them; a uniform batch costs what a dense
    MLP costs. (transformers runs every expert on every token and masks.)
    """

    def __init__(self, config: VitPoseBackboneConfig) -> None:
        super().__init__()
        hidden = int(config.hidden_size * config.mlp_ratio)
        self.part_features = config.part_features
        self.fc1 = nn.Linear(config.hidden_size, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, config.hidden_size - config.part_features)
        self.experts = nn.ModuleList(nn.Linear(hidden, config.part_features) for _ in range(config.num_experts))
        self.drop = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, groups: ExpertGroups | None = None) -> torch.Tensor:
        """x: (B, N, C); groups from `expert_groups(dataset_index)` -> (B, N, C)."""
        if groups is None:
            raise VitPoseError("a mixture-of-experts MLP needs dataset_index")
        h = self.drop(self.act(self.fc1(x)))
        shared = self.fc2(h)
        if len(groups) == 1 and groups[0][1] is None:
            part = self.experts[groups[0][0]](h)
        else:
            part = h.new_empty(h.shape[0], h.shape[1], self.part_features)
            for expert, samples in groups:
                part[samples] = self.experts[expert](h[samples])
        return self.drop(torch.cat([shared, part], dim=-1))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, config: VitPoseBackboneConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp: Mlp | MoeMlp = MoeMlp(config) if config.is_moe else Mlp(config)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, groups: ExpertGroups | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x), groups))


def expert_groups(dataset_index: torch.Tensor | None) -> ExpertGroups | None:
    """Group a batch's samples by expert once per forward pass (not once per block).

    dataset_index: (B,) integer tensor, or None for a dense model.
    """
    if dataset_index is None:
        return None
    values = dataset_index.tolist()
    distinct = sorted(set(values))
    if len(distinct) == 1:
        return [(distinct[0], None)]
    return [(e, (dataset_index == e).nonzero().squeeze(1)) for e in distinct]


class VitPoseBackbone(nn.Module):
    """ViT encoder: (B, 3, H, W) pixels -> (B, C, H/16, W/16) feature map (after the final LayerNorm)."""

    def __init__(self, config: VitPoseBackboneConfig) -> None:
        super().__init__()
        self.config = config
        rows, cols = config.grid_size
        self.grid_size = (rows, cols)
        self.patch_embed = PatchEmbed(config)
        # One slot more than there are patches: the (absent) class token's slot is added to every token.
        self.pos_embed = nn.Parameter(torch.zeros(1, rows * cols + 1, config.hidden_size))
        # The knowledge token (config.knowledge_token): (1, 1, C), prepended to the tokens after the position
        # embedding, dropped after the last block; absent (no parameter) otherwise.
        self.knowledge_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if config.knowledge_token else None
        n = config.num_hidden_layers
        rates = [config.drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # linear in depth, as timm
        self.blocks = nn.ModuleList(Block(config, rate) for rate in rates)
        self.last_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def embed_patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, H, W) -> the embedded patch tokens (B, rows * cols, C): the patch embedding plus the
        position embedding, the space the knowledge token is prepended in."""
        return self.patch_embed(pixel_values) + self.pos_embed[:, 1:] + self.pos_embed[:, :1]

    def forward(
        self,
        pixel_values: torch.Tensor,
        groups: ExpertGroups | None = None,
        hidden_states: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """pixel_values (B, 3, H, W) -> features (B, C, rows, cols). Appends each block's output to `hidden_states`
        when a list is given (the embedding output first, as transformers does)."""
        x = self.embed_patches(pixel_values)
        token = self.knowledge_token
        if token is not None:  # one more token for every attention layer; the heads never see it
            x = torch.cat([token.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)
        if hidden_states is not None:
            hidden_states.append(x)
        for block in self.blocks[: self.config.feature_layer]:
            x = block(x, groups)
            if hidden_states is not None:
                hidden_states.append(x)
        if token is not None:
            x = x[:, 1:]
        x = self.last_norm(x)
        b, _, c = x.shape
        return x.transpose(1, 2).reshape(b, c, *self.grid_size)
