"""Model configuration, read and written in the transformers hub format (`config.json`).

`VitPoseConfig` mirrors `transformers.VitPoseConfig` closely enough that a `config.json` written by either loads in
the other: the backbone settings live in a nested `backbone_config` with `model_type: "vitpose_backbone"`. Keys we do
not know are kept and written back, so a round trip loses nothing.

ViTPose++ extras (ignored by transformers): `associate_num_labels`, the keypoint counts of the heads for
`dataset_index` 1, 2, ... (the original's `associate_keypoint_heads`), and `flip_pairs` for the main head.
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitpose.datasets.coco import read_json
from vitpose.datasets.metadata import get_dataset_info
from vitpose.errors import ConfigError
from vitpose.hub import resolve_file

CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class ModelSize:
    """One ViT size of the preset registry (`MODEL_SIZES`)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    part_features: int  # the width of a ViTPose++ expert's MLP part
    drop_path_rate: float  # the original's training stochastic depth for this size
    published: bool = True  # a size of the published checkpoints (original .pth files are matched against these)


# THE preset registry: the published ViT sizes of ViTPose / ViTPose++, and `tiny` for tests and quick experiments.
MODEL_SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(96, 3, 4, 24, 0.0, published=False),
    "small": ModelSize(384, 12, 12, 96, 0.1),
    "base": ModelSize(768, 12, 12, 192, 0.3),
    "large": ModelSize(1024, 24, 16, 256, 0.5),
    "huge": ModelSize(1280, 32, 16, 320, 0.55),
}
PRESET_NAMES = tuple(MODEL_SIZES)
PRESET_ALIASES = {"s": "small", "b": "base", "l": "large", "h": "huge"}
# Views of the registry kept for their importers: the published sizes' backbone keys, and their drop-path rates.
PRESETS: dict[str, dict[str, Any]] = {
    name: {
        "hidden_size": m.hidden_size,
        "num_hidden_layers": m.num_hidden_layers,
        "num_attention_heads": m.num_attention_heads,
        "part_features": m.part_features,
    }
    for name, m in MODEL_SIZES.items()
    if m.published
}
DROP_PATH_RATES = {name: m.drop_path_rate for name, m in MODEL_SIZES.items() if m.published}
_PRESET_RE = re.compile(r"^(?:vitpose[-_]?)?(tiny|small|base|large|huge|[sblh])(\+|[-_]?plus)?$", re.IGNORECASE)
# ViTPose++: six experts, the main head COCO's and one extra head per other data set of the registry (1..5).
PLUS_EXPERTS = 6

# The keypoint names the transformers port writes into the COCO checkpoints' config.json. They are read as the
# COCO names of the data-set registry, so that `id2label` is the same whichever format a checkpoint comes in.
_PORT_COCO_NAMES = (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
    "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
)  # fmt: skip


# --------------------------------------------------------------------------- bounds of the config values
# Every value of a config is checked here, against this one table, when a config is built (`VitPoseBackboneConfig`
# and `VitPoseConfig` construction; `from_dict`, `from_json_file` and `from_pretrained` go through it): a wrong type,
# a value out of range or nested JSON is a `ConfigError` naming the field, the value and the valid range, before
# anything is allocated. The bounds are generous for every published model and tight enough that no config can ask
# for more memory than a large machine has:
#
# - published: ViT-S/B/L/H (384..1280 wide, 12..32 blocks, 12..16 heads), ViTPose-G (ViT-g: 1408 wide, 40 blocks),
#   inputs 256x192 .. 576x432 with 16-pixel patches, ViTPose++ with 6 experts, heads of 14 .. 133 keypoints
#   (COCO-WholeBody), heatmaps 4x the token grid;
# - bounds: width <= 2048, depth <= 64, heads <= 64, MLP ratio <= 16, experts <= 16, input sides <= 2048 px,
#   patches <= 64 px, at most 4096 tokens (a 1024x1024 input at 16-px patches), <= 1024 keypoints per head,
#   <= 16 heads, upsampling <= 16, and two derived limits below: at most MAX_PARAMETERS backbone weights (8 GB in
#   float32; ViTPose-G has 1.0e9) and MAX_HEATMAP_VALUES heatmap values per crop (64 MiB in float32; COCO-WholeBody
#   at 256x192 has 0.4e6).
MAX_PARAMETERS = 2_000_000_000
MAX_TOKENS = 4096
MAX_HEATMAP_VALUES = 2**24
MAX_NESTING = 32  # JSON nesting of a config file (and of the values in it); real configs nest 3 levels


@dataclass(frozen=True)
class Bound:
    """The type and range of one config value: `kind` "int", "float", "bool", "str", "size" (an int or a pair of
    ints: image and patch size), "ints" (a list of ints), "pairs" (a list of [int, int]); `low` / `high` inclusive
    bounds (`open_low`: `low` itself excluded); `choices` for "str"; `none`: None is allowed (left unset)."""

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    choices: tuple[str, ...] = ()
    none: bool = False
    max_len: int | None = None

    def describe(self) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo = "(" if self.open_low else "["
        rng = f"{lo}{_num(self.low)}, {_num(self.high)}]"
        what = {
            "int": f"an integer in {rng}",
            "float": f"a number in {rng}",
            "size": f"an integer or a [height, width] pair of integers in {rng}",
            "ints": f"a list of integers in {rng}",
            "pairs": "a list of [i, j] pairs of keypoint indices",
        }[self.kind]
        if self.max_len is not None:
            what += f" (at most {self.max_len} entries)"
        return what + (" or null" if self.none else "")


def _num(value: float | None) -> str:
    return "inf" if value is None else (str(int(value)) if float(value).is_integer() else repr(value))


BACKBONE_BOUNDS: dict[str, Bound] = {
    "image_size": Bound("size", 1, 2048),
    "patch_size": Bound("size", 1, 64),
    "num_channels": Bound("int", 1, 16),
    "hidden_size": Bound("int", 1, 2048),
    "num_hidden_layers": Bound("int", 1, 64),
    "num_attention_heads": Bound("int", 1, 64),
    "mlp_ratio": Bound("float", 0, 16, open_low=True),
    "num_experts": Bound("int", 1, 16),
    "part_features": Bound("int", 0, 2048),
    "hidden_act": Bound("str", choices=("gelu", "gelu_python")),
    "hidden_dropout_prob": Bound("float", 0, 1),
    "attention_probs_dropout_prob": Bound("float", 0, 1),
    "drop_path_rate": Bound("float", 0, 1),
    "initializer_range": Bound("float", 0, 1),
    "layer_norm_eps": Bound("float", 0, 1, open_low=True),
    "qkv_bias": Bound("bool"),
    "out_indices": Bound("ints", -65, 64, none=True, max_len=65),
    "knowledge_token": Bound("bool"),
}
MODEL_BOUNDS: dict[str, Bound] = {
    "num_labels": Bound("int", 1, 1024, none=True),
    "use_simple_decoder": Bound("bool"),
    "scale_factor": Bound("int", 1, 16),
    "initializer_range": Bound("float", 0, 1),
    "edges": Bound("pairs", none=True, max_len=100_000),
    "associate_num_labels": Bound("ints", 1, 1024, none=True, max_len=16),
    "flip_pairs": Bound("pairs", none=True, max_len=100_000),
}


def _bad(field: str, bound: Bound, value: Any) -> ConfigError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ConfigError(f"config field {field!r} must be {bound.describe()}, got {shown}")


def _as_int(value: Any) -> int | None:
    """`value` as an int where it is one (an integral float such as 12.0 too), else None; bools are not ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        return int(value)
    return None


def _in_range(value: float, bound: Bound) -> bool:
    if bound.low is not None and (value <= bound.low if bound.open_low else value < bound.low):
        return False
    return bound.high is None or value <= bound.high


def checked(field: str, value: Any, bound: Bound) -> Any:
    """`value` converted to the type of `bound` (int, float, bool, str, [int, int], list of ints, list of pairs),
    or a `ConfigError` naming `field`, the value and the valid range."""
    if value is None and bound.none:
        return None
    kind = bound.kind
    if kind == "bool":
        if isinstance(value, bool):
            return bool(value)
        raise _bad(field, bound, value)
    if kind == "str":
        if isinstance(value, str) and value in bound.choices:
            return value
        raise _bad(field, bound, value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _bad(field, bound, value)
        number = float(value)
        if not math.isfinite(number) or not _in_range(number, bound):
            raise _bad(field, bound, value)
        return value if isinstance(value, int) else number
    if kind == "int":
        number = _as_int(value)
        if number is None or not _in_range(number, bound):
            raise _bad(field, bound, value)
        return number
    if kind == "size":
        items = [value, value] if _as_int(value) is not None else value
        if not isinstance(items, (list, tuple)) or len(items) != 2:
            raise _bad(field, bound, value)
        sides = [_as_int(v) for v in items]
        if any(s is None or not _in_range(s, bound) for s in sides):
            raise _bad(field, bound, value)
        return sides
    if not isinstance(value, (list, tuple)) or (bound.max_len is not None and len(value) > bound.max_len):
        raise _bad(field, bound, value)
    if kind == "ints":
        ints = [_as_int(v) for v in value]
        if any(i is None or not _in_range(i, bound) for i in ints):
            raise _bad(field, bound, value)
        return ints
    if kind == "pairs":
        pairs = []
        for pair in value:
            ints = [_as_int(v) for v in pair] if isinstance(pair, (list, tuple)) else [None]
            if len(ints) != 2 or any(i is None for i in ints):
                raise _bad(field, bound, value)
            pairs.append(ints)
        return pairs
    raise AssertionError(kind)


def check_nesting(value: Any, what: str, limit: int = MAX_NESTING) -> None:
    """A `ConfigError` where `value` (JSON-like: dicts and lists) nests deeper than `limit` levels; iterative, so
    that a hostile nesting cannot raise a RecursionError here (nor later, in the copies and `to_dict`)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            raise ConfigError(f"{what} nests more than {limit} levels deep: not a model config")
        stack.extend((child, depth + 1) for child in children)


def apply_dataset_layout(config: VitPoseConfig, dataset_index: int = 0) -> None:
    """Set the keypoint names, skeleton and flip pairs of `config`'s main head to those of the registry's data set
    `dataset_index`, where its keypoint count matches the head's (a custom skeleton keeps its own)."""
    try:
        info = get_dataset_info(dataset_index)
    except ValueError:
        return
    if info.num_keypoints != config.num_labels:
        return
    config.id2label = dict(enumerate(info.keypoint_names))
    config.label2id = {v: k for k, v in config.id2label.items()}
    config.edges = [list(e) for e in info.skeleton]
    config.flip_pairs = [list(p) for p in info.flip_pairs]


def _pair(value: int | Sequence[int], name: str) -> list[int]:
    if isinstance(value, int):
        return [value, value]
    value = list(value)
    if len(value) != 2:
        raise ConfigError(f"{name} must be an int or a (height, width) pair, got {value!r}")
    return [int(v) for v in value]


def parse_input_size(
    value: Sequence[int] | str, name: str = "input_size", *, landscape_warning: bool = True
) -> tuple[int, int]:
    """A network input size as (width, height), the order of `input_size` everywhere in the Python API (the
    processor, the codec, `VitPoseConfig.input_size`, presets, training).

    Also takes the command line's text ``"HEIGHTxWIDTH"`` (``"256x192"``, the way ViTPose names its resolutions),
    which is unambiguous. transformers' `image_size` (backbone config) is the same size as (height, width).

    Training took (height, width) before vitpose 0.2, so a pair that is wider than high (``(256, 192)``, which is
    ViTPose's 256x192 in the old order) warns, unless `landscape_warning` is False.
    """
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            height, width = (int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"{name} text must be HEIGHTxWIDTH such as 256x192, got {value!r}") from None
    else:
        try:
            width, height = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a (width, height) pair or 'HEIGHTxWIDTH' text, got {value!r}") from None
    if width < 1 or height < 1:
        raise ConfigError(f"{name} must be positive, got (width, height) = ({width}, {height})")
    if landscape_warning and not isinstance(value, str) and width > height:
        warnings.warn(
            f"{name}={tuple(value)} is read as (width, height) = ({width}, {height}), a landscape input: since "
            f"vitpose 0.2 input_size is (width, height) everywhere (training took (height, width) before). For "
            f"ViTPose's portrait {width}x{height} (height x width) input pass ({height}, {width}) or the text "
            f"'{width}x{height}'",
            UserWarning,
            stacklevel=3,
        )
    return width, height


def _token_grid(image_size: Sequence[int], patch_size: Sequence[int]) -> tuple[int, int]:
    (h, w), (ph, pw) = image_size, patch_size
    return (h + 4 - ph) // ph + 1, (w + 4 - pw) // pw + 1


def heatmap_size_for(
    input_size: Sequence[int] | str, patch_size: int | Sequence[int] = 16, upsample: int = 4
) -> tuple[int, int]:
    """Heatmap (width, height) of a ViTPose with input (width, height): the token grid of the patch embedding
    (stride `patch_size`, padding 2) upsampled `upsample` times (`VitPoseConfig.heatmap_size` for a model); (48, 64)
    for (192, 256)."""
    width, height = parse_input_size(input_size, landscape_warning=False)
    rows, cols = _token_grid((height, width), _pair(patch_size, "patch_size"))
    return int(cols * upsample), int(rows * upsample)


def is_preset(source: str | os.PathLike[str]) -> bool:
    """Whether `source` names a preset (`tiny`, `small`, `base`, `large`, `huge`, s/b/l/h, `+` or `-plus` for
    ViTPose++) and not an existing file or folder."""
    return bool(_PRESET_RE.match(str(source))) and not Path(source).exists()


def preset_config(
    name: str,
    *,
    training: bool = False,
    decoder: str | None = None,
    num_labels: int = 17,
    num_experts: int | None = None,
    input_size: Sequence[int] | str | None = None,
    drop_path_rate: float | None = None,
    **overrides: Any,
) -> VitPoseConfig:
    """The config of a preset of the registry `MODEL_SIZES`: `tiny`, `small`, `base`, `large`, `huge` (or s/b/l/h),
    with `+` (or `-plus`) for ViTPose++: six experts and the extra heads of AI Challenger, MPII, AP-10K, APT-36K and
    COCO-WholeBody (`dataset_index` 1..5; the main head is COCO's). Weights are not part of a preset.

    Args:
        training: which defaults apply where `decoder` / `drop_path_rate` are not given. False (the defaults of
            `VitPoseConfig.from_preset`): the simple decoder and no stochastic depth, the layout of
            `usyd-community/vitpose-base-simple` and of `VitPoseConfig()`. True (`vitpose.training.preset_config`,
            `vitpose train --model NAME`): the classic decoder of the papers' main results and the original's
            drop-path rate for the size (`ModelSize.drop_path_rate`: S 0.1, B 0.3, L 0.5, H 0.55, tiny 0).
        decoder: "simple" or "classic".
        num_labels: keypoints of the main head.
        num_experts: default 6 for a `+` name, else 1 (a ViTPose++ backbone without the extra heads when > 1).
        input_size: network input (width, height) or "HEIGHTxWIDTH" text; default (192, 256).
        drop_path_rate: stochastic depth of the last block.
        overrides: go to the backbone config where they name one of its fields (e.g. `num_hidden_layers=2` for a
            shallow test model, `image_size=(H, W)` as transformers), otherwise to the model config.
    """
    m = _PRESET_RE.match(str(name))
    if not m:
        raise ConfigError(
            f"unknown size {name!r}: presets are {', '.join(PRESET_NAMES)} (or s/b/l/h; add '+' for ViTPose++)"
        )
    size = PRESET_ALIASES.get(m.group(1).lower(), m.group(1).lower())
    plus = m.group(2) is not None
    spec = MODEL_SIZES[size]
    decoder = decoder or ("classic" if training else "simple")
    if decoder not in ("simple", "classic"):
        raise ConfigError(f"decoder must be 'simple' or 'classic', got {decoder!r}")
    if drop_path_rate is None:
        drop_path_rate = spec.drop_path_rate if training else 0.0
    backbone: dict[str, Any] = {
        "hidden_size": spec.hidden_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads,
        "part_features": spec.part_features,
        "num_experts": num_experts if num_experts is not None else (PLUS_EXPERTS if plus else 1),
        "layer_norm_eps": 1e-6,
        "drop_path_rate": drop_path_rate,
    }
    if input_size is not None:
        width, height = parse_input_size(input_size)
        backbone["image_size"] = [height, width]
    backbone_fields = set(VitPoseBackboneConfig().to_dict()) | {"knowledge_token"}  # written only when set
    model_kwargs: dict[str, Any] = {}
    for key, value in overrides.items():
        (backbone if key in backbone_fields else model_kwargs)[key] = value
    if plus:
        model_kwargs.setdefault(
            "associate_num_labels", [get_dataset_info(i).num_keypoints for i in range(1, PLUS_EXPERTS)]
        )
    return VitPoseConfig(
        backbone_config=VitPoseBackboneConfig(**backbone),
        num_labels=num_labels,
        use_simple_decoder=decoder == "simple",
        **model_kwargs,
    )


def _keywords(data: Any, what: str) -> dict[str, Any]:
    """A deep copy of a config dict to pass as keyword arguments, or a `ConfigError` for one that is not a dict,
    nests too deeply or has keys that cannot be keywords."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"the {what} must be a JSON object, got {type(data).__name__} {data!r:.60}")
    check_nesting(data, f"the {what}")
    for key in data:
        if not isinstance(key, str) or key == "self":
            raise ConfigError(f"the {what} has the key {key!r:.60}, which is not a config field")
    return copy.deepcopy(dict(data))


def _id2label(value: Any) -> dict[int, str]:
    """`id2label` with int keys, or a `ConfigError` for anything but an object of index -> name."""
    if isinstance(value, dict):
        out = {}
        for key, name in value.items():
            index = _as_int(key)
            if index is None and isinstance(key, str) and key.strip().isdigit() and len(key) < 20:
                index = int(key)
            if index is None or index < 0 or not isinstance(name, str):
                break
            out[index] = name
        else:
            return out
    raise ConfigError(
        f'config field \'id2label\' must be an object of keypoint index -> name such as {{"0": "nose"}}, '
        f"got {value!r:.80}"
    )


class VitPoseBackboneConfig:
    """Settings of the ViT backbone (transformers' `VitPoseBackboneConfig` keys).

    `out_indices` picks the block whose output feeds the head (1-based; 0 is the patch embedding). Only the last
    entry is used. Left unset, it is the last block (transformers' `VitPoseConfig()` default of `[4]` is a trap:
    real checkpoints set the last block).
    """

    model_type = "vitpose_backbone"

    def __init__(
        self,
        image_size: int | Sequence[int] = (256, 192),
        patch_size: int | Sequence[int] = (16, 16),
        num_channels: int = 3,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        mlp_ratio: int | float = 4,
        num_experts: int = 1,
        part_features: int = 256,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        qkv_bias: bool = True,
        out_indices: Sequence[int] | None = None,
        out_features: Sequence[str] | None = None,
        knowledge_token: bool = False,
        **kwargs: Any,
    ) -> None:
        b = BACKBONE_BOUNDS
        self.image_size = checked("image_size", image_size, b["image_size"])
        self.patch_size = checked("patch_size", patch_size, b["patch_size"])
        self.num_channels = checked("num_channels", num_channels, b["num_channels"])
        self.hidden_size = checked("hidden_size", hidden_size, b["hidden_size"])
        self.num_hidden_layers = checked("num_hidden_layers", num_hidden_layers, b["num_hidden_layers"])
        self.num_attention_heads = checked("num_attention_heads", num_attention_heads, b["num_attention_heads"])
        ratio = checked("mlp_ratio", mlp_ratio, b["mlp_ratio"])
        self.mlp_ratio = mlp_ratio if isinstance(mlp_ratio, int) and not isinstance(mlp_ratio, bool) else ratio
        self.num_experts = checked("num_experts", num_experts, b["num_experts"])
        self.part_features = checked("part_features", part_features, b["part_features"])
        self.hidden_act = checked("hidden_act", hidden_act, b["hidden_act"])
        self.hidden_dropout_prob = checked("hidden_dropout_prob", hidden_dropout_prob, b["hidden_dropout_prob"])
        self.attention_probs_dropout_prob = checked(
            "attention_probs_dropout_prob", attention_probs_dropout_prob, b["attention_probs_dropout_prob"]
        )
        self.drop_path_rate = checked("drop_path_rate", drop_path_rate, b["drop_path_rate"])
        self.initializer_range = checked("initializer_range", initializer_range, b["initializer_range"])
        self.layer_norm_eps = checked("layer_norm_eps", layer_norm_eps, b["layer_norm_eps"])
        self.qkv_bias = checked("qkv_bias", qkv_bias, b["qkv_bias"])
        # The paper's knowledge token (transferability): one learnable token beside the patch tokens, seen by every
        # attention layer, dropped before the feature map. A vitpose extension: transformers' ViTPose has none.
        self.knowledge_token = checked("knowledge_token", knowledge_token, b["knowledge_token"])
        stage_names = self.stage_names
        out_indices = checked("out_indices", out_indices, b["out_indices"])
        if out_indices is None and out_features is not None:
            if not isinstance(out_features, (list, tuple)) or not all(f in stage_names for f in out_features):
                raise ConfigError(
                    f"config field 'out_features' must be a list of stage names ('stem', 'stage1' .. "
                    f"'stage{self.num_hidden_layers}'), got {out_features!r:.80}"
                )
            out_indices = [stage_names.index(f) for f in out_features]
        if out_indices is None:
            out_indices = [self.num_hidden_layers]
        if not out_indices:
            raise ConfigError("config field 'out_indices' must name at least one block, got []")
        self.out_indices = [i if i >= 0 else len(stage_names) + i for i in out_indices]
        kwargs.pop("stage_names", None)
        kwargs.pop("model_type", None)
        check_nesting(kwargs, "the backbone config")
        self.extra: dict[str, Any] = kwargs
        self.validate()

    @property
    def stage_names(self) -> list[str]:
        return ["stem"] + [f"stage{i}" for i in range(1, self.num_hidden_layers + 1)]

    @property
    def out_features(self) -> list[str]:
        return [self.stage_names[i] for i in self.out_indices]

    @property
    def feature_layer(self) -> int:
        """Number of blocks run: the output of block `feature_layer` (1-based) feeds the head."""
        return self.out_indices[-1]

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (rows, cols): the patch convolution has padding 2, so 256x192 with 16x16 patches gives 16x12."""
        return _token_grid(self.image_size, self.patch_size)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    @property
    def num_parameters(self) -> int:
        """The backbone's weight count, from the sizes alone (what `validate` bounds by `MAX_PARAMETERS`)."""
        width, mlp = self.hidden_size, int(self.hidden_size * self.mlp_ratio)
        rows, cols = self.grid_size
        block = 4 * width * width + 2 * width * mlp + mlp + 9 * width
        if self.is_moe:
            block += (self.num_experts - 1) * (mlp + 1) * self.part_features  # the experts replace part of fc2
        patch = self.num_channels * width * self.patch_size[0] * self.patch_size[1] + width
        token = width if self.knowledge_token else 0
        return self.num_hidden_layers * block + patch + (max(rows * cols, 0) + 1) * width + 2 * width + token

    def validate(self) -> None:
        """The checks across fields (each field's own type and range are checked on construction, `checked`)."""
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"config field 'hidden_size' ({self.hidden_size}) must be a multiple of 'num_attention_heads' "
                f"({self.num_attention_heads})"
            )
        if self.num_experts > 1 and not 0 < self.part_features < self.hidden_size:
            raise ConfigError(
                f"config field 'part_features' must be in (0, hidden_size={self.hidden_size}) for "
                f"{self.num_experts} experts, got {self.part_features}"
            )
        if int(self.hidden_size * self.mlp_ratio) < 1:
            raise ConfigError(
                f"config field 'mlp_ratio' ({self.mlp_ratio}) gives an MLP of no channels for hidden_size "
                f"{self.hidden_size}"
            )
        if not all(0 <= i <= self.num_hidden_layers for i in self.out_indices):
            raise ConfigError(
                f"config field 'out_indices' ({self.out_indices}) out of range for {self.num_hidden_layers} layers: "
                f"valid 0..{self.num_hidden_layers}"
            )
        for side, size, patch in zip(("height", "width"), self.image_size, self.patch_size, strict=True):
            if patch > size + 4:
                raise ConfigError(
                    f"config field 'patch_size' ({patch}) is larger than the image {side} {size} + the padding 4: "
                    "no patch fits"
                )
        rows, cols = self.grid_size
        if rows * cols > MAX_TOKENS:
            raise ConfigError(
                f"config fields 'image_size' {self.image_size} and 'patch_size' {self.patch_size} give "
                f"{rows}x{cols} = {rows * cols} tokens, more than {MAX_TOKENS} (a 1024x1024 input at 16-pixel "
                "patches): use a smaller input or larger patches"
            )
        if self.num_parameters > MAX_PARAMETERS:
            raise ConfigError(
                f"the backbone of hidden_size {self.hidden_size}, num_hidden_layers {self.num_hidden_layers}, "
                f"mlp_ratio {self.mlp_ratio} and num_experts {self.num_experts} has {self.num_parameters:.3g} "
                f"weights, more than {MAX_PARAMETERS:.0e} (ViTPose-G has 1.0e9): not a ViTPose size"
            )

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update(
            model_type=self.model_type,
            image_size=list(self.image_size),
            patch_size=list(self.patch_size),
            num_channels=self.num_channels,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            mlp_ratio=self.mlp_ratio,
            num_experts=self.num_experts,
            part_features=self.part_features,
            hidden_act=self.hidden_act,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            drop_path_rate=self.drop_path_rate,
            initializer_range=self.initializer_range,
            layer_norm_eps=self.layer_norm_eps,
            qkv_bias=self.qkv_bias,
            out_indices=list(self.out_indices),
            out_features=self.out_features,
            stage_names=self.stage_names,
        )
        if self.knowledge_token:  # written only where there is one: other configs stay byte-identical
            out["knowledge_token"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VitPoseBackboneConfig:
        return cls(**_keywords(data, "backbone_config"))

    def __repr__(self) -> str:
        return f"VitPoseBackboneConfig({json.dumps(self.to_dict(), sort_keys=True)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VitPoseBackboneConfig) and self.to_dict() == other.to_dict()


class VitPoseConfig:
    """Configuration of a ViTPose / ViTPose++ model (transformers' `VitPoseConfig` keys plus ViTPose++ heads).

    Defaults describe ViTPose-B with the simple decoder for COCO-17, i.e. `usyd-community/vitpose-base-simple`.

    Args:
        backbone_config: a `VitPoseBackboneConfig` or its dict.
        num_labels: keypoints of the main head (`dataset_index` 0).
        use_simple_decoder: simple (ReLU, bilinear x`scale_factor`, 3x3 conv) or classic (two deconvolutions) head.
        edges: skeleton links of the main head, 0-based pairs (used for drawing).
        associate_num_labels: keypoint counts of the extra heads for `dataset_index` 1, 2, ... (ViTPose++, and the
            original's multi-data-set ViTPose such as COCO+AiC+MPII, whose backbone is dense).
        flip_pairs: left/right keypoint pairs of the main head, for the flip test (default: from the data set).
        dataset_info: the main head's custom data set (the JSON description of `vitpose.datasets.custom`: name,
            keypoints, skeleton, flip_pairs, sigmas, ...), written by training so that predict's OKS-NMS and eval
            use its OKS sigmas; None for the known data sets.
    """

    model_type = "vitpose"

    def __init__(
        self,
        backbone_config: VitPoseBackboneConfig | dict[str, Any] | None = None,
        num_labels: int | None = None,
        use_simple_decoder: bool = True,
        scale_factor: int = 4,
        initializer_range: float = 0.02,
        edges: Iterable[Sequence[int]] | None = None,
        id2label: dict[int | str, str] | None = None,
        label2id: dict[str, int] | None = None,  # derived from id2label; accepted for transformers' config files
        associate_num_labels: Sequence[int] | None = None,
        flip_pairs: Iterable[Sequence[int]] | None = None,
        dataset_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        m = MODEL_BOUNDS
        if backbone_config is None:
            backbone_config = VitPoseBackboneConfig()
        elif isinstance(backbone_config, dict):
            backbone_config = VitPoseBackboneConfig.from_dict(backbone_config)
        elif not isinstance(backbone_config, VitPoseBackboneConfig):
            # A transformers VitPoseBackboneConfig (or anything with to_dict) is accepted too.
            as_dict = backbone_config.to_dict() if callable(getattr(backbone_config, "to_dict", None)) else None
            if not isinstance(as_dict, dict):
                raise ConfigError(
                    f"config field 'backbone_config' must be an object (a VitPoseBackboneConfig or its dict), got "
                    f"{type(backbone_config).__name__} {backbone_config!r:.60}"
                )
            backbone_config = VitPoseBackboneConfig.from_dict(as_dict)
        self.backbone_config: VitPoseBackboneConfig = backbone_config
        if id2label is not None:
            id2label = _id2label(id2label)
        num_labels = checked("num_labels", num_labels, m["num_labels"])
        if num_labels is None:
            num_labels = checked("num_labels", len(id2label) if id2label else 17, m["num_labels"])
        self.num_labels = num_labels
        generic = id2label is not None and all(v == f"LABEL_{k}" for k, v in id2label.items())
        coco_names = get_dataset_info("coco").keypoint_names
        if id2label is not None and tuple(id2label.get(i) for i in range(len(id2label))) == _PORT_COCO_NAMES:
            id2label = dict(enumerate(coco_names))
        if id2label is None or len(id2label) != self.num_labels or (generic and self.num_labels == 17):
            # transformers' placeholder names (LABEL_0, ...) say nothing; a 17-keypoint head is COCO's.
            names = coco_names if self.num_labels == 17 else [f"LABEL_{i}" for i in range(self.num_labels)]
            id2label = dict(enumerate(names))
        self.id2label: dict[int, str] = id2label
        self.label2id: dict[str, int] = {v: k for k, v in id2label.items()}
        self.use_simple_decoder = checked("use_simple_decoder", use_simple_decoder, m["use_simple_decoder"])
        self.scale_factor = checked("scale_factor", scale_factor, m["scale_factor"])
        self.initializer_range = checked("initializer_range", initializer_range, m["initializer_range"])
        edges = checked("edges", edges, m["edges"])
        if edges is None and self.num_labels == 17:
            edges = [list(e) for e in get_dataset_info("coco").skeleton]
        self.edges: list[list[int]] | None = edges
        self.associate_num_labels: list[int] = (
            checked("associate_num_labels", associate_num_labels, m["associate_num_labels"]) or []
        )
        self.flip_pairs: list[list[int]] | None = checked("flip_pairs", flip_pairs, m["flip_pairs"])
        if dataset_info is not None and not isinstance(dataset_info, dict):
            raise ConfigError(
                f"config field 'dataset_info' must be an object (a data-set description) or null, got "
                f"{type(dataset_info).__name__} {dataset_info!r:.60}"
            )
        check_nesting(dataset_info, "config field 'dataset_info'")
        self.dataset_info: dict[str, Any] | None = copy.deepcopy(dict(dataset_info)) if dataset_info else None
        for key in ("model_type", "transformers_version"):
            kwargs.pop(key, None)
        check_nesting(kwargs, "the model config")
        self.extra: dict[str, Any] = kwargs
        self._validate()

    def _validate(self) -> None:
        """The checks across fields (each field's own type and range are checked on construction, `checked`)."""
        for name, pairs in (("edges", self.edges), ("flip_pairs", self.flip_pairs)):
            for pair in pairs or []:
                if len(pair) != 2 or not all(0 <= i < self.num_labels for i in pair):
                    raise ConfigError(
                        f"{name} entry {pair} is not a pair of keypoint indices in [0, {self.num_labels})"
                    )
        experts = self.backbone_config.num_experts
        if self.backbone_config.is_moe and len(self.associate_num_labels) >= experts:
            raise ConfigError(f"{len(self.associate_num_labels)} extra heads but only {experts} experts")
        width, height = self.heatmap_size
        values = max([self.num_labels, *self.associate_num_labels]) * width * height
        if values > MAX_HEATMAP_VALUES:
            raise ConfigError(
                f"the heatmaps of this config ({width}x{height} for up to "
                f"{max([self.num_labels, *self.associate_num_labels])} keypoints: {values:.3g} values per crop) are "
                f"larger than {MAX_HEATMAP_VALUES:.3g}: lower 'num_labels', 'scale_factor' or the input size"
            )
        names = (self.dataset_info or {}).get("keypoints", [])
        if self.dataset_info is not None and (not isinstance(names, list) or len(names) != self.num_labels):
            raise ConfigError(f"dataset_info must list the main head's {self.num_labels} keypoints, got {names!r:.80}")

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input (width, height) in pixels. `input_size` is (width, height) throughout the Python API (the
        processor, the codec, presets and training: `parse_input_size`); `backbone_config.image_size` is the same
        size as transformers defines it, (height, width)."""
        height, width = self.backbone_config.image_size
        return int(width), int(height)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """Heatmap (width, height), the one home of this fact: the patch grid upsampled 4x by the classic decoder's
        two deconvolutions, or `scale_factor` times by the simple decoder's bilinear upsampling (4 in every
        published checkpoint)."""
        factor = self.scale_factor if self.use_simple_decoder else 4
        return heatmap_size_for(self.input_size, self.backbone_config.patch_size, factor)

    @property
    def num_heads(self) -> int:
        """Keypoint heads: the main one plus the ViTPose++ extra heads."""
        return 1 + len(self.associate_num_labels)

    def num_keypoints_for(self, dataset_index: int) -> int:
        """Keypoints the model outputs for a sample of `dataset_index` (the main head where it has no own head)."""
        if self.has_own_head(dataset_index):
            return self.associate_num_labels[dataset_index - 1]
        return self.num_labels

    def has_own_head(self, dataset_index: int) -> bool:
        """Whether `dataset_index` has an extra head of its own (else the main head serves it)."""
        return 1 <= dataset_index <= len(self.associate_num_labels)

    @property
    def valid_dataset_indices(self) -> range:
        """The `dataset_index` values this model serves (the one home of the rule): ViTPose++ one per expert (index j
        runs expert j, and head j where the checkpoint has it, else the main head); a dense model one per keypoint
        head (the original's COCO+AiC+MPII); a plain ViTPose only 0."""
        bb = self.backbone_config
        return range(bb.num_experts if bb.is_moe else self.num_heads)

    @property
    def selects_dataset(self) -> bool:
        """Whether `dataset_index` chooses anything in this model (an expert or a head): ViTPose++ and the dense
        multi-head models; False for a single-data-set ViTPose, whose `dataset` only declares its keypoint layout."""
        return len(self.valid_dataset_indices) > 1

    def check_dataset_index(self, index: int | Iterable[int], dataset: Any = None) -> None:
        """Raise a `ConfigError` unless every value of `index` is in `valid_dataset_indices`.

        `dataset`: what the user passed (a name, an index), named in the message.
        """
        values = [int(index)] if not isinstance(index, Iterable) else sorted({int(v) for v in index})
        valid = self.valid_dataset_indices
        bad = [v for v in values if v not in valid]
        if not bad:
            return
        n = len(valid)
        if self.backbone_config.is_moe:
            what = f"a ViTPose++ model with {n} experts"
        else:
            what = f"a model with {n} keypoint head{'s' if n > 1 else ''}"
        subject = f"dataset {dataset!r} (index {bad[0]})" if dataset is not None else f"dataset_index values {bad}"
        hint = "; it is a single-data-set ViTPose: leave the dataset unset" if n == 1 else ""
        raise ConfigError(
            f"{subject} out of range: not served by this model ({what}), valid indices are 0..{n - 1}{hint}"
        )

    def flip_pairs_for(self, dataset_index: int = 0) -> list[list[int]]:
        """Left/right keypoint pairs of the head that serves `dataset_index`, for the flip test: `flip_pairs` for
        the main head where set, else those of the head's data set in the registry (the main head's is COCO,
        `dataset_index` 0), where its keypoint count is the head's."""
        own_head = self.has_own_head(dataset_index)
        if not own_head and self.flip_pairs is not None:
            return [list(p) for p in self.flip_pairs]
        num_keypoints = self.num_keypoints_for(dataset_index)
        try:
            info = get_dataset_info(dataset_index if own_head else 0)
        except ValueError:
            info = None
        if info is None or info.num_keypoints != num_keypoints:
            raise ConfigError(
                f"the flip test needs left/right keypoint pairs for this {num_keypoints}-keypoint head: "
                "pass flip_pairs=[[left, right], ...] or set config.flip_pairs"
            )
        return [list(p) for p in info.flip_pairs]

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update(
            model_type=self.model_type,
            architectures=out.get("architectures") or ["VitPoseForPoseEstimation"],
            backbone_config=self.backbone_config.to_dict(),
            num_labels=self.num_labels,
            id2label={str(k): v for k, v in self.id2label.items()},
            label2id=dict(self.label2id),
            use_simple_decoder=self.use_simple_decoder,
            scale_factor=self.scale_factor,
            initializer_range=self.initializer_range,
        )
        if self.edges is not None:
            out["edges"] = self.edges
        if self.associate_num_labels:
            out["associate_num_labels"] = self.associate_num_labels
        if self.flip_pairs is not None:
            out["flip_pairs"] = self.flip_pairs
        if self.dataset_info is not None:
            out["dataset_info"] = copy.deepcopy(self.dataset_info)
        # transformers derives num_labels from id2label and rejects the key on some versions.
        out.pop("num_labels")
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VitPoseConfig:
        """A config from its dict (`config.json`); any wrong value is a `ConfigError` naming the field."""
        data = _keywords(data, "model config")
        if data.get("model_type", "vitpose") != "vitpose":
            raise ConfigError(f"config has model_type {data.get('model_type')!r:.60}, expected 'vitpose'")
        return cls(**data)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str]) -> VitPoseConfig:
        """Read `config.json`; an unreadable file or any wrong value is a `ConfigError` naming the file."""
        expected = "the config.json of a ViTPose checkpoint"
        try:
            data = read_json(path, "model config", expected=expected, error=ConfigError)
        except ConfigError as err:
            raise ConfigError(f"cannot read model config: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"model config {path} is not a JSON object: pass {expected}")
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}; fix the file or download the checkpoint again") from None

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], **hub_kwargs: Any) -> VitPoseConfig:
        """Read `config.json` from a local directory or a hub id."""
        return cls.from_json_file(resolve_file(source, CONFIG_NAME, **hub_kwargs))

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> None:
        os.makedirs(save_directory, exist_ok=True)
        Path(save_directory, CONFIG_NAME).write_text(self.to_json_string())

    @classmethod
    def from_preset(
        cls,
        size: str,
        *,
        num_experts: int | None = None,
        use_simple_decoder: bool = True,
        num_labels: int = 17,
        **overrides: Any,
    ) -> VitPoseConfig:
        """A config for one of the presets (`vitpose.config.preset_config` with `training=False`): "small", "base",
        "large", "huge" (or s/b/l/h), "tiny"; simple decoder, no stochastic depth unless told. `num_experts`: 1
        (6 for a ViTPose++ name such as "base+").

        `overrides` go to the backbone config where they name one of its fields (e.g. `num_hidden_layers=2` for a
        shallow test model), otherwise to the model config (`input_size=(W, H)` and `drop_path_rate` too).
        """
        return preset_config(
            size,
            training=False,
            decoder="simple" if use_simple_decoder else "classic",
            num_labels=num_labels,
            num_experts=num_experts,
            **overrides,
        )

    def __repr__(self) -> str:
        return f"VitPoseConfig({self.to_json_string()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VitPoseConfig) and self.to_dict() == other.to_dict()
