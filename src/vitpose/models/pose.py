"""`VitPoseForPoseEstimation`: backbone + one keypoint head per data set, with the transformers-compatible API."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from vitpose.checkpoints import check_keys, load_checkpoint, resolve_dtype, save_checkpoint
from vitpose.config import VitPoseConfig
from vitpose.datasets import get_dataset_info
from vitpose.device import resolve_device
from vitpose.errors import VitPoseError
from vitpose.models.heads import ClassicHead, SimpleHead, make_head
from vitpose.models.loss import heatmap_mse_loss
from vitpose.models.surgery import folded_experts
from vitpose.models.vit import VitPoseBackbone, expert_groups
from vitpose.ops.codec import merge_flip_test
from vitpose.parallel import cpu_streams, run_streams

DatasetIndexLike = int | str | Sequence[int] | np.ndarray | torch.Tensor


@dataclass
class VitPoseEstimatorOutput:
    """What `VitPoseForPoseEstimation.forward` returns (the fields of transformers' output, plus `num_keypoints`).

    heatmaps: (B, K, 64, 48). In a batch whose samples use heads with different keypoint counts, K is the largest
        and each sample's unused channels are zero; `num_keypoints` (B,) says how many are its own.
    """

    loss: torch.Tensor | None = None
    heatmaps: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    num_keypoints: torch.Tensor | None = None

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            return getattr(self, key)
        return self.to_tuple()[key]

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in self.keys())


class VitPoseForPoseEstimation(nn.Module):
    """ViTPose / ViTPose++: person crops (B, 3, 256, 192) -> keypoint heatmaps (B, K, 64, 48).

    ViTPose++ checkpoints carry a mixture-of-experts MLP and (from the original `.pth`) one head per data set:
    `keypoint_head` for `dataset_index` 0 (COCO) and `associate_keypoint_heads[j]` for `dataset_index` j + 1.

    `cpu_streams` (an attribute, not a parameter): inference on the CPU with gradients off cuts a batch into
    side-by-side streams (`vitpose.parallel`): None (default) = one per intra-op thread, 1 = off, n = at most n.
    """

    def __init__(self, config: VitPoseConfig) -> None:
        super().__init__()
        self.config = config
        bb = config.backbone_config
        self.backbone = VitPoseBackbone(bb)
        simple, factor = config.use_simple_decoder, config.scale_factor
        self.keypoint_head = make_head(bb.hidden_size, config.num_labels, simple, factor)
        self.associate_keypoint_heads = nn.ModuleList(
            make_head(bb.hidden_size, k, simple, factor) for k in config.associate_num_labels
        )
        self._warned_missing_heads: set[int] = set()
        self.cpu_streams: int | None = None
        self.init_weights()

    # ------------------------------------------------------------------ construction and loading
    def init_weights(self) -> None:
        """Truncated-normal init (std `initializer_range`) for linear and conv weights, zeros for biases."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                if module.weight.is_meta:
                    continue
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if not self.backbone.pos_embed.is_meta:
            nn.init.trunc_normal_(self.backbone.pos_embed, std=std, a=-2 * std, b=2 * std)
        token = self.backbone.knowledge_token
        if token is not None and not token.is_meta:  # as the position embedding (and timm's class token)
            nn.init.trunc_normal_(token, std=std, a=-2 * std, b=2 * std)

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        device_map: str | torch.device | dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        torch_dtype: torch.dtype | str | None = None,
        config: VitPoseConfig | None = None,
        **hub_kwargs: Any,
    ) -> VitPoseForPoseEstimation:
        """Load a checkpoint: a local hub-format directory, a hub id, or an original ViTPose `.pth`.

        `device_map` (as transformers) and `device` both place the model; `dtype` / `torch_dtype` cast floating
        weights. `hub_kwargs` (`revision`, `cache_dir`, `token`, `local_files_only`) go to `huggingface_hub`.
        The model is returned in eval mode.
        """
        config, state, label = load_checkpoint(source, config=config, **hub_kwargs)
        return build_model(
            config, state, device=resolve_device(device, device_map), dtype=dtype or torch_dtype, source=label
        )

    def save_pretrained(self, save_directory: str | os.PathLike[str], safe_serialization: bool = True) -> None:
        """Write `config.json` and `model.safetensors` (or `pytorch_model.bin`) in the transformers hub format."""
        save_checkpoint(self.config, self.state_dict(), save_directory, safe_serialization=safe_serialization)

    @property
    def device(self) -> torch.device:
        return self.backbone.pos_embed.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.pos_embed.dtype

    @property
    def is_moe(self) -> bool:
        return self.config.backbone_config.is_moe

    # ------------------------------------------------------------------ inference
    def forward(
        self,
        pixel_values: torch.Tensor,
        dataset_index: DatasetIndexLike | None = None,
        flip_pairs: torch.Tensor | Sequence[Sequence[int]] | None = None,
        labels: torch.Tensor | None = None,
        flip_test: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        label_weights: torch.Tensor | None = None,
    ) -> VitPoseEstimatorOutput:
        """Heatmaps for a batch of person crops.

        Args:
            pixel_values: (B, 3, H, W) normalised crops, H x W = `config.backbone_config.image_size`.
            dataset_index: ViTPose++ only (required there): which expert and head each sample uses, (B,) or one
                value for all; ints 0..5 or data-set names ("coco", "aic", "mpii", "ap10k", "apt36k", "wholebody").
            flip_pairs: (P, 2) left/right keypoint pairs. Without `flip_test`, as in transformers: the input is
                taken to be flipped already, and the heatmaps are flipped back. With `flip_test`, the pairs to use.
            flip_test: run each crop and its mirror image in one batch, flip the mirrored heatmaps back, average
                (the original's test-time augmentation). Pairs default to the data set of each head.
            output_hidden_states: also return the embedding output and every block's output, each (B, N, C).
            labels: (B, K, H/4, W/4) target heatmaps (UDP Gaussians, `vitpose.training.KeypointDataset`); with them
                `loss` is the original's weighted heatmap MSE (`vitpose.training.heatmap_mse_loss`). In a mixed
                ViTPose++ batch, zero-padded to the largest K as `heatmaps` is.
            label_weights: (B, K) per-keypoint target weights (0 for unlabelled keypoints); None = all ones.

        Returns:
            `VitPoseEstimatorOutput` with `heatmaps` (B, K, H/4, W/4), and `loss` (a scalar) when `labels` is given.
        """
        if labels is not None and flip_test:
            raise VitPoseError("labels (training loss) cannot be combined with flip_test (a test-time augmentation)")
        if output_attentions:
            raise VitPoseError(
                "output_attentions is not supported: attention runs in fused scaled_dot_product_attention"
            )
        pixel_values = self._check_pixel_values(pixel_values)
        batch = pixel_values.shape[0]
        index = self._dataset_index(dataset_index, batch, pixel_values.device)
        pairs = None if flip_pairs is None else _as_pairs(flip_pairs, pixel_values.device)

        if batch == 0:
            k = self.config.num_keypoints_for(int(index[0])) if index is not None and index.numel() else None
            empty = pixel_values.new_zeros((0, k or self.config.num_labels, *self._heatmap_size()))
            return VitPoseEstimatorOutput(heatmaps=empty)

        if flip_test:
            pixel_values = torch.cat([pixel_values, pixel_values.flip(-1)])
        groups_index = None if index is None or not self.is_moe else (torch.cat([index, index]) if flip_test else index)
        hidden: list[torch.Tensor] | None = [] if output_hidden_states else None
        features = self._features(pixel_values, groups_index, hidden)

        heatmaps, num_keypoints = self._run_heads(features, index, batch, pairs, flip_test)
        loss = None
        if labels is not None:
            loss = heatmap_mse_loss(heatmaps, labels, label_weights, num_keypoints)
        return VitPoseEstimatorOutput(
            loss=loss,
            heatmaps=heatmaps,
            hidden_states=tuple(hidden) if hidden is not None else None,
            num_keypoints=num_keypoints,
        )

    def _features(
        self, pixel_values: torch.Tensor, groups_index: torch.Tensor | None, hidden: list[torch.Tensor] | None
    ) -> torch.Tensor:
        """The backbone's features (B, C, h, w), as side-by-side CPU streams where that is faster."""
        batch = pixel_values.shape[0]
        streams = 1 if hidden is not None else cpu_streams(batch, pixel_values.device, self.cpu_streams)
        if streams == 1:
            return self.backbone(pixel_values, expert_groups(groups_index), hidden)

        def part(samples: slice) -> torch.Tensor:
            index = None if groups_index is None else groups_index[samples]
            return self.backbone(pixel_values[samples], expert_groups(index))

        return run_streams(part, batch, streams)

    def _heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the heatmaps, for tensors shaped (B, K, H, W)."""
        width, height = self.config.heatmap_size
        return height, width

    def _check_pixel_values(self, pixel_values: Any) -> torch.Tensor:
        bb = self.config.backbone_config
        expected = f"(batch, {bb.num_channels}, {bb.image_size[0]}, {bb.image_size[1]})"
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(
                f"pixel_values must be a torch.Tensor of shape {expected}, got {type(pixel_values).__name__}; "
                "make it with VitPoseImageProcessor(images, boxes=..., return_tensors='pt')"
            )
        shape = tuple(pixel_values.shape)
        if pixel_values.ndim == 4 and shape[1] == bb.num_channels and list(shape[2:]) != list(bb.image_size):
            (h, w), (height, width) = shape[2:], bb.image_size
            raise VitPoseError(
                f"pixel_values are {w}x{h} crops (width x height) but this model takes {width}x{height}: pixel_values "
                f"of shape {expected} (backbone_config.image_size {[height, width]}): crop with "
                f"VitPoseImageProcessor(size={{'height': {height}, 'width': {width}}}), e.g. "
                "VitPoseImageProcessor.from_pretrained of the same checkpoint"
            )
        if pixel_values.ndim != 4 or shape[1] != bb.num_channels:
            raise VitPoseError(
                f"pixel_values must have shape {expected}, got {shape}; crop each person box with "
                "VitPoseImageProcessor(images, boxes=..., return_tensors='pt') first"
            )
        if not pixel_values.is_floating_point():
            raise TypeError(f"pixel_values must be a floating-point tensor, got {pixel_values.dtype}")
        if pixel_values.dtype != self.dtype or pixel_values.device != self.device:
            pixel_values = pixel_values.to(device=self.device, dtype=self.dtype)
        return pixel_values

    def _dataset_index(self, dataset_index: DatasetIndexLike | None, batch: int, device: torch.device):
        num_experts = self.config.backbone_config.num_experts
        if len(self.config.valid_dataset_indices) == 1:
            return None  # one expert and one head: nothing to choose (transformers ignores the argument too)
        if dataset_index is None and not self.is_moe:
            dataset_index = 0  # a dense multi-head model (COCO+AiC+MPII): the main head unless told otherwise
        if dataset_index is None:
            raise VitPoseError(
                f"this is a ViTPose++ model with {num_experts} experts: pass dataset_index, a tensor of shape "
                f"(batch_size,) with values in 0..{num_experts - 1} (0 COCO, 1 AI Challenger, 2 MPII, 3 AP-10K, "
                "4 APT-36K, 5 COCO-WholeBody), e.g. dataset_index=torch.zeros(batch_size, dtype=torch.long)"
            )
        if isinstance(dataset_index, str):
            dataset_index = get_dataset_info(dataset_index).dataset_index
        index = torch.as_tensor(dataset_index, device="cpu")
        if index.is_floating_point():
            if not torch.equal(index, index.round()):
                raise VitPoseError(f"dataset_index must hold integers, got {index.tolist()}")
            index = index.long()
        if index.dtype == torch.bool or index.is_complex():
            raise TypeError(f"dataset_index must be an integer tensor, got {index.dtype}")
        index = index.long()
        if index.numel() == 1:
            # One value for the whole batch; the transformers ViTPose documentation example passes
            # torch.tensor([0]) for any number of people, which transformers broadcasts.
            # An empty batch keeps the one value: it names the head whose (empty) heatmaps are returned.
            index = index.reshape(1).expand(max(batch, 1))
            if batch == 0:
                self.config.check_dataset_index(index.tolist())
                return index.to(device)
        if index.ndim != 1 or index.shape[0] != batch:
            raise VitPoseError(
                f"dataset_index must have shape (batch_size,) = ({batch},) or hold a single value, "
                f"got shape {tuple(index.shape)}"
            )
        self.config.check_dataset_index(index.tolist())
        return index.to(device)

    def head_for(self, dataset_index: int) -> SimpleHead | ClassicHead:
        """The head that serves `dataset_index` (the main head where the checkpoint has no head of its own)."""
        if 1 <= dataset_index <= len(self.associate_keypoint_heads):
            return self.associate_keypoint_heads[dataset_index - 1]
        if dataset_index != 0 and self.is_moe and dataset_index not in self._warned_missing_heads:
            self._warned_missing_heads.add(dataset_index)
            warnings.warn(
                f"this checkpoint has no keypoint head for dataset_index {dataset_index}: the main "
                f"{self.config.num_labels}-keypoint head is used, as transformers does, which mixes expert "
                f"{dataset_index} with the COCO head. The transformers conversion of ViTPose++ dropped the other "
                "heads; load the original ViTPose++ .pth (or `vitpose convert` it) to get every data set's head.",
                stacklevel=4,
            )
        return self.keypoint_head

    def flip_pairs_for(self, dataset_index: int) -> torch.Tensor:
        """(P, 2) left/right pairs of the head serving `dataset_index`, for the flip test
        (`VitPoseConfig.flip_pairs_for`)."""
        self.head_for(dataset_index)  # the warning for a ViTPose++ data set without its own head
        return _as_pairs(self.config.flip_pairs_for(dataset_index), self.device)

    def _run_heads(
        self,
        features: torch.Tensor,
        index: torch.Tensor | None,
        batch: int,
        pairs: torch.Tensor | None,
        flip_test: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        def run(head: SimpleHead | ClassicHead, samples: torch.Tensor | None, head_pairs_of: int) -> torch.Tensor:
            feats = (
                features
                if samples is None
                else features[torch.cat([samples, samples + batch]) if flip_test else samples]
            )
            heat = head(feats)
            if flip_test and pairs is None:
                return merge_flip_test(heat, self.flip_pairs_for(head_pairs_of))
            return merge_flip_test(heat, pairs, flip_test=flip_test)

        if index is None:
            return run(self.keypoint_head, None, 0), None
        # Samples that share a head go through it together.
        by_head: dict[int, list[int]] = {}
        for e in sorted(set(index.tolist())):
            by_head.setdefault(id(self.head_for(e)), []).append(e)
        num_keypoints = torch.tensor([self.head_for(e).num_keypoints for e in index.tolist()], device=index.device)
        if len(by_head) == 1:
            return run(self.head_for(int(index[0])), None, int(index[0])), num_keypoints
        max_k = int(num_keypoints.max())
        heatmaps = features.new_zeros((batch, max_k, *self._heatmap_size()))
        for experts in by_head.values():
            samples = torch.isin(index, torch.tensor(experts, device=index.device)).nonzero().squeeze(1)
            heat = run(self.head_for(experts[0]), samples, experts[0])
            heatmaps[samples, : heat.shape[1]] = heat
        return heatmaps, num_keypoints

    # ------------------------------------------------------------------ ViTPose++ -> dense
    def fold_experts(self, dataset: int | str) -> VitPoseForPoseEstimation:
        """A dense model with the same outputs as this ViTPose++ model for one data set.

        The chosen expert's rows are appended to every fc2 (fc2 outputs C - part channels, the expert the last
        `part`; concatenated they are one C-wide Linear), and that data set's head becomes the main head. Tensors
        other than fc2 are shared with this model, not copied.
        """
        config, state = folded_experts(self, dataset)
        index = config.extra.get("folded_dataset_index")
        return build_model(config, state, device=self.device, dtype=self.dtype, source=f"fold of expert {index}")


def build_model(
    config: VitPoseConfig,
    state: Mapping[str, torch.Tensor],
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    source: Any = "state dict",
) -> VitPoseForPoseEstimation:
    """A model in eval mode holding `state` (vitpose keys) without copying it: built on the meta device, then the
    tensors are assigned. Floating tensors are cast to `dtype` (default float32, as transformers loads)."""
    with torch.device("meta"):
        model = VitPoseForPoseEstimation(config)
    state = check_keys(model, state, source)
    target = resolve_dtype(dtype)
    state = {k: v.to(target) if v.is_floating_point() and v.dtype != target else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    if device is not None:
        model.to(device)
    return model.eval()


def _as_pairs(pairs: torch.Tensor | Sequence[Sequence[int]], device: torch.device) -> torch.Tensor:
    out = torch.as_tensor(pairs, dtype=torch.long, device=device)
    if out.ndim != 2 or out.shape[1] != 2:
        raise VitPoseError(f"flip_pairs must have shape (P, 2), got {tuple(out.shape)}")
    return out
