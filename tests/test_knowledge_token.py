"""The knowledge token of the ViTPose paper's transferability experiment (`config.knowledge_token`): one learnable
token prepended after the position embedding, seen by every attention layer, dropped before the feature map. The
heads and the output shape are unchanged; checkpoints save and load it (hub format, original layout, conversion,
ONNX); transformers, which has no token, drops it."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vitpose import VitPoseConfig, VitPoseForPoseEstimation
from vitpose.checkpoints import KNOWLEDGE_TOKEN_KEY, infer_config


def _model(token: bool = True, experts: int | None = None, seed: int = 0) -> VitPoseForPoseEstimation:
    torch.manual_seed(seed)
    config = VitPoseConfig.from_preset("small", num_hidden_layers=2, knowledge_token=token, num_experts=experts)
    return VitPoseForPoseEstimation(config).eval()


@pytest.fixture(scope="module")
def pixels():
    torch.manual_seed(1)
    return torch.randn(2, 3, 256, 192)


def test_the_token_is_a_parameter_seen_by_attention_and_not_by_the_heads(pixels):
    model = _model()
    token = model.backbone.knowledge_token
    assert token.shape == (1, 1, 384) and token.requires_grad and float(token.detach().abs().sum()) > 0  # initialised
    hidden: list[torch.Tensor] = []
    with torch.no_grad():
        features = model.backbone(pixels, hidden_states=hidden)
        heatmaps = model(pixels).heatmaps
    assert features.shape == (2, 384, 16, 12) and heatmaps.shape == (2, 17, 64, 48)
    assert all(h.shape == (2, 1 + 16 * 12, 384) for h in hidden)  # the token beside the 192 patch tokens
    with torch.no_grad():  # another direction (a constant shift or a scaling would vanish in the LayerNorms)
        model.backbone.knowledge_token.add_(torch.randn_like(model.backbone.knowledge_token))
        moved = model(pixels).heatmaps
    assert float((moved - heatmaps).abs().max()) > 1e-3  # every patch token attends to it


def test_without_the_option_there_is_no_token_and_the_config_is_unchanged(tmp_path):
    model = _model(token=False)
    assert model.backbone.knowledge_token is None
    assert not any("knowledge" in k for k in model.state_dict())
    model.save_pretrained(tmp_path)
    assert "knowledge_token" not in json.loads((tmp_path / "config.json").read_text())["backbone_config"]


def test_save_and_load_keep_the_token_in_the_hub_format_and_in_the_original_layout(tmp_path, pixels):
    model = _model()
    with torch.no_grad():
        want = model(pixels).heatmaps
    model.save_pretrained(tmp_path / "hub")
    assert json.loads((tmp_path / "hub" / "config.json").read_text())["backbone_config"]["knowledge_token"] is True
    saved = load_file(tmp_path / "hub" / "model.safetensors")
    assert saved[KNOWLEDGE_TOKEN_KEY].shape == (1, 1, 384)
    loaded = VitPoseForPoseEstimation.from_pretrained(tmp_path / "hub")
    assert loaded.config.backbone_config.knowledge_token is True
    torch.testing.assert_close(loaded.backbone.knowledge_token, model.backbone.knowledge_token, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels).heatmaps, want, rtol=0, atol=0)
    # The original layout (a .pth of vitpose keys): the token is found by its key, the config inferred with it.
    state = model.state_dict()
    assert infer_config(state).backbone_config.knowledge_token is True
    torch.save({"state_dict": state}, tmp_path / "original.pth")
    from_pth = VitPoseForPoseEstimation.from_pretrained(tmp_path / "original.pth")
    with torch.no_grad():
        torch.testing.assert_close(from_pth(pixels).heatmaps, want, rtol=0, atol=1e-6)


def test_convert_keeps_the_token(tmp_path, pixels):
    from vitpose.cli import main as cli_main

    model = _model()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "original.pth")
    assert cli_main(["convert", str(tmp_path / "original.pth"), str(tmp_path / "hub")]) == 0
    converted = VitPoseForPoseEstimation.from_pretrained(tmp_path / "hub")
    with torch.no_grad():
        torch.testing.assert_close(converted(pixels).heatmaps, model(pixels).heatmaps, rtol=0, atol=1e-6)


def test_folding_experts_keeps_the_token(pixels):
    model = _model(experts=6)
    index = torch.full((2,), 3)
    with torch.no_grad():
        want = model(pixels, dataset_index=index).heatmaps
        folded = model.fold_experts(3)
        assert folded.backbone.knowledge_token is not None
        torch.testing.assert_close(folded(pixels).heatmaps[:, : want.shape[1]], want, rtol=0, atol=1e-5)


def test_transformers_drops_the_token_with_a_warning(tmp_path, pixels):
    """transformers' ViTPose has no knowledge token: it loads such a checkpoint without it (the weight reported as
    unused), so its outputs are those of the same model with the token taken out, not of the model itself."""
    from transformers import VitPoseForPoseEstimation as HFVitPose

    model = _model()
    model.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = HFVitPose.from_pretrained(tmp_path).eval()
    without = _model(token=False)
    state = {k: v for k, v in model.state_dict().items() if k != "backbone.knowledge_token"}
    without.load_state_dict(state, strict=True)
    with torch.no_grad():
        theirs = hf(pixel_values=pixels).heatmaps
        torch.testing.assert_close(theirs, without(pixels).heatmaps, rtol=0, atol=1e-4)
        assert float((theirs - model(pixels).heatmaps).abs().max()) > 1e-4


def test_onnx_export_carries_the_token(tmp_path, pixels):
    pytest.importorskip("onnxruntime")
    from vitpose.export import export_onnx
    from vitpose.inference.backends.onnx import OnnxPoseModel

    model = _model()
    with torch.no_grad():
        model.backbone.knowledge_token.normal_(0, 1)  # a token that matters
        want = model(pixels).heatmaps
    export_onnx(model, tmp_path / "model.onnx")
    onnx_model = OnnxPoseModel(tmp_path / "model.onnx", config=model.config)
    got = onnx_model(pixels).heatmaps
    np.testing.assert_allclose(np.asarray(got), want.numpy(), atol=1e-4, rtol=0)


def test_the_config_field_is_checked_and_counted():
    from vitpose.config import VitPoseBackboneConfig
    from vitpose.errors import ConfigError

    with pytest.raises(ConfigError, match="knowledge_token"):
        VitPoseBackboneConfig(knowledge_token="yes")
    for token in (False, True):
        model = _model(token=token)
        counted = sum(p.numel() for p in model.backbone.parameters())
        assert model.config.backbone_config.num_parameters == counted
