"""The native network against transformers on identical random weights (heatmaps to 1e-4)."""

from __future__ import annotations

import warnings

import pytest
import torch

from conftest import COCO_FLIP_PAIRS, load_hf, make_hf_model, save_hf
from vitpose import VitPoseConfig, VitPoseForPoseEstimation

pytest.importorskip("transformers")

# (hidden size, heads): a narrow model and the real ViT-S width; depth reduced to keep the tests fast.
WIDTHS = [(96, 4), (384, 12)]


def _pair(tmp_path, **kwargs):
    hf = make_hf_model(**kwargs)
    save_hf(hf, tmp_path / "ckpt")
    ours = VitPoseForPoseEstimation.from_pretrained(tmp_path / "ckpt")
    return hf, ours


def _heatmaps(model, x, **kwargs):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model(x, **kwargs).heatmaps


@pytest.mark.parametrize("width,heads", WIDTHS)
@pytest.mark.parametrize("simple", [True, False], ids=["simple", "classic"])
@pytest.mark.parametrize("experts", [1, 6], ids=["dense", "moe"])
def test_heatmaps_match_transformers(tmp_path, width, heads, simple, experts):
    hf, ours = _pair(
        tmp_path, hidden_size=width, num_heads=heads, simple=simple, num_experts=experts, part_features=width // 4
    )
    x = torch.randn(5, 3, 256, 192)
    # A mixed batch: every sample may use a different expert.
    index = torch.tensor([0, 5, 2, 5, 1]) if experts > 1 else None
    expected = _heatmaps(hf, x, dataset_index=index)
    got = _heatmaps(ours, x, dataset_index=index)
    assert got.shape == expected.shape == (5, 17, 64, 48)
    assert torch.allclose(got, expected, atol=1e-4, rtol=0), (got - expected).abs().max()
    # The comparison has teeth: the heatmaps are far from zero and differ between samples.
    assert expected.abs().max() > 0.1
    assert (expected[0] - expected[1]).abs().max() > 1e-2


def test_moe_mixed_batch_equals_per_sample(tmp_path):
    _, ours = _pair(tmp_path, num_experts=6)
    x = torch.randn(4, 3, 256, 192)
    index = torch.tensor([3, 0, 3, 4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batched = _heatmaps(ours, x, dataset_index=index)
        single = torch.cat([_heatmaps(ours, x[i : i + 1], dataset_index=int(index[i])) for i in range(4)])
        assert torch.allclose(batched, single, atol=1e-5)
        # A different expert gives different heatmaps, so the index is really used.
        other = _heatmaps(ours, x[:1], dataset_index=1)
    assert (other - single[:1]).abs().max() > 1e-3


def test_dataset_index_forms(tmp_path):
    _, ours = _pair(tmp_path, num_experts=6)
    x = torch.randn(2, 3, 256, 192)
    ref = _heatmaps(ours, x, dataset_index=torch.tensor([2, 2]))
    for form in (2, "mpii", [2, 2], torch.tensor(2), torch.tensor([2]), torch.tensor([2.0, 2.0])):
        assert torch.equal(_heatmaps(ours, x, dataset_index=form), ref)
    # ... and index 2 is not what every form would give: other indices give other heatmaps.
    for other in (0, "coco", 3):
        assert (_heatmaps(ours, x, dataset_index=other) - ref).abs().max() > 1e-3


def test_layer_norm_eps_read_from_config(tmp_path):
    hf, ours = _pair(tmp_path, layer_norm_eps=1e-6)
    assert ours.backbone.blocks[0].norm1.eps == 1e-6 and ours.backbone.last_norm.eps == 1e-6
    x = torch.randn(2, 3, 256, 192) * 1e-3  # tiny activations make eps matter
    assert torch.allclose(_heatmaps(ours, x), _heatmaps(hf, x), atol=1e-4)


def test_out_indices_respected(tmp_path):
    # transformers feeds the head from the block named in out_indices (its default [4] is a known trap).
    hf, ours = _pair(tmp_path, num_layers=3, out_index=1)
    x = torch.randn(2, 3, 256, 192)
    assert torch.allclose(_heatmaps(ours, x), _heatmaps(hf, x), atol=1e-4)


def test_flip_pairs_argument_matches_transformers(tmp_path):
    hf, ours = _pair(tmp_path)
    x = torch.randn(2, 3, 256, 192)
    pairs = torch.tensor(COCO_FLIP_PAIRS)
    assert torch.allclose(_heatmaps(ours, x, flip_pairs=pairs), _heatmaps(hf, x, flip_pairs=pairs), atol=1e-4)


@pytest.mark.parametrize("experts", [1, 6])
def test_flip_test_is_the_average_with_the_flipped_back_mirror(tmp_path, experts):
    hf, ours = _pair(tmp_path, num_experts=experts)
    x = torch.randn(3, 3, 256, 192)
    index = torch.zeros(3, dtype=torch.long) if experts > 1 else None
    pairs = torch.tensor(COCO_FLIP_PAIRS)
    expected = (
        _heatmaps(hf, x, dataset_index=index) + _heatmaps(hf, x.flip(-1), dataset_index=index, flip_pairs=pairs)
    ) / 2
    got = _heatmaps(ours, x, dataset_index=index, flip_test=True)
    assert torch.allclose(got, expected, atol=1e-4)
    assert (got - _heatmaps(ours, x, dataset_index=index)).abs().max() > 1e-3


def test_hidden_states_match_transformers(tmp_path):
    hf, ours = _pair(tmp_path)
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        expected = hf(x, output_hidden_states=True).hidden_states
        got = ours(x, output_hidden_states=True).hidden_states
    assert len(got) == len(expected) == 3
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    assert ours(x).hidden_states is None


def test_output_object_access(tmp_path):
    _, ours = _pair(tmp_path)
    with torch.no_grad():
        out = ours(torch.randn(1, 3, 256, 192))
    assert out["heatmaps"] is out.heatmaps and out[0] is out.heatmaps and out.keys() == ["heatmaps"]


def test_empty_batch(tmp_path):
    _, ours = _pair(tmp_path)
    with torch.no_grad():
        assert ours(torch.zeros(0, 3, 256, 192)).heatmaps.shape == (0, 17, 64, 48)


@pytest.mark.parametrize("experts", [1, 6])
def test_save_pretrained_loads_in_transformers(tmp_path, experts):
    _, ours = _pair(tmp_path, num_experts=experts, simple=False)
    ours.save_pretrained(tmp_path / "saved")
    again = VitPoseForPoseEstimation.from_pretrained(tmp_path / "saved")
    hf = load_hf(tmp_path / "saved")
    x = torch.randn(2, 3, 256, 192)
    index = torch.tensor([0, 4]) if experts > 1 else None
    assert torch.allclose(_heatmaps(hf, x, dataset_index=index), _heatmaps(ours, x, dataset_index=index), atol=1e-4)
    assert torch.equal(_heatmaps(again, x, dataset_index=index), _heatmaps(ours, x, dataset_index=index))
    assert again.config == ours.config


def test_config_edges_and_labels(tmp_path):
    _, ours = _pair(tmp_path)
    assert [15, 13] in ours.config.edges and len(ours.config.edges) == 19
    default = VitPoseConfig()
    assert default.num_labels == 17 and default.backbone_config.out_indices == [12]


def test_presets_build_the_published_sizes():
    expected = {"small": 384, "base": 768, "large": 1024, "huge": 1280}
    for name, width in expected.items():
        cfg = VitPoseConfig.from_preset(name, num_hidden_layers=1)
        assert cfg.backbone_config.hidden_size == width
    model = VitPoseForPoseEstimation(VitPoseConfig.from_preset("s", num_experts=6, use_simple_decoder=False))
    block = model.backbone.blocks[0]
    assert len(model.backbone.blocks) == 12 and model.backbone.pos_embed.shape == (1, 193, 384)
    assert block.mlp.fc2.out_features == 384 - 96 and block.mlp.experts[0].out_features == 96
    assert block.norm1.eps == 1e-6
    with pytest.raises(ValueError, match="unknown size"):
        VitPoseConfig.from_preset("giant")


# ---------------------------------------------------------------------------------------------- bad input
def test_moe_without_dataset_index_is_a_clear_error(tmp_path):
    _, ours = _pair(tmp_path, num_experts=6)
    with pytest.raises(ValueError, match=r"pass dataset_index.*0 COCO"):
        ours(torch.randn(1, 3, 256, 192))


@pytest.mark.parametrize("index", [6, -1, [0, 9]])
def test_dataset_index_out_of_range(tmp_path, index):
    _, ours = _pair(tmp_path, num_experts=6)
    with pytest.raises(ValueError, match=r"out of range.*0\.\.5"):
        ours(torch.randn(2, 3, 256, 192), dataset_index=index)


def test_dataset_index_wrong_shape_and_name(tmp_path):
    _, ours = _pair(tmp_path, num_experts=6)
    with pytest.raises(ValueError, match=r"shape \(batch_size,\) = \(2,\)"):
        ours(torch.randn(2, 3, 256, 192), dataset_index=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="coco"):
        ours(torch.randn(2, 3, 256, 192), dataset_index="human36m")


@pytest.mark.parametrize(
    "shape,match",
    [((3, 256, 192), "shape"), ((1, 3, 128, 96), r"\(batch, 3, 256, 192\)"), ((1, 1, 256, 192), "shape")],
)
def test_wrong_pixel_values_shape(tmp_path, shape, match):
    _, ours = _pair(tmp_path)
    with pytest.raises(ValueError, match=match):
        ours(torch.randn(*shape))


def test_pixel_values_type_errors(tmp_path):
    _, ours = _pair(tmp_path)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        ours([[0.0]])
    with pytest.raises(TypeError, match="floating-point"):
        ours(torch.zeros(1, 3, 256, 192, dtype=torch.uint8))


def test_missing_head_warns(tmp_path):
    # transformers' converted ViTPose++ checkpoints keep only the COCO head: say so instead of silently mixing.
    _, ours = _pair(tmp_path, num_experts=6)
    with pytest.warns(UserWarning, match="no keypoint head for dataset_index 5"):
        ours(torch.randn(1, 3, 256, 192), dataset_index=5)
