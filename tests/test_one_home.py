"""Facts with one home (issue 12): heatmap size, valid dataset indices, the flip test and its pairs, the preset
registry, the (width, height) order of `input_size`, the thread pools and the trainer's device. Each test fails on
the code before the restructure."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from vitpose import VitPoseConfig, VitPoseForPoseEstimation
from vitpose.config import MODEL_SIZES, heatmap_size_for, preset_config
from vitpose.errors import ConfigError
from vitpose.ops.codec import flip_back, merge_flip_test


def _tiny(**overrides) -> VitPoseForPoseEstimation:
    torch.manual_seed(0)
    config = VitPoseConfig.from_preset("tiny", num_hidden_layers=1, input_size=(48, 64), **overrides)
    return VitPoseForPoseEstimation(config).eval()


# ------------------------------------------------------------------------------------------ 1. heatmap size
@pytest.mark.parametrize("factor", [2, 4])
def test_scale_factor_sets_the_mixed_head_buffer_and_the_empty_batch(factor):
    """Bug 4: a simple decoder with scale_factor 2 (grid 4x3 -> heatmaps 8x6) in a batch mixing a 17- and a
    14-keypoint head, and an empty batch: the padded buffer and the empty shape are the heads' size."""
    model = _tiny(scale_factor=factor, associate_num_labels=[14])
    rows, cols = model.config.backbone_config.grid_size
    assert model.config.heatmap_size == (cols * factor, rows * factor) == heatmap_size_for((48, 64), 16, factor)
    x = torch.randn(3, 3, 64, 48)
    index = torch.tensor([0, 1, 0])
    with torch.no_grad():
        mixed = model(x, dataset_index=index)
        alone = [model(x[i : i + 1], dataset_index=int(index[i])).heatmaps for i in range(3)]
        empty = model(x[:0], dataset_index=1).heatmaps
    assert mixed.heatmaps.shape == (3, 17, rows * factor, cols * factor)
    assert mixed.num_keypoints.tolist() == [17, 14, 17]
    for i, k in enumerate([17, 14, 17]):
        torch.testing.assert_close(mixed.heatmaps[i : i + 1, :k], alone[i], rtol=0, atol=1e-6)
        assert not mixed.heatmaps[i, k:].any()
    assert empty.shape == (0, 14, rows * factor, cols * factor)
    # Every consumer takes the config's size: the estimator's decoder too.
    from vitpose.inference.estimator import PoseEstimator

    assert PoseEstimator(model).codec.heatmap_size == model.config.heatmap_size


def test_classic_decoder_is_always_4x():
    config = VitPoseConfig.from_preset("tiny", use_simple_decoder=False, scale_factor=2)
    assert config.heatmap_size == (48, 64)
    assert heatmap_size_for("256x192") == (48, 64) and heatmap_size_for((288, 384)) == (72, 96)


# ------------------------------------------------------------------------------- 2. valid dataset indices
def test_valid_dataset_indices_one_rule_one_message(tmp_path):
    dense = VitPoseConfig.from_preset("tiny")
    multi = VitPoseConfig.from_preset("tiny", associate_num_labels=[14, 16])
    plus = VitPoseConfig.from_preset("tiny+")
    assert dense.valid_dataset_indices == range(1)
    assert multi.valid_dataset_indices == range(3)
    assert plus.valid_dataset_indices == range(6) and len(plus.associate_num_labels) == 5
    plus.check_dataset_index([0, 5, 3])
    with pytest.raises(ConfigError, match=r"dataset 'x' \(index 6\) out of range: not served by this model "
                       r"\(a ViTPose\+\+ model with 6 experts\), valid indices are 0\.\.5$"):  # fmt: skip
        plus.check_dataset_index(6, dataset="x")
    with pytest.raises(ConfigError, match="single-data-set ViTPose: leave the dataset unset"):
        dense.check_dataset_index(1)

    # The model, the exporter, the estimator and fold_experts all say the same thing for the same index.
    model = VitPoseForPoseEstimation(multi).eval()
    messages = []
    from vitpose.export import export_onnx
    from vitpose.inference.estimator import PoseEstimator

    for call in (
        lambda: model(torch.zeros(1, 3, 256, 192), dataset_index=3),
        lambda: export_onnx(model, tmp_path / "m.onnx", dataset=3, check=False),
        lambda: PoseEstimator(model, dataset=3),
    ):
        with pytest.raises(ConfigError) as err:
            call()
        messages.append(str(err.value).split(" out of range")[1])
    assert len(set(messages)) == 1 and "valid indices are 0..2" in messages[0]
    moe = VitPoseForPoseEstimation(VitPoseConfig.from_preset("tiny+", num_hidden_layers=1)).eval()
    with pytest.raises(ConfigError, match=r"out of range: not served by this model.*0\.\.5"):
        moe.fold_experts(6)


# ------------------------------------------------------------------------------------- 3. the flip test
def test_flip_test_is_one_function_shared_by_the_back_ends():
    heat = torch.randn(4, 17, 8, 6)
    pairs = [[1, 2], [3, 4]]
    torch.testing.assert_close(merge_flip_test(heat, pairs), (heat[:2] + flip_back(heat[2:], pairs)) * 0.5)
    assert torch.equal(merge_flip_test(heat, pairs, flip_test=False), flip_back(heat, pairs))
    assert merge_flip_test(heat, None, flip_test=False) is heat
    import vitpose.inference.backends.onnx as onnx_backend
    import vitpose.models.pose as pose

    assert pose.merge_flip_test is onnx_backend.merge_flip_test is merge_flip_test
    assert not hasattr(onnx_backend, "flip_back")


def test_flip_pairs_default_from_the_head_served():
    multi = VitPoseConfig.from_preset("tiny", associate_num_labels=[14, 16])
    from vitpose.datasets import get_dataset_info

    assert multi.flip_pairs_for(0) == [list(p) for p in get_dataset_info("coco").flip_pairs]
    assert multi.flip_pairs_for(1) == [list(p) for p in get_dataset_info("aic").flip_pairs]
    assert multi.flip_pairs_for(2) == [list(p) for p in get_dataset_info("mpii").flip_pairs]
    custom = VitPoseConfig.from_preset("tiny", num_labels=5)
    with pytest.raises(ConfigError, match="left/right keypoint pairs for this 5-keypoint head"):
        custom.flip_pairs_for(0)
    model = VitPoseForPoseEstimation(multi)
    assert model.flip_pairs_for(1).tolist() == multi.flip_pairs_for(1)


def test_onnx_flip_test_of_a_dense_multi_head_export_uses_its_heads_pairs(tmp_path):
    """A COCO+AiC+MPII model exported for AiC: the ONNX flip test used COCO's pairs on 14 channels."""
    pytest.importorskip("onnxruntime")
    from vitpose.export import export_onnx
    from vitpose.inference.backends.onnx import OnnxPoseModel

    model = _tiny(associate_num_labels=[14, 16])
    path = export_onnx(model, tmp_path / "aic.onnx", dataset="aic", check=False).path
    onnx_model = OnnxPoseModel(path)
    assert onnx_model.default_flip_pairs() == model.config.flip_pairs_for(1)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        expected = model(x, dataset_index=1, flip_test=True).heatmaps
    got = onnx_model(x, dataset_index=1, flip_test=True).heatmaps
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    assert onnx_model(x[:0]).heatmaps.shape == (0, 14, 16, 12)


# ------------------------------------------------------------------------------------- 4. one preset registry
def test_one_preset_registry_two_documented_defaults():
    from vitpose import training
    from vitpose.training import model_setup

    assert list(MODEL_SIZES) == ["tiny", "small", "base", "large", "huge"]
    assert [MODEL_SIZES[k].drop_path_rate for k in MODEL_SIZES] == [0.0, 0.1, 0.3, 0.5, 0.55]
    assert not hasattr(model_setup, "TINY")  # the second registry is gone
    # VitPoseConfig.from_preset: the hub's base-simple layout, no stochastic depth (an inference config).
    inference = VitPoseConfig.from_preset("base")
    assert inference == preset_config("base") == preset_config("base", training=False)
    assert inference.use_simple_decoder and inference.backbone_config.drop_path_rate == 0.0
    # vitpose.training.preset_config: the original training recipe (classic decoder, per-size drop path).
    trained = training.preset_config("base+")
    assert trained == preset_config("base+", training=True)
    assert not trained.use_simple_decoder and trained.backbone_config.drop_path_rate == 0.3
    assert trained.backbone_config.num_experts == 6 and trained.associate_num_labels == [14, 16, 17, 17, 133]
    # Both read the same registry: tiny and ViTPose++ names work in from_preset as well.
    assert VitPoseConfig.from_preset("tiny").backbone_config.hidden_size == 96
    assert VitPoseConfig.from_preset("b+").backbone_config.num_experts == 6
    assert VitPoseConfig.from_preset("s", num_experts=6).associate_num_labels == []
    with pytest.raises(ConfigError, match="unknown size 'giant'"):
        training.preset_config("giant")


# ----------------------------------------------------------------------------- 5. input_size is (width, height)
def test_input_size_is_width_height_across_the_api(tmp_path):
    from vitpose.datasets import get_dataset_info
    from vitpose.models.surgery import resize_input
    from vitpose.training import TrainConfig, build_training_model

    config = preset_config("tiny", input_size=(48, 64))
    assert config.input_size == (48, 64) and config.backbone_config.image_size == [64, 48]
    assert preset_config("tiny", input_size="64x48") == config  # the command line's HEIGHTxWIDTH text
    model, changes = build_training_model("tiny", [get_dataset_info("coco")], input_size=(96, 128))
    assert model.config.input_size == (96, 128) and model.backbone.pos_embed.shape[1] == 1 + 8 * 6
    model, changes = build_training_model(model, [get_dataset_info("coco")], input_size=(48, 64))
    assert model.config.input_size == (48, 64) and changes[0].startswith("input 128x96 -> 64x48")
    resize_input(model, (192, 256))
    assert model.config.backbone_config.image_size == [256, 192]

    base = {"model": "tiny", "train_annotations": "a.json", "train_images": ".", "out": str(tmp_path)}
    assert TrainConfig(**base, input_size=(48, 64)).input_size == [48, 64]
    assert TrainConfig(**base, input_size="64x48").input_size == [48, 64]
    saved = TrainConfig(**base, input_size=(48, 64)).to_dict()
    assert saved["input_size"] == "64x48" and TrainConfig.from_dict(saved).input_size == [48, 64]
    # A train_config.json written before the change holds [height, width]: read as such, with a warning.
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**base, "input_size": [64, 48]}))
    with pytest.warns(FutureWarning, match=r"read as \[height, width\]"):
        assert TrainConfig.from_json_file(old).input_size == [48, 64]


# ------------------------------------------------------------------------------------- 9. one home of the pools
def test_the_crop_pool_lives_in_parallel():
    import vitpose.parallel as parallel
    import vitpose.processor as processor

    assert not hasattr(processor, "_POOL") and not hasattr(processor, "_thread_pool")
    pool = parallel.crop_pool(1)
    assert parallel.crop_pool(1) is pool and parallel._POOLS["crop"][2] is pool
    image = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        one = processor.VitPoseImageProcessor()(image, boxes=[[[5, 5, 40, 80]] * 4]).pixel_values
        torch.set_num_threads(1)
        serial = processor.VitPoseImageProcessor()(image, boxes=[[[5, 5, 40, 80]] * 4]).pixel_values
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, serial)


# ---------------------------------------------------------------------------------- 10. the trainer's device
def test_trainer_device_comes_from_vitpose_device(monkeypatch):
    from vitpose.training import distributed

    seen = []

    def fake(spec, device_map=None):
        seen.append(spec)
        return torch.device("cpu")

    monkeypatch.setattr(distributed, "resolve_device", fake)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert distributed.pick_device("auto", 0, 1) == torch.device("cpu")
        assert distributed.pick_device("cpu", 1, 2) == torch.device("cpu")
    assert seen == ["auto", "cpu"]


def test_landscape_input_size_warns_once_about_the_new_order():
    """input_size became (width, height) in training too: an old (height, width) call such as (256, 192) is read as
    a landscape input, which warns (once, through build_training_model), saying what to pass instead."""
    from vitpose.config import parse_input_size
    from vitpose.datasets import get_dataset_info
    from vitpose.training import build_training_model

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # portrait pairs and text are silent
        assert parse_input_size((192, 256)) == (192, 256)
        assert parse_input_size("256x192") == (192, 256)
    with pytest.warns(UserWarning, match=r"landscape input.*pass \(192, 256\) or the text '256x192'"):
        assert parse_input_size((256, 192)) == (256, 192)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, _ = build_training_model("tiny", [get_dataset_info("coco")], input_size=(256, 192))
    assert [str(w.message).count("landscape") for w in caught if w.category is UserWarning] == [1]
    assert model.config.input_size == (256, 192)


def test_selects_dataset_is_one_rule_for_experts_and_heads():
    """Whether dataset_index chooses anything: ViTPose++ (experts) and dense multi-head models, not a plain ViTPose."""
    plain = VitPoseConfig(backbone_config={"hidden_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4})
    heads = VitPoseConfig(
        backbone_config={"hidden_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4},
        associate_num_labels=[14, 16],
    )
    plus = VitPoseConfig(
        backbone_config={
            "hidden_size": 96,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "num_experts": 6,
            "part_features": 24,
        }
    )
    assert [c.selects_dataset for c in (plain, heads, plus)] == [False, True, True]
    assert [len(c.valid_dataset_indices) for c in (plain, heads, plus)] == [1, 3, 6]
