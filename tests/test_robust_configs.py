"""Hostile and corrupt model configs and checkpoint files: one clear `ConfigError` / `CheckpointError`, never a
traceback of another type from deep inside (issue 13, class 4).

The property tests (marker `fuzz`) draw JSON-like values for every config field; the profile in conftest.py keeps
them short and derandomised, VITPOSE_FUZZ_EXAMPLES=N searches longer.
"""

from __future__ import annotations

import inspect
import json
import pickle
import struct

import pytest
import torch

from vitpose import VitPoseForPoseEstimation
from vitpose.checkpoints import load_checkpoint, read_state_dict
from vitpose.config import BACKBONE_BOUNDS, MODEL_BOUNDS, VitPoseBackboneConfig, VitPoseConfig
from vitpose.errors import CheckpointError, ConfigError

TINY = VitPoseConfig.from_preset("tiny", num_hidden_layers=1).to_dict()


def _with(backbone: dict | None = None, **model) -> dict:
    data = json.loads(json.dumps(TINY))
    data["backbone_config"].update(backbone or {})
    data.pop("backbone_config") if backbone is False else None
    data.update(model)
    return data


# ---------------------------------------------------------------------------------------------------- named cases
@pytest.mark.parametrize(
    ("backbone", "model", "field"),
    [
        ({"num_attention_heads": 0}, {}, "num_attention_heads"),
        ({"num_attention_heads": -4}, {}, "num_attention_heads"),
        ({"num_attention_heads": 5}, {}, "hidden_size"),  # 96 is not a multiple of 5
        ({"patch_size": 0}, {}, "patch_size"),
        ({"patch_size": [16, 0]}, {}, "patch_size"),
        ({"patch_size": "16"}, {}, "patch_size"),
        ({"hidden_size": "96"}, {}, "hidden_size"),
        ({"hidden_size": None}, {}, "hidden_size"),
        ({"hidden_size": True}, {}, "hidden_size"),
        ({"hidden_size": 96.5}, {}, "hidden_size"),
        ({"hidden_size": [96]}, {}, "hidden_size"),
        ({"num_hidden_layers": 10**6}, {}, "num_hidden_layers"),
        ({"num_hidden_layers": 0}, {}, "num_hidden_layers"),
        ({"hidden_size": 10**6}, {}, "hidden_size"),
        ({"image_size": 10**6}, {}, "image_size"),
        ({"image_size": [256, 192, 3]}, {}, "image_size"),
        ({"image_size": {"height": 256}}, {}, "image_size"),
        ({"image_size": [1024, 2048]}, {}, "tokens"),
        ({"num_experts": 10**6}, {}, "num_experts"),
        ({"num_experts": 6, "part_features": 0}, {}, "part_features"),
        ({"mlp_ratio": 0}, {}, "mlp_ratio"),
        ({"mlp_ratio": float("nan")}, {}, "mlp_ratio"),
        ({"layer_norm_eps": 0}, {}, "layer_norm_eps"),
        ({"drop_path_rate": 2}, {}, "drop_path_rate"),
        ({"hidden_act": "relu"}, {}, "hidden_act"),
        ({"hidden_act": ["gelu"]}, {}, "hidden_act"),
        ({"qkv_bias": "yes"}, {}, "qkv_bias"),
        ({"out_indices": [7]}, {}, "out_indices"),
        ({"out_indices": []}, {}, "out_indices"),
        ({"out_indices": {"a": 1}}, {}, "out_indices"),
        ({"out_indices": None, "out_features": ["stage9"]}, {}, "out_features"),
        ({"hidden_size": 2048, "num_hidden_layers": 64, "num_attention_heads": 16, "mlp_ratio": 16}, {}, "weights"),
        ({}, {"num_labels": 0}, "num_labels"),
        ({}, {"num_labels": 10**6}, "num_labels"),
        ({}, {"num_labels": "17"}, "num_labels"),
        ({}, {"scale_factor": 0}, "scale_factor"),
        ({}, {"use_simple_decoder": "no"}, "use_simple_decoder"),
        ({}, {"backbone_config": [1, 2]}, "backbone_config"),
        ({}, {"backbone_config": "base"}, "backbone_config"),
        ({}, {"edges": {"0": 1}}, "edges"),
        ({}, {"edges": [[0, 1, 2]]}, "edges"),
        ({}, {"edges": [[0, 99]]}, "edges"),
        ({}, {"flip_pairs": [0, 1]}, "flip_pairs"),
        ({}, {"id2label": ["nose"]}, "id2label"),
        ({}, {"id2label": {"x": "nose"}}, "id2label"),
        ({}, {"associate_num_labels": [0]}, "associate_num_labels"),
        ({}, {"associate_num_labels": {"a": 1}}, "associate_num_labels"),
        ({}, {"associate_num_labels": [10**6]}, "associate_num_labels"),
        ({}, {"dataset_info": [1]}, "dataset_info"),
        ({"image_size": [1024, 1024], "patch_size": 16}, {"num_labels": 1024, "scale_factor": 16}, "heatmaps"),
    ],
)
def test_a_bad_value_is_one_config_error_naming_the_field(backbone, model, field):
    with pytest.raises(ConfigError, match=field):
        VitPoseConfig.from_dict(_with(backbone, **model))


def test_the_message_names_the_field_the_value_and_the_range():
    with pytest.raises(ConfigError) as info:
        VitPoseConfig.from_dict(_with({"num_hidden_layers": 10**6}))
    assert str(info.value) == ("config field 'num_hidden_layers' must be an integer in [1, 64], got 1000000")


def test_the_file_is_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_with({"patch_size": 0})))
    with pytest.raises(ConfigError, match=f"{path}: config field 'patch_size'"):
        VitPoseConfig.from_json_file(path)


@pytest.mark.parametrize("depth", [40, 5000, 100_000])
def test_deeply_nested_json_is_a_config_error(tmp_path, depth):
    path = tmp_path / "config.json"
    nested = "[" * depth + "]" * depth
    path.write_text(json.dumps(_with()).replace('"scale_factor"', f'"deep": {nested}, "scale_factor"'))
    with pytest.raises(ConfigError, match="nest"):
        VitPoseConfig.from_json_file(path)


@pytest.mark.parametrize("text", ["[1, 2]", "null", '"x"', "{not json", "", "\xff\xfe"])
def test_a_config_file_that_is_no_json_object(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match="config"):
        VitPoseConfig.from_json_file(path)


def test_keys_that_are_no_keywords():
    with pytest.raises(ConfigError, match="'self'"):
        VitPoseConfig.from_dict({**_with(), "self": 1})
    with pytest.raises(ConfigError, match="'self'"):
        VitPoseBackboneConfig.from_dict({"self": 1})


def test_every_published_size_is_within_the_bounds():
    for name in ("small", "base", "large", "huge", "base+", "huge+"):
        VitPoseConfig.from_preset(name)
    # ViTPose-G (ViT-g: 1408 wide, 40 blocks) at its 576x432 input, COCO-WholeBody's 133 keypoints
    VitPoseConfig.from_preset(
        "huge", hidden_size=1408, num_hidden_layers=40, num_attention_heads=16, input_size=(432, 576), num_labels=133
    )
    VitPoseConfig.from_preset("base", input_size=(1024, 1024), num_labels=133)


def test_valid_configs_round_trip_unchanged():
    for name in ("tiny", "base", "huge+"):
        config = VitPoseConfig.from_preset(name)
        assert VitPoseConfig.from_dict(json.loads(config.to_json_string())) == config
    assert VitPoseBackboneConfig(mlp_ratio=4).to_dict()["mlp_ratio"] == 4  # an int stays an int in config.json
    assert VitPoseBackboneConfig(hidden_size=768.0).hidden_size == 768  # integral floats are read as ints


def test_the_bounds_are_one_table_of_the_constructors_fields():
    assert set(BACKBONE_BOUNDS) <= set(inspect.signature(VitPoseBackboneConfig).parameters)
    assert set(MODEL_BOUNDS) <= set(inspect.signature(VitPoseConfig).parameters)


# --------------------------------------------------------------------------------------------- property-based
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
NEAR = st.one_of(st.integers(-3, 70), st.sampled_from([0, 1, 2, 4, 16, 96, 192, 256, 10**6]), JSONISH)
BACKBONE_FIELDS = [*BACKBONE_BOUNDS, "out_features", "stage_names", "model_type"]
MODEL_FIELDS = [*MODEL_BOUNDS, "id2label", "label2id", "dataset_info", "model_type", "backbone_config"]


def _builds_or_config_error(data):
    try:
        config = VitPoseConfig.from_dict(data)
    except ConfigError:
        return
    json.loads(config.to_json_string())  # what was accepted can be written back


@pytest.mark.fuzz
@given(st.dictionaries(st.sampled_from(BACKBONE_FIELDS), NEAR, max_size=5))
def test_any_backbone_values_build_or_raise_config_error(values):
    _builds_or_config_error(_with(values))


@pytest.mark.fuzz
@given(st.dictionaries(st.sampled_from(MODEL_FIELDS), NEAR, max_size=4))
def test_any_model_values_build_or_raise_config_error(values):
    _builds_or_config_error(_with(**values))


@pytest.mark.fuzz
@given(JSONISH)
def test_any_json_document_builds_or_raises_config_error(document):
    _builds_or_config_error(document)


# ------------------------------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny")
    model = VitPoseForPoseEstimation(VitPoseConfig.from_preset("tiny", num_hidden_layers=1))
    model.save_pretrained(directory)
    original = directory / "original.pth"
    torch.save({"state_dict": model.state_dict()}, original)
    return directory, original


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_payload_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": _Payload()}))
    with pytest.raises(CheckpointError, match=r"evil\.pth"):
        load_checkpoint(path)
    torch.save({"x": _Payload()}, tmp_path / "evil2.pth")
    with pytest.raises(CheckpointError, match="unsafe"):
        load_checkpoint(tmp_path / "evil2.pth")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "state",
    [
        {1: torch.zeros(2)},  # keys that are not names
        {"backbone.patch_embed.proj.weight": torch.zeros(3)},  # the wrong rank
        {"backbone.patch_embed.proj.weight": torch.zeros(96, 3, 16, 16)},  # most keys missing
        [torch.zeros(2)],
        {"state_dict": {"a": 1}},
    ],
)
def test_wrong_structures_are_checkpoint_errors(tmp_path, state):
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError):
        VitPoseForPoseEstimation.from_pretrained(path)


def test_tensors_of_wrong_shapes_or_dtypes(tiny_checkpoint, tmp_path):
    directory, original = tiny_checkpoint
    config = VitPoseConfig.from_json_file(directory / "config.json")
    state = torch.load(original, weights_only=True)["state_dict"]
    bad = dict(state)
    bad["keypoint_head.final_layer.weight"] = torch.zeros(2, 2)
    torch.save(bad, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="shape"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "shape.pth", config=config)
    bad = dict(state)
    bad["backbone.last_norm.weight"] = bad["backbone.last_norm.weight"].long()
    torch.save(bad, tmp_path / "dtype.pth")
    with pytest.raises(CheckpointError, match="dtype"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "dtype.pth", config=config)


def test_shapes_that_describe_an_absurd_model(tmp_path):
    """An original checkpoint's config is read off its shapes: a block index of a million is refused by the
    config's bounds (nothing is allocated for it)."""
    state = {
        "backbone.patch_embed.proj.weight": torch.zeros(384, 3, 16, 16),
        "backbone.pos_embed": torch.zeros(1, 193, 384),
        "backbone.blocks.0.mlp.fc1.weight": torch.zeros(1536, 384),
        "backbone.blocks.999999.norm1.weight": torch.zeros(384),
        "keypoint_head.final_layer.weight": torch.zeros(17, 384, 3, 3),
    }
    torch.save(state, tmp_path / "deep.pth")
    with pytest.raises(CheckpointError, match="num_hidden_layers"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "deep.pth")
    state["backbone.patch_embed.proj.weight"] = torch.zeros(384, 3)  # the wrong rank
    torch.save(state, tmp_path / "rank.pth")
    with pytest.raises(CheckpointError, match="shapes"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "rank.pth")


def _load_any(path):
    try:
        VitPoseForPoseEstimation.from_pretrained(path)
    except (CheckpointError, ConfigError):
        pass


@pytest.mark.fuzz
@given(st.data())
def test_random_and_truncated_checkpoint_files(tiny_checkpoint, tmp_path_factory, data):
    directory, original = tiny_checkpoint
    work = tmp_path_factory.mktemp("fuzz")
    (work / "config.json").write_text((directory / "config.json").read_text())
    real = {"safetensors": (directory / "model.safetensors").read_bytes(), "pth": original.read_bytes()}
    kind = data.draw(st.sampled_from(["safetensors", "pth"]))
    how = data.draw(st.sampled_from(["random", "truncated", "flipped", "header"]))
    blob = real[kind]
    if how == "random":
        blob = data.draw(st.binary(max_size=2048))
    elif how == "truncated":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif how == "flipped":
        at = data.draw(st.integers(0, min(len(blob) - 1, 4096)))
        blob = blob[:at] + bytes([blob[at] ^ data.draw(st.integers(1, 255))]) + blob[at + 1 :]
    else:  # a safetensors header that claims a huge size
        blob = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1))) + blob[8:]
    if kind == "safetensors":
        (work / "model.safetensors").write_bytes(blob)
        _load_any(work)
    else:
        (work / "m.pth").write_bytes(blob)
        _load_any(work / "m.pth")
        try:
            read_state_dict(work / "m.pth")
        except CheckpointError:
            pass
