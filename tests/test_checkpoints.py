"""Checkpoint formats: hub directories, original ViTPose .pth (with ViTPose++ heads), conversion, hub downloads,
expert folding, and the errors for files that are wrong."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

from conftest import hf_to_original_keys, load_hf, make_hf_model, save_hf
from vitpose import CheckpointError, VitPoseForPoseEstimation
from vitpose.cli import main as cli_main

pytest.importorskip("transformers")

ASSOCIATE = [14, 16, 17, 17, 133]  # AiC, MPII, AP-10K, APT-36K, WholeBody: dataset_index 1..5


def make_vit_s(**kwargs):
    """Original checkpoints carry no head count: their width must be a preset's. ViT-S width, reduced depth."""
    return make_hf_model(**{"hidden_size": 384, "num_heads": 12, "part_features": 96, **kwargs})


def _heat(model, x, **kw):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model(x, **kw).heatmaps


def _original_checkpoint(tmp_path, hf, associate: list[int] | None = None, wrap: bool = True):
    """The transformers model's weights in the original layout, plus ViTPose++ associate heads (from extra random
    transformers heads, so that each can be checked with transformers as the oracle). Returns (path, heads) where
    heads[j] is the transformers head module serving dataset_index j + 1."""
    state = hf_to_original_keys(hf.state_dict())
    state["backbone.cls_token"] = torch.zeros(1, 1, hf.config.backbone_config.hidden_size)
    heads = []
    for j, k in enumerate(associate or []):
        donor = make_hf_model(
            hidden_size=hf.config.backbone_config.hidden_size,
            num_heads=hf.config.backbone_config.num_attention_heads,
            num_experts=hf.config.backbone_config.num_experts,
            part_features=hf.config.backbone_config.part_features,
            simple=hf.config.use_simple_decoder,
            num_labels=k,
            seed=100 + j,
        )
        head_keys = {
            k2: v for k2, v in hf_to_original_keys(donor.state_dict()).items() if k2.startswith("keypoint_head.")
        }
        for key, value in head_keys.items():
            state[key.replace("keypoint_head.", f"associate_keypoint_heads.{j}.")] = value
        heads.append(donor.head)
    path = tmp_path / "original.pth"
    torch.save({"meta": {"epoch": 210}, "state_dict": state} if wrap else state, path)
    return path, heads


def _oracle_for_head(hf, head, x, index):
    """transformers' backbone with expert `index`, then the given transformers head."""
    with torch.no_grad():
        feats = hf.backbone(x, dataset_index=index).feature_maps[-1]
        b, _, c = feats.shape
        rows, cols = 16, 12
        return head(feats.permute(0, 2, 1).reshape(b, c, rows, cols))


@pytest.mark.parametrize("simple", [True, False], ids=["simple", "classic"])
def test_original_dense_checkpoint_loads_and_converts(tmp_path, simple):
    hf = make_hf_model(simple=simple, hidden_size=384, num_heads=12, layer_norm_eps=1e-6)
    path, _ = _original_checkpoint(tmp_path, hf)
    ours = VitPoseForPoseEstimation.from_pretrained(path)
    cfg = ours.config
    assert cfg.use_simple_decoder == simple and cfg.num_labels == 17
    assert cfg.backbone_config.hidden_size == 384 and cfg.backbone_config.num_attention_heads == 12
    assert cfg.backbone_config.num_hidden_layers == 2 and cfg.backbone_config.layer_norm_eps == 1e-6
    assert cfg.flip_pairs[0] == [1, 2] and len(cfg.edges) == 19
    x = torch.randn(2, 3, 256, 192)
    assert torch.allclose(_heat(ours, x), _heat(hf, x), atol=1e-4)

    out = tmp_path / "converted"
    assert cli_main(["convert", str(path), str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "preprocessor_config.json").is_file()
    assert torch.allclose(_heat(load_hf(out), x), _heat(hf, x), atol=1e-4)


@pytest.mark.slow
def test_original_vitpose_plus_with_all_heads(tmp_path):
    hf = make_vit_s(num_experts=6, simple=False, layer_norm_eps=1e-6)
    path, heads = _original_checkpoint(tmp_path, hf, ASSOCIATE)
    ours = VitPoseForPoseEstimation.from_pretrained(path)
    assert ours.config.associate_num_labels == ASSOCIATE
    assert ours.config.backbone_config.num_experts == 6 and ours.config.backbone_config.part_features == 96
    x = torch.randn(3, 3, 256, 192)
    # COCO head: transformers itself is the oracle.
    index0 = torch.zeros(3, dtype=torch.long)
    assert torch.allclose(_heat(ours, x, dataset_index=index0), _heat(hf, x, dataset_index=index0), atol=1e-4)
    # Every other head: transformers' backbone with that expert, then that head.
    for j, head in enumerate(heads):
        index = torch.full((3,), j + 1)
        expected = _oracle_for_head(hf, head, x, index)
        got = _heat(ours, x, dataset_index=index)
        assert got.shape == (3, ASSOCIATE[j], 64, 48)
        assert torch.allclose(got, expected, atol=1e-4), j

    # A batch mixing heads of 17, 14 and 133 keypoints: padded to 133, num_keypoints says which are real.
    mixed = torch.tensor([0, 1, 5])
    with torch.no_grad():
        out = ours(x, dataset_index=mixed)
    assert out.heatmaps.shape == (3, 133, 64, 48) and out.num_keypoints.tolist() == [17, 14, 133]
    assert torch.allclose(out.heatmaps[1, :14], _oracle_for_head(hf, heads[0], x[1:2], mixed[1:2])[0], atol=1e-4)
    assert torch.all(out.heatmaps[1, 14:] == 0)

    # Converted: transformers loads it (COCO head) with identical heatmaps; vitpose keeps every head.
    out_dir = tmp_path / "converted"
    assert cli_main(["convert", str(path), str(out_dir)]) == 0
    assert torch.allclose(
        _heat(load_hf(out_dir), x, dataset_index=index0), _heat(hf, x, dataset_index=index0), atol=1e-4
    )
    again = VitPoseForPoseEstimation.from_pretrained(out_dir)
    assert again.config.associate_num_labels == ASSOCIATE
    assert torch.equal(_heat(again, x, dataset_index=mixed), out.heatmaps)


def test_flip_test_uses_each_heads_pairs(tmp_path):
    hf = make_vit_s(num_experts=6)
    path, _ = _original_checkpoint(tmp_path, hf, ASSOCIATE)
    ours = VitPoseForPoseEstimation.from_pretrained(path)
    x = torch.randn(2, 3, 256, 192)
    mpii_pairs = torch.tensor([[0, 5], [1, 4], [2, 3], [10, 15], [11, 14], [12, 13]])
    plain = _heat(ours, x, dataset_index=2)
    mirrored = _heat(ours, x.flip(-1), dataset_index=2, flip_pairs=mpii_pairs)
    assert torch.allclose(_heat(ours, x, dataset_index=2, flip_test=True), (plain + mirrored) / 2, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("with_heads", [False, True])
def test_fold_experts_gives_the_same_outputs(tmp_path, with_heads):
    hf = make_vit_s(num_experts=6, simple=False)
    path, _ = _original_checkpoint(tmp_path, hf, ASSOCIATE if with_heads else None)
    ours = VitPoseForPoseEstimation.from_pretrained(path)
    x = torch.randn(2, 3, 256, 192)
    for index in range(6):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # without its own head an expert is folded with the COCO head
            dense = ours.fold_experts(index)
        assert not dense.is_moe and dense.config.extra["folded_dataset_index"] == index
        assert dense.backbone.blocks[0].mlp.fc2.out_features == 384
        expected = _heat(ours, x, dataset_index=index)
        assert torch.allclose(_heat(dense, x), expected, atol=1e-5), index
    # Tensors other than fc2 are shared, not copied.
    assert dense.backbone.blocks[0].attn.qkv.weight.data_ptr() == ours.backbone.blocks[0].attn.qkv.weight.data_ptr()
    folded = ours.fold_experts("ap10k")
    assert folded.config.num_labels == 17 and len(folded.config.flip_pairs) == 7 if with_heads else True
    with pytest.raises(ValueError, match="out of range"):
        ours.fold_experts(6)


def test_fold_via_cli(tmp_path):
    hf = make_vit_s(num_experts=6)
    path, _ = _original_checkpoint(tmp_path, hf, ASSOCIATE)
    assert cli_main(["convert", str(path), str(tmp_path / "wb"), "--fold", "wholebody"]) == 0
    dense = VitPoseForPoseEstimation.from_pretrained(tmp_path / "wb")
    ours = VitPoseForPoseEstimation.from_pretrained(path)
    x = torch.randn(1, 3, 256, 192)
    assert dense.config.num_labels == 133
    assert torch.allclose(_heat(dense, x), _heat(ours, x, dataset_index=5), atol=1e-5)


def test_plain_state_dict_and_bin_and_safetensors_files(tmp_path):
    hf = make_vit_s()
    path, _ = _original_checkpoint(tmp_path, hf, wrap=False)
    x = torch.randn(1, 3, 256, 192)
    assert torch.allclose(_heat(VitPoseForPoseEstimation.from_pretrained(path), x), _heat(hf, x), atol=1e-4)
    # A hub directory with pytorch_model.bin instead of safetensors.
    ours = VitPoseForPoseEstimation.from_pretrained(save_hf(hf, tmp_path / "hub"))
    ours.save_pretrained(tmp_path / "bin", safe_serialization=False)
    assert (tmp_path / "bin" / "pytorch_model.bin").is_file()
    assert torch.allclose(_heat(VitPoseForPoseEstimation.from_pretrained(tmp_path / "bin"), x), _heat(hf, x), atol=1e-4)


def test_dtype_and_device_arguments(tmp_path):
    save_hf(make_hf_model(), tmp_path / "m")
    half = VitPoseForPoseEstimation.from_pretrained(tmp_path / "m", torch_dtype=torch.bfloat16, device_map="cpu")
    assert half.dtype == torch.bfloat16 and half.device.type == "cpu"
    assert VitPoseForPoseEstimation.from_pretrained(tmp_path / "m", device="cpu").device.type == "cpu"
    assert VitPoseForPoseEstimation.from_pretrained(tmp_path / "m", device_map={"": "cpu"}).device.type == "cpu"
    assert VitPoseForPoseEstimation.from_pretrained(tmp_path / "m", device_map="auto").training is False
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            VitPoseForPoseEstimation.from_pretrained(tmp_path / "m", device="cuda")


def test_hub_id_downloads_through_huggingface_hub(tmp_path, monkeypatch):
    """The hub path itself cannot reach the network here: serve files from a local 'hub' through a stand-in for
    hf_hub_download that behaves as the real one (raises EntryNotFoundError for a missing file)."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    hub = save_hf(make_hf_model(), tmp_path / "hub" / "usyd-community" / "vitpose-tiny")
    asked = []

    def fake_download(repo_id, filename, **kwargs):
        asked.append(filename)
        src = tmp_path / "hub" / repo_id / filename
        if not src.is_file():
            raise EntryNotFoundError(f"{filename} not found")
        dst = tmp_path / "cache" / repo_id / filename
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        return str(dst)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    model = VitPoseForPoseEstimation.from_pretrained("usyd-community/vitpose-tiny", revision="main")
    assert asked[:2] == ["config.json", "model.safetensors"]
    x = torch.randn(1, 3, 256, 192)
    assert torch.allclose(_heat(model, x), _heat(load_hf(hub), x), atol=1e-4)


def test_offline_hub_id_says_how_to_pass_a_local_directory(tmp_path):
    with pytest.raises(CheckpointError, match=r"could not download config.json.*local directory"):
        VitPoseForPoseEstimation.from_pretrained(
            "usyd-community/vitpose-base-simple", local_files_only=True, cache_dir=str(tmp_path)
        )


# ---------------------------------------------------------------------------------------------- bad files
def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        VitPoseForPoseEstimation.from_pretrained(str(tmp_path / "nope.pth"))
    with pytest.raises(FileNotFoundError, match=r"has no config\.json"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path)


def test_corrupt_checkpoint(tmp_path):
    hf = make_vit_s()
    path, _ = _original_checkpoint(tmp_path, hf)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*truncated.pth.*download it again"):
        VitPoseForPoseEstimation.from_pretrained(truncated)
    save_hf(hf, tmp_path / "hub")
    st = tmp_path / "hub" / "model.safetensors"
    st.write_bytes(st.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "hub")
    (tmp_path / "hub" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read model config"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "hub")


class Evil:
    def __reduce__(self):
        return (print, ("unpickled arbitrary code",))


def test_pickles_with_objects_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        VitPoseForPoseEstimation.from_pretrained(path)
    assert "unpickled" not in capsys.readouterr().out


def test_missing_and_unexpected_keys_are_named(tmp_path):
    hf = make_vit_s()
    state = hf_to_original_keys(hf.state_dict())
    del state["backbone.blocks.1.attn.proj.weight"]
    state["backbone.blocks.0.surprise"] = torch.zeros(3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError,
        match=r"missing keys: backbone.blocks.1.attn.proj.weight.*unexpected keys: backbone.blocks.0.surprise",
    ):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "bad.pth")


def test_hub_dir_with_unexpected_key(tmp_path):
    from safetensors.torch import load_file, save_file

    save_hf(make_hf_model(), tmp_path / "hub")
    state = load_file(tmp_path / "hub" / "model.safetensors")
    state["backbone.encoder.layer.0.extra.weight"] = torch.zeros(2)
    save_file(state, tmp_path / "hub" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"unexpected keys.*layer.0.extra.weight"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "hub")


def test_shapes_that_fit_no_preset(tmp_path):
    hf = make_hf_model(hidden_size=100, num_heads=4)
    torch.save(hf_to_original_keys(hf.state_dict()), tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=r"width 100 fits no ViTPose preset.*384 \(small\)"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "odd.pth")


def test_config_that_does_not_fit_the_weights(tmp_path):
    save_hf(make_hf_model(), tmp_path / "hub")
    cfg = json.loads((tmp_path / "hub" / "config.json").read_text())
    cfg["backbone_config"]["num_hidden_layers"] = 3
    cfg["backbone_config"]["out_indices"] = [3]
    cfg["backbone_config"].pop("out_features", None)
    cfg["backbone_config"].pop("stage_names", None)
    (tmp_path / "hub" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"missing keys: backbone.blocks.2"):
        VitPoseForPoseEstimation.from_pretrained(tmp_path / "hub")


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert cli_main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vitpose convert: error: no such file or directory") and "Traceback" not in err


def test_cli_info(tmp_path, capsys):
    hf = make_vit_s(num_experts=6)
    path, _ = _original_checkpoint(tmp_path, hf, ASSOCIATE)
    assert cli_main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "6 experts (96 part features)" in out and "extra heads [14, 16, 17, 17, 133]" in out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_qkv_is_read_from_the_file_and_equals_the_concatenation(tmp_path, dtype):
    """Hub checkpoints store q, k, v apart; the fused qkv is read from the file straight into its own buffer (so the
    mapped pages of q, k, v are never made resident) and must equal their concatenation."""
    from safetensors.torch import save_file

    from vitpose.checkpoints import _fuse_from_file, hf_to_native, read_state_dict, safetensors_locations

    state = {k: v.to(dtype) for k, v in make_hf_model().state_dict().items()}
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    read = read_state_dict(path)
    assert set(read.locations) == set(state)
    with open(path, "rb") as f:
        data = f.read()
    for key, (where, offset, count) in safetensors_locations(path).items():
        assert where == path and count == state[key].numel() * state[key].element_size()
        assert data[offset : offset + count] == state[key].contiguous().view(torch.uint8).numpy().tobytes()

    native = hf_to_native(read)
    plain = hf_to_native(dict(read))  # no locations: the torch.cat path
    for i in range(2):
        for kind in ("weight", "bias"):
            prefix = f"backbone.encoder.layer.{i}.attention.attention"
            want = torch.cat([state[f"{prefix}.{p}.{kind}"] for p in ("query", "key", "value")])
            got = native[f"backbone.blocks.{i}.attn.qkv.{kind}"]
            assert (
                got.dtype == dtype
                and torch.equal(got, want)
                and torch.equal(plain[f"backbone.blocks.{i}.attn.qkv.{kind}"], want)
            )
    # Byte counts that do not match the tensors (a changed file) fall back to the concatenation.
    names = [f"backbone.encoder.layer.0.attention.attention.{p}.weight" for p in ("query", "key", "value")]
    wrong = type(read)(read)
    wrong.locations = {n: (path, 0, 3) for n in names}
    assert _fuse_from_file([read[n] for n in names], names, wrong) is None


def test_id2label_is_the_same_for_pth_and_hub_format(tmp_path):
    """Bug 5: the names of a model do not depend on the format of its checkpoint (the registry's COCO names)."""
    from vitpose.datasets import get_dataset_info

    coco_names = dict(enumerate(get_dataset_info("coco").keypoint_names))
    hf = make_vit_s()
    path, _ = _original_checkpoint(tmp_path, hf)
    save_hf(hf, tmp_path / "hub")
    from_pth = VitPoseForPoseEstimation.from_pretrained(path).config
    from_hub = VitPoseForPoseEstimation.from_pretrained(tmp_path / "hub").config
    assert from_pth.id2label == from_hub.id2label == coco_names
    assert from_pth.label2id == from_hub.label2id and from_hub.label2id["left_eye"] == 1
    # The transformers port's config.json names ("Nose", "L_Eye", ...) are read as the registry's.
    port = ["Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
            "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle"]  # fmt: skip
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(port)}
    config["label2id"] = {name: i for i, name in enumerate(port)}
    (tmp_path / "hub" / "config.json").write_text(json.dumps(config))
    assert VitPoseForPoseEstimation.from_pretrained(tmp_path / "hub").config.id2label == coco_names
    # Names of another layout are kept as they are.
    config["id2label"] = {str(i): f"joint{i}" for i in range(17)}
    (tmp_path / "hub" / "config.json").write_text(json.dumps(config))
    assert VitPoseForPoseEstimation.from_pretrained(tmp_path / "hub").config.id2label[3] == "joint3"
