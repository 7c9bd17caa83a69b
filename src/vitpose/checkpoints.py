"""Reading and writing weights: the transformers hub format, original ViTPose `.pth` files, hub downloads.

Inside `vitpose` the parameter names are the original ViTPose's (`backbone.blocks.{i}.attn.qkv`, `keypoint_head.*`,
`associate_keypoint_heads.{j}.*`); the hub format (separate query/key/value, `head.*`) is mapped here, at the
boundary, in both directions. Weights are read from memory-mapped files and assigned to a model built on the meta
device, so loading does not hold two copies of them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vitpose.config import CONFIG_NAME, PRESETS, VitPoseBackboneConfig, VitPoseConfig, apply_dataset_layout
from vitpose.device import resolve_dtype as device_dtype
from vitpose.errors import CheckpointError, ConfigError, VitPoseError
from vitpose.hub import is_hub_id, resolve_file

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
TORCH_WEIGHTS_NAME = "pytorch_model.bin"


# --------------------------------------------------------------------------- reading weights
class StateDict(dict):
    """A state dict read from safetensors files, with where each tensor's bytes lie: `locations[key]` =
    (file, byte offset, byte count). Lets the loader read a tensor's bytes straight into a buffer of its own (the
    fused qkv) instead of through the memory map, whose pages would otherwise stay resident next to the copy."""

    locations: dict[str, tuple[Path, int, int]]


def safetensors_locations(path: str | os.PathLike[str]) -> dict[str, tuple[Path, int, int]]:
    """Byte ranges of the tensors of a `.safetensors` file, from its header (8-byte little-endian length, then
    JSON with `data_offsets` relative to the end of the header)."""
    path = Path(path)
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    base = 8 + size
    return {
        key: (path, base + int(info["data_offsets"][0]), int(info["data_offsets"][1]) - int(info["data_offsets"][0]))
        for key, info in header.items()
        if key != "__metadata__"
    }


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors`, `.bin` or `.pth` file, memory-mapped where the format allows.

    Pickle files are read with `weights_only=True`: arbitrary objects are never unpickled. An mmpose checkpoint's
    `state_dict` (or `model`) entry is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = StateDict(load_file(str(path), device="cpu"))
            state.locations = safetensors_locations(path)
            return state
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            data = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as err:  # the libraries raise many types for a damaged file; one clear message for all
        kind = "unsafe or unsupported pickle content" if "weights_only" in str(err) or "Unsupported" in str(err) else ""
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            f"{' (' + kind + ')' if kind else ''}. The file may be truncated or corrupt: download it again."
        ) from err
    if isinstance(data, Mapping):
        for key in ("state_dict", "model", "module"):
            if key in data and isinstance(data[key], Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise CheckpointError(
            f"{path} does not hold a state dict (names -> tensors): not a model checkpoint, pass the model's "
            "weights file"
        )
    return dict(data)


def read_sharded(index_file: Path, resolve: Any) -> dict[str, torch.Tensor]:
    """Read a sharded safetensors checkpoint through its index; `resolve(name)` gives each shard's path."""
    try:
        weight_map = json.loads(index_file.read_text())["weight_map"]
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read shard index {index_file}: {err}") from err
    state = StateDict()
    state.locations = {}
    for shard in sorted(set(weight_map.values())):
        part = read_state_dict(resolve(shard))
        state.update(part)
        state.locations.update(getattr(part, "locations", {}))
    return state


# --------------------------------------------------------------------------- key mapping
_HF_HEAD = {
    "conv": "final_layer",
    "deconv1": "deconv_layers.0",
    "batchnorm1": "deconv_layers.1",
    "deconv2": "deconv_layers.3",
    "batchnorm2": "deconv_layers.4",
}
_NATIVE_HEAD = {v: k for k, v in _HF_HEAD.items()}
_HF_BLOCK = {
    "attention.output.dense": "attn.proj",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "mlp": "mlp",
}
_NATIVE_BLOCK = {v: k for k, v in _HF_BLOCK.items()}


def _map_head(rest: str, table: dict[str, str], key: str) -> str:
    for src, dst in table.items():
        if rest == src or rest.startswith(src + "."):
            return dst + rest[len(src) :]
    raise CheckpointError(f"unexpected head key {key!r}")


def _fuse_from_file(tensors: list[torch.Tensor], names: list[str], state: Mapping[str, Any]) -> torch.Tensor | None:
    """`torch.cat(tensors)` read straight from the safetensors file(s) into the result, or None where that is not
    possible (not read from safetensors, mixed dtypes, a byte count that does not match).

    Concatenating the memory-mapped tensors would make their pages resident (they count in the process's memory as
    long as the mapping lives) next to the fused copy: 1.25x the weights for a ViT. Reading the bytes with ordinary
    file reads leaves the mapped pages untouched, so only the fused copy is resident.
    """
    locations = getattr(state, "locations", None)
    if not locations or sys.byteorder != "little" or any(name not in locations for name in names):
        return None
    first = tensors[0]
    if any(t.dtype != first.dtype or t.shape[1:] != first.shape[1:] or t.device.type != "cpu" for t in tensors):
        return None
    fused = torch.empty((sum(t.shape[0] for t in tensors), *first.shape[1:]), dtype=first.dtype)
    if fused.numel() == 0:
        return None
    row = 0
    handles: dict[Path, Any] = {}
    try:
        for tensor, name in zip(tensors, names, strict=True):
            path, offset, count = locations[name]
            target = fused[row : row + tensor.shape[0]]
            row += tensor.shape[0]
            if count != tensor.numel() * tensor.element_size():
                return None
            if path not in handles:
                handles[path] = open(path, "rb")  # closed in the finally below
            handle = handles[path]
            handle.seek(offset)
            view = memoryview(target.view(torch.uint8).reshape(-1).numpy())
            if handle.readinto(view) != count:
                return None
    except OSError:
        return None
    finally:
        for handle in handles.values():
            handle.close()
    return fused


KNOWLEDGE_TOKEN_KEY = "backbone.embeddings.knowledge_token"
"""The knowledge token's key in the hub format (a vitpose extension: transformers' ViTPose has no such weight, and
loading such a checkpoint there drops it with a warning about unused weights, so its outputs are those of the model
without the token)."""


def hf_to_native(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers hub keys -> vitpose (original) keys; separate q/k/v are fused into one qkv."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unexpected = []
    for key, value in state.items():
        if key == "backbone.embeddings.position_embeddings":
            out["backbone.pos_embed"] = value
        elif key == KNOWLEDGE_TOKEN_KEY:
            out["backbone.knowledge_token"] = value
        elif key.startswith("backbone.embeddings.patch_embeddings.projection."):
            out["backbone.patch_embed.proj." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("backbone.layernorm."):
            out["backbone.last_norm." + key.rsplit(".", 1)[1]] = value
        elif m := re.match(r"backbone\.encoder\.layer\.(\d+)\.(.+)$", key):
            i, rest = m.groups()
            if q := re.match(r"attention\.attention\.(query|key|value)\.(weight|bias)$", rest):
                qkv.setdefault((i, q.group(2)), {})[q.group(1)] = value
                continue
            for src, dst in _HF_BLOCK.items():
                if rest.startswith(src + "."):
                    out[f"backbone.blocks.{i}.{dst}{rest[len(src) :]}"] = value
                    break
            else:
                unexpected.append(key)
        elif key.startswith("head."):
            out["keypoint_head." + _map_head(key[5:], _HF_HEAD, key)] = value
        elif m := re.match(r"associate_heads\.(\d+)\.(.+)$", key):
            out[f"associate_keypoint_heads.{m.group(1)}." + _map_head(m.group(2), _HF_HEAD, key)] = value
        else:
            unexpected.append(key)
    for (i, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            missing = sorted({"query", "key", "value"} - set(parts))
            raise CheckpointError(f"layer {i} has no attention {', '.join(missing)} {kind}")
        names = [f"backbone.encoder.layer.{i}.attention.attention.{p}.{kind}" for p in ("query", "key", "value")]
        tensors = [parts["query"], parts["key"], parts["value"]]
        fused = _fuse_from_file(tensors, names, state)
        if fused is None:
            if len({(t.shape[1:], t.dtype) for t in tensors}) != 1 or any(t.ndim == 0 for t in tensors):
                parts = zip(("query", "key", "value"), tensors, strict=True)
                shapes = ", ".join(f"{p} {tuple(t.shape)} {t.dtype}" for p, t in parts)
                raise CheckpointError(f"layer {i}: the attention {kind} tensors do not fit together ({shapes})")
            fused = torch.cat(tensors)
        out[f"backbone.blocks.{i}.attn.qkv.{kind}"] = fused
    if unexpected:
        raise CheckpointError(f"unexpected keys in the checkpoint: {_list_keys(unexpected)}")
    return out


def native_to_hf(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """vitpose keys -> transformers hub keys (qkv split into query, key, value)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "backbone.pos_embed":
            out["backbone.embeddings.position_embeddings"] = value
        elif key == "backbone.knowledge_token":
            out[KNOWLEDGE_TOKEN_KEY] = value
        elif key.startswith("backbone.patch_embed.proj."):
            out["backbone.embeddings.patch_embeddings.projection." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("backbone.last_norm."):
            out["backbone.layernorm." + key.rsplit(".", 1)[1]] = value
        elif m := re.match(r"backbone\.blocks\.(\d+)\.(.+)$", key):
            i, rest = m.groups()
            prefix = f"backbone.encoder.layer.{i}."
            if q := re.match(r"attn\.qkv\.(weight|bias)$", rest):
                for name, part in zip(("query", "key", "value"), value.chunk(3), strict=True):
                    out[f"{prefix}attention.attention.{name}.{q.group(1)}"] = part
                continue
            for src, dst in _NATIVE_BLOCK.items():
                if rest.startswith(src + "."):
                    out[prefix + dst + rest[len(src) :]] = value
                    break
            else:
                raise CheckpointError(f"cannot map key {key!r} to the hub format")
        elif key.startswith("keypoint_head."):
            out["head." + _map_head(key[len("keypoint_head.") :], _NATIVE_HEAD, key)] = value
        elif m := re.match(r"associate_keypoint_heads\.(\d+)\.(.+)$", key):
            out[f"associate_heads.{m.group(1)}." + _map_head(m.group(2), _NATIVE_HEAD, key)] = value
        else:
            raise CheckpointError(f"cannot map key {key!r} to the hub format")
    return out


def original_to_native(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original ViTPose keys -> vitpose keys: the same names, less a `module.` prefix and the unused cls_token."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key == "backbone.cls_token":
            continue  # defined in some checkpoints, never used in the forward pass
        out[key] = value
    return out


def is_hf_format(state: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("backbone.embeddings.") or k.startswith("backbone.encoder.") for k in state)


# --------------------------------------------------------------------------- config from shapes
def infer_config(state: Mapping[str, torch.Tensor]) -> VitPoseConfig:
    """Config of an original ViTPose checkpoint, from its tensor shapes (vitpose key names).

    Width picks the preset (number of attention heads cannot be seen in shapes); depth, decoder type, keypoint
    counts, experts, part features and input size are read off the tensors. Shapes that describe no ViTPose (a
    tensor of the wrong rank, a depth or size out of the config's bounds) are a `CheckpointError`.
    """
    try:
        return _infer_config(state)
    except CheckpointError:
        raise
    except ConfigError as err:
        raise CheckpointError(f"the tensor shapes describe no valid ViTPose: {err}") from None
    except (IndexError, KeyError, TypeError, ValueError, ZeroDivisionError) as err:
        raise CheckpointError(
            f"not a ViTPose checkpoint: its tensors do not have a ViTPose's shapes ({type(err).__name__}: {err})"
        ) from None


def _infer_config(state: Mapping[str, torch.Tensor]) -> VitPoseConfig:

    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"not a ViTPose checkpoint: key {key!r} is missing")
        return state[key]

    proj = need("backbone.patch_embed.proj.weight")
    width, channels, patch_h, patch_w = proj.shape
    presets = {p["hidden_size"]: (name, p) for name, p in PRESETS.items()}
    if width not in presets:
        widths = ", ".join(f"{w} ({n})" for w, (n, _) in sorted(presets.items()))
        raise CheckpointError(
            f"backbone width {width} fits no ViTPose preset ({widths}); pass config=VitPoseConfig(...) "
            "describing the model"
        )
    _, preset = presets[width]
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"backbone\.blocks\.(\d+)\.", k)))
    fc1 = need("backbone.blocks.0.mlp.fc1.weight")
    experts = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"backbone\.blocks\.0\.mlp\.experts\.(\d+)\.weight", k))}
    )
    part = state[f"backbone.blocks.0.mlp.experts.{experts[0]}.weight"].shape[0] if experts else preset["part_features"]

    tokens = need("backbone.pos_embed").shape[1] - 1
    grid = None
    for rows_per_col in (4 / 3, 1.0):  # ViTPose inputs are 4:3 (256x192, 384x288) or square (256x256)
        cols = round((tokens / rows_per_col) ** 0.5)
        rows = tokens // cols if cols else 0
        if rows * cols == tokens and abs(rows / cols - rows_per_col) < 1e-6:
            grid = (rows, cols)
            break
    if grid is None:
        raise CheckpointError(f"cannot infer the input size from {tokens} position embeddings (not 4:3 nor square)")

    head_out = need("keypoint_head.final_layer.weight")
    simple = "keypoint_head.deconv_layers.0.weight" not in state
    if simple and head_out.shape[1] != width:
        raise CheckpointError(f"head input channels {head_out.shape[1]} do not match backbone width {width}")
    associate = []
    j = 0
    while f"associate_keypoint_heads.{j}.final_layer.weight" in state:
        associate.append(state[f"associate_keypoint_heads.{j}.final_layer.weight"].shape[0])
        j += 1
    backbone = VitPoseBackboneConfig(
        image_size=(grid[0] * patch_h, grid[1] * patch_w),
        patch_size=(patch_h, patch_w),
        num_channels=channels,
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=preset["num_attention_heads"],
        mlp_ratio=fc1.shape[0] / width if fc1.shape[0] % width else fc1.shape[0] // width,
        num_experts=len(experts) if experts else 1,
        part_features=part,
        layer_norm_eps=1e-6,  # the original's LayerNorm eps
        qkv_bias="backbone.blocks.0.attn.qkv.bias" in state,
        knowledge_token="backbone.knowledge_token" in state,
    )
    config = VitPoseConfig(
        backbone_config=backbone,
        num_labels=head_out.shape[0],
        use_simple_decoder=simple,
        associate_num_labels=associate,
    )
    apply_dataset_layout(config)
    return config


# --------------------------------------------------------------------------- building models
def check_keys(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: Any) -> dict[str, torch.Tensor]:
    expected = model.state_dict()
    state = dict(state)
    # BatchNorm's step counter is not a weight; checkpoints differ on whether they store it.
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=value.dtype)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys: {_list_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_list_keys(unexpected)}")
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    shapes += [
        f"{k}: checkpoint dtype {state[k].dtype} vs model {v.dtype}"
        for k, v in expected.items()
        if k in state
        and (state[k].is_floating_point() != v.is_floating_point() or state[k].is_complex() or state[k].is_sparse)
    ]
    if shapes:
        problems.append(
            "shape mismatches: " + "; ".join(shapes[:8]) + (f" (+{len(shapes) - 8} more)" if len(shapes) > 8 else "")
        )
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit the model: " + " | ".join(problems))
    return state


def _list_keys(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """The dtype a checkpoint loads in: the names and aliases of `vitpose.device.resolve_dtype` (their one home);
    "auto" and None are float32 here (the weights as stored; `PoseEstimator.from_pretrained` decides "auto" by
    the device before it gets here)."""
    if dtype is None or dtype == "auto":
        return torch.float32
    try:
        return device_dtype(dtype, "cpu")
    except VitPoseError as err:
        raise CheckpointError(str(err)) from None


def load_checkpoint(
    source: str | os.PathLike[str], *, config: VitPoseConfig | None = None, **hub_kwargs: Any
) -> tuple[VitPoseConfig, dict[str, torch.Tensor], str]:
    """The config, the weights (vitpose key names, memory-mapped where the file allows) and a label naming the
    checkpoint, for a hub-format directory, a hub id or an original checkpoint file. Building the model from them
    is `VitPoseForPoseEstimation.from_pretrained`'s job, so that this module never needs the model class."""
    path = Path(source)
    if path.is_file():
        state = read_state_dict(path)
        if is_hf_format(state):
            if config is None:
                sibling = path.parent / CONFIG_NAME
                if not sibling.is_file():
                    raise CheckpointError(
                        f"{path} holds transformers-format weights but {sibling} is missing; pass the directory "
                        "with its config.json, or config=VitPoseConfig(...)"
                    )
                config = VitPoseConfig.from_json_file(sibling)
            native = hf_to_native(state)
        else:
            native = original_to_native(state)
            if config is None:
                config = infer_config(native)
        return config, native, str(path)

    if config is None:
        config = VitPoseConfig.from_json_file(resolve_file(source, CONFIG_NAME, **hub_kwargs))
    weights = resolve_file(source, SAFE_WEIGHTS_NAME, required=False, **hub_kwargs)
    if weights is not None:
        state = read_state_dict(weights)
    elif (index := resolve_file(source, SAFE_WEIGHTS_INDEX_NAME, required=False, **hub_kwargs)) is not None:
        state = read_sharded(index, lambda name: resolve_file(source, name, **hub_kwargs))
    elif (weights := resolve_file(source, TORCH_WEIGHTS_NAME, required=False, **hub_kwargs)) is not None:
        state = read_state_dict(weights)
    else:
        raise FileNotFoundError(
            f"{source} has a config.json but no {SAFE_WEIGHTS_NAME}, {SAFE_WEIGHTS_INDEX_NAME} or {TORCH_WEIGHTS_NAME}"
        )
    native = hf_to_native(state) if is_hf_format(state) else original_to_native(state)
    return config, native, str(source)


def save_checkpoint(
    config: VitPoseConfig,
    state_dict: Mapping[str, torch.Tensor],
    save_directory: str | os.PathLike[str],
    safe_serialization: bool = True,
) -> None:
    """Write `config.json` and the weights (vitpose key names in `state_dict`) in the transformers hub format."""
    os.makedirs(save_directory, exist_ok=True)
    config.save_pretrained(save_directory)
    state = {k: v.detach().to("cpu").contiguous() for k, v in native_to_hf(state_dict).items()}
    if safe_serialization:
        from safetensors.torch import save_file

        # Tensors must not share memory in a safetensors file (q, k, v are views of one qkv): clone the views.
        save_file(
            {k: v.clone() for k, v in state.items()},
            str(Path(save_directory, SAFE_WEIGHTS_NAME)),
            metadata={"format": "pt"},
        )
    else:
        torch.save(state, Path(save_directory, TORCH_WEIGHTS_NAME))


__all__ = [
    "CheckpointError",
    "check_keys",
    "hf_to_native",
    "infer_config",
    "is_hub_id",
    "load_checkpoint",
    "native_to_hf",
    "original_to_native",
    "read_state_dict",
    "resolve_dtype",
    "resolve_file",
    "save_checkpoint",
]
