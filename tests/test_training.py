"""Training: data, augmentation geometry, targets, loss, optimiser, the loop (checkpoints, resume, torchrun), the CLI.

The end-to-end proof: a tiny ViTPose trained from scratch on the four shared COCO images reaches AP >= 0.9 on them
with the evaluation code of `vitpose eval`, which only happens if targets, loss, crops, decoding and evaluation agree.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import DATA, make_hf_model, require_shared, run_torchrun, save_hf
from vitpose import VitPoseForPoseEstimation
from vitpose.datasets import get_dataset_info
from vitpose.evaluation import evaluate
from vitpose.models.vit import expert_groups
from vitpose.training import (
    AugmentConfig,
    KeypointDataset,
    MultiDataset,
    ResumableSampler,
    TrainConfig,
    build_training_model,
    collate_samples,
    dataset_info_from_dict,
    heatmap_loss,
    heatmap_mse_loss,
    layer_id,
    load_dataset_info,
    lr_factor,
    param_groups,
    preset_config,
    train,
)

SMALL = {"input_size": [48, 64], "decoder": "simple"}  # the fastest setting, for loop mechanics

# A custom five-point skeleton for the synthetic data: names, links, mirror pairs, OKS sigmas.
HAND5 = {
    "name": "dots5",
    "keypoints": ["head", "left_hand", "right_hand", "left_foot", "right_foot"],
    "skeleton": [["head", "left_hand"], ["head", "right_hand"], [0, 3], [0, 4]],
    "flip_pairs": [["left_hand", "right_hand"], ["left_foot", "right_foot"]],
    "sigmas": [0.05, 0.04, 0.04, 0.06, 0.06],
    "upper_body": ["head", "left_hand", "right_hand"],
}
COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]], np.uint8)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread for this module: on a busy 2-core machine two OpenMP threads contend with the other
    processes and a training step of the tiny model takes 20x longer (measured: 2 s instead of 0.09 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dots(tmp_path_factory) -> dict[str, Path]:
    """Synthetic data: six PNG images, one figure each, whose five keypoints are 9-px squares of distinct colours."""
    root = tmp_path_factory.mktemp("dots")
    rng = np.random.default_rng(7)
    images, annotations = [], []
    for i in range(6):
        img = np.zeros((160, 200, 3), np.uint8)
        x0, y0 = rng.uniform(20, 80), rng.uniform(15, 40)
        w, h = rng.uniform(70, 100), rng.uniform(90, 110)
        pts = np.array([[0.5, 0.05], [0.05, 0.4], [0.95, 0.4], [0.2, 0.95], [0.8, 0.95]]) * [w, h] + [x0, y0]
        pts += rng.uniform(-4, 4, pts.shape)
        for p, color in zip(pts, COLORS, strict=True):
            cx, cy = np.round(p).astype(int)
            img[cy - 4 : cy + 5, cx - 4 : cx + 5] = color
        cv2.imwrite(str(root / f"{i}.png"), img[:, :, ::-1])
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 200, "height": 160})
        kps = np.concatenate([np.round(pts), np.full((5, 1), 2)], axis=1).reshape(-1).tolist()
        box = [float(x0 - 6), float(y0 - 6), float(w + 12), float(h + 12)]
        annotations.append(
            {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": box, "area": box[2] * box[3], "iscrowd": 0,
             "keypoints": kps, "num_keypoints": 5}
        )  # fmt: skip
    ann = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "figure"}]}
    (root / "dots.json").write_text(json.dumps(ann))
    (root / "dots5.json").write_text(json.dumps(HAND5))
    return {"root": root, "annotations": root / "dots.json", "dataset": root / "dots5.json"}


# ---------------------------------------------------------------------------------------------------------- targets
def test_targets_peak_at_the_keypoint_pixel(coco_dir):
    ds = KeypointDataset(coco_dir / "test_coco.json", coco_dir, augment=False)
    assert len(ds) == 12 and ds.info.name == "coco"
    stride = ds.codec.feat_stride  # (input - 1) / (heatmap - 1), UDP
    checked = 0
    for i in range(len(ds)):
        s = ds.sample(i)
        assert s.labels.shape == (17, 64, 48) and s.pixel_values.shape == (3, 256, 192)
        for k in range(17):
            if s.visible[k] == 0:
                assert s.label_weights[k] == 0 and float(s.labels[k].abs().max()) == 0
                continue
            x, y = s.keypoints[k]
            expected = np.trunc(np.array([x, y]) / stride + 0.5).astype(int)
            if not (0 <= expected[0] < 48 and 0 <= expected[1] < 64):
                continue
            assert s.label_weights[k] == 1
            row, col = divmod(int(torch.argmax(s.labels[k])), 48)
            assert (col, row) == tuple(expected), (i, k)
            assert float(s.labels[k].max()) > 0.88  # sub-pixel centre: exp(-0.5^2 / 4) at worst
            checked += 1
    assert checked > 100


def test_target_weights_follow_the_original(coco_dir):
    """0/1 weights by default (ViTPose configs leave `use_different_joint_weights` off); joint weights on request."""
    plain = KeypointDataset(coco_dir / "test_coco.json", coco_dir, augment=False)
    weighted = KeypointDataset(coco_dir / "test_coco.json", coco_dir, augment=False, use_joint_weights=True)
    a, b = plain.sample(0), weighted.sample(0)
    assert set(np.unique(a.label_weights.numpy())) <= {0.0, 1.0}
    np.testing.assert_allclose(b.label_weights.numpy(), a.label_weights.numpy() * np.array(plain.info.joint_weights))


def test_pixel_values_are_the_processors(coco_dir):
    """Without augmentation a training crop is exactly what the inference processor feeds the network."""
    from vitpose.media import load_image
    from vitpose.processor import VitPoseImageProcessor

    ds = KeypointDataset(coco_dir / "test_coco.json", coco_dir, augment=False)
    inst = ds.instances
    image = load_image(inst.image_paths[inst.image_index[0]])[0]
    expected = VitPoseImageProcessor()(image, boxes=[[inst.boxes[0]]])["pixel_values"][0]
    torch.testing.assert_close(ds.sample(0).pixel_values, expected, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------------------- augmentation
def _decode_in_crop(ds: KeypointDataset, labels: torch.Tensor) -> np.ndarray:
    """Decode target heatmaps to crop pixels with the inference codec (a 'box' that is the crop itself)."""
    w, h = ds.input_size
    centers = np.array([[(w - 1) / 2, (h - 1) / 2]])
    scales = np.array([[w - 1.0, h - 1.0]])
    keypoints, _ = ds.codec.decode(labels[None].numpy(), centers, scales)
    return keypoints[0]


def test_flip_mirrors_crop_keypoints_and_targets(coco_dir):
    """A flip (no scale, no rotation) gives exactly the mirrored crop, with left/right channels swapped."""
    flip_only = AugmentConfig(flip_prob=1.0, half_body_prob=0.0, scale_factor=0.0, rotation_prob=0.0)
    plain = KeypointDataset(coco_dir / "test_coco.json", coco_dir, augment=False)
    flipped = KeypointDataset(coco_dir / "test_coco.json", coco_dir, augmentation=flip_only)
    perm = np.array(get_dataset_info("coco").flip_indices)
    for i in (0, 4, 9):
        a, b = plain.sample(i), flipped.sample(i)
        assert b.geometry.flipped and not a.geometry.flipped
        np.testing.assert_array_equal(b.geometry.permutation, perm)
        diff = np.abs(b.crop.astype(int) - a.crop[:, ::-1].astype(int))
        assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 2  # same samples, up to bilinear rounding
        labelled = a.visible[perm] > 0
        mirrored = a.keypoints[perm].copy()
        mirrored[:, 0] = 191 - mirrored[:, 0]
        np.testing.assert_allclose(b.keypoints[labelled], mirrored[labelled], atol=1e-3)
        np.testing.assert_array_equal(b.visible, a.visible[perm])
        torch.testing.assert_close(b.labels, a.labels[perm].flip(-1), atol=1e-5, rtol=0)
        torch.testing.assert_close(b.label_weights, a.label_weights[perm])


def test_augmented_targets_decode_back_to_the_image(coco_dir):
    """Full augmentation (flip, half-body, scale, rotation): the targets, decoded by the inference codec and mapped
    back through the crop's affine matrix, land on the original annotated keypoints (channel order flipped back)."""
    ds = KeypointDataset(coco_dir / "test_coco.json", coco_dir, seed=3)
    seen = {"flipped": 0, "rotated": 0, "half_body": 0}
    checked = 0
    for epoch in range(6):
        for i in range(len(ds)):
            s = ds.sample(i, epoch)
            g = s.geometry
            seen["flipped"] += g.flipped
            seen["rotated"] += g.rotation != 0
            seen["half_body"] += not np.allclose(g.center, ds.centers[i]) and not g.flipped
            decoded = _decode_in_crop(ds, s.labels)
            inverse = cv2.invertAffineTransform(g.matrix)
            in_image = decoded @ inverse[:, :2].T + inverse[:, 2]
            original = ds.instances.keypoints[i][g.permutation]
            px_per_hm = np.abs(np.linalg.det(inverse[:, :2])) ** 0.5 * ds.codec.feat_stride.mean()
            # keypoints whose Gaussian is whole on the heatmap (DARK's blur window too); near the edge the truncated
            # target biases any decoder, by design of the original
            hm = s.keypoints / ds.codec.feat_stride
            ok = (s.label_weights.numpy() > 0) & np.all((hm >= 6) & (hm <= np.array(ds.heatmap_size) - 7), axis=1)
            err = np.linalg.norm(in_image[ok] - original[ok], axis=1)
            checked += int(ok.sum())
            assert err.max() < 0.1 * px_per_hm + 0.05, (epoch, i, err.max(), px_per_hm)
            np.testing.assert_allclose(s.keypoints[ok], decoded[ok], atol=0.1 * ds.codec.feat_stride.max())
    assert all(v > 0 for v in seen.values()) and checked > 300, (seen, checked)


def test_augmented_crops_show_each_keypoint_where_its_target_is(dots):
    """The image content follows the keypoints through flip, scale and rotation: the crop pixel at every augmented
    keypoint has the colour of the original keypoint that channel now holds (left and right swapped on a flip)."""
    ds = KeypointDataset(dots["annotations"], dots["root"], dots["dataset"], input_size=(96, 128), seed=1)
    assert ds.info.flip_indices == (0, 2, 1, 4, 3)
    flips = rotations = 0
    for epoch in range(8):
        for i in range(len(ds)):
            s = ds.sample(i, epoch)
            flips += s.geometry.flipped
            rotations += s.geometry.rotation != 0
            for k in range(5):
                x, y = np.round(s.keypoints[k]).astype(int)
                if 1 <= x < 95 and 1 <= y < 127:
                    color = COLORS[s.geometry.permutation[k]].astype(int)
                    assert np.abs(s.crop[y, x].astype(int) - color).max() < 60, (epoch, i, k)
    assert flips > 5 and rotations > 5


def test_augmentation_is_a_function_of_seed_epoch_and_sample(coco_dir):
    ds = KeypointDataset(coco_dir / "test_coco.json", coco_dir, seed=5)
    a, b = ds[(2, 7)], ds[(2, 7)]
    torch.testing.assert_close(a["pixel_values"], b["pixel_values"], atol=0, rtol=0)
    c = ds[(3, 7)]
    assert not torch.equal(a["pixel_values"], c["pixel_values"])
    ds.set_epoch(2)
    torch.testing.assert_close(ds[7]["labels"], a["labels"], atol=0, rtol=0)


def test_mpii_people_train_on_the_files_centre_and_scale():
    mpii = require_shared(DATA / "mpii")
    ds = KeypointDataset(mpii / "test_mpii.json", mpii, seed=2)
    assert ds.info.name == "mpii" and ds.info.dataset_index == 2 and len(ds) == 5
    assert np.allclose(ds.scales[:, 0], ds.scales[:, 1])  # square, as the original (the crop is squashed)
    for epoch in range(3):
        s = ds.sample(1, epoch)
        assert s.labels.shape == (16, 64, 48) and s.dataset_index == 2
        inverse = cv2.invertAffineTransform(s.geometry.matrix)
        back = s.keypoints @ inverse[:, :2].T + inverse[:, 2]
        np.testing.assert_allclose(back, ds.instances.keypoints[1][s.geometry.permutation], atol=1e-3)


def test_bf16_autocast_on_the_cpu(coco_dir, tmp_path):
    """amp="bf16" runs the training forward pass in bfloat16: a Linear of the backbone (the first block's MLP)
    outputs bf16 at every step (float32 if the setting were ignored), while its weights stay float32."""
    model = VitPoseForPoseEstimation(preset_config("tiny", input_size=(48, 64), decoder="simple"))
    linear = model.backbone.blocks[0].mlp.fc1
    assert isinstance(linear, torch.nn.Linear)
    dtypes = []
    handle = linear.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    try:
        result = train(**{**_tiny_settings(coco_dir, tmp_path / "bf16"), "model": model, "epochs": 1, "amp": "bf16"})
    finally:
        handle.remove()
    assert result.step == 3 and math.isfinite(result.history[0]["loss"])
    assert dtypes == [torch.bfloat16] * 3
    assert linear.weight.dtype == torch.float32


def test_sampler_shards_like_distributed_sampler_and_resumes():
    full = ResumableSampler(11, seed=4)
    ranks = [ResumableSampler(11, seed=4, rank=r, num_replicas=3) for r in range(3)]
    for s in (full, *ranks):
        s.set_epoch(2)
    order = [i for _, i in full]
    assert sorted(order) == list(range(11))
    shards = [[i for _, i in s] for s in ranks]
    assert all(len(s) == 4 for s in shards)  # padded to 12 as DistributedSampler
    assert {i for shard in shards for i in shard} == set(range(11))
    padded = [*order, order[0]]
    assert shards == [padded[r::3] for r in range(3)]
    full.set_epoch(2, start=5)
    assert [i for _, i in full] == order[5:]


# ------------------------------------------------------------------------------------------------ loss and optimiser
def _mmpose_joints_mse(output, target, weight):
    """mmpose 0.x JointsMSELoss(use_target_weight=True), written out as the original loops it."""
    b, k = output.shape[:2]
    pred, gt = output.reshape(b, k, -1), target.reshape(b, k, -1)
    loss = 0.0
    for j in range(k):
        loss = loss + torch.nn.functional.mse_loss(pred[:, j] * weight[:, j, None], gt[:, j] * weight[:, j, None])
    return loss / k


def test_loss_is_mmpose_joints_mse():
    g = torch.Generator().manual_seed(0)
    out, tgt = torch.rand(3, 5, 8, 6, generator=g), torch.rand(3, 5, 8, 6, generator=g)
    w = torch.tensor([[1, 0, 1, 1.5, 1], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1.2]])
    torch.testing.assert_close(heatmap_mse_loss(out, tgt, w), _mmpose_joints_mse(out, tgt, w))
    torch.testing.assert_close(heatmap_mse_loss(out, tgt, w[..., None]), _mmpose_joints_mse(out, tgt, w))
    torch.testing.assert_close(heatmap_mse_loss(out, tgt), torch.nn.functional.mse_loss(out, tgt))
    with pytest.raises(ValueError, match="labels must have the shape"):
        heatmap_mse_loss(out, tgt[:, :4])


def test_forward_with_labels_returns_the_loss():
    model = VitPoseForPoseEstimation(preset_config("tiny", input_size=(48, 64), decoder="simple"))
    x = torch.randn(2, 3, 64, 48)
    labels, weights = torch.rand(2, 17, 16, 12), (torch.rand(2, 17) > 0.3).float()
    out = model(x, labels=labels, label_weights=weights)
    torch.testing.assert_close(out.loss, _mmpose_joints_mse(out.heatmaps, labels, weights))
    out.loss.backward()
    assert model.backbone.patch_embed.proj.weight.grad is not None
    assert model(x).loss is None
    with pytest.raises(ValueError, match="flip_test"):
        model(x, labels=labels, flip_test=True)


def test_vitpose_plus_mixed_batch_loss_is_the_sum_of_the_heads_losses():
    """As the original TopDownMoE: each head's loss over the whole batch with other data sets' samples zeroed."""
    torch.manual_seed(0)
    model = VitPoseForPoseEstimation(preset_config("tiny+", input_size=(48, 64), decoder="simple")).eval()
    x = torch.randn(4, 3, 64, 48)
    index = torch.tensor([0, 5, 0, 1])
    ks = [17, 133, 17, 14]
    labels = torch.zeros(4, 133, 16, 12)
    weights = torch.zeros(4, 133)
    for i, k in enumerate(ks):
        labels[i, :k] = torch.rand(k, 16, 12)
        weights[i, :k] = 1
    out = model(x, dataset_index=index, labels=labels, label_weights=weights)
    feats = model.backbone(x, expert_groups(index))
    expected = 0.0
    for head_index, k in ((0, 17), (5, 133), (1, 14)):
        mask = (index == head_index).float()[:, None, None, None]
        pred = model.head_for(head_index)(feats)
        expected = expected + _mmpose_joints_mse(pred * mask, labels[:, :k] * mask, weights[:, :k])
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-8)


def test_layer_wise_lr_decay_and_weight_decay_groups():
    model = VitPoseForPoseEstimation(preset_config("tiny", input_size=(48, 64), decoder="classic"))
    depth = model.config.backbone_config.num_hidden_layers
    groups = param_groups(model, lr=1e-3, weight_decay=0.1, layer_decay=0.8)
    names = {}
    for g in groups:
        assert g["lr_scale"] == pytest.approx(0.8 ** (depth + 1 - g["layer_id"]))
        assert g["lr"] == pytest.approx(1e-3 * g["lr_scale"])
        for name, p in zip(g["names"], g["params"], strict=True):
            names[name] = g
            no_decay = p.ndim == 1 or name.endswith(".bias") or "pos_embed" in name
            assert g["weight_decay"] == (0.0 if no_decay else 0.1), name
    assert set(names) == {n for n, _ in model.named_parameters()}
    assert names["backbone.pos_embed"]["layer_id"] == 0 and names["backbone.pos_embed"]["weight_decay"] == 0
    assert names["backbone.patch_embed.proj.weight"]["layer_id"] == 0
    assert names["backbone.blocks.1.attn.qkv.weight"]["layer_id"] == 2
    assert names["backbone.last_norm.weight"]["lr_scale"] == 1.0
    assert names["keypoint_head.deconv_layers.1.weight"]["weight_decay"] == 0  # BatchNorm: 1-D
    assert names["keypoint_head.final_layer.weight"]["weight_decay"] == 0.1
    assert layer_id("backbone.blocks.11.mlp.experts.3.weight", 12) == 12


def test_warmup_and_step_schedule():
    assert lr_factor(0, 0) == pytest.approx(0.001)
    assert lr_factor(250, 0) == pytest.approx(1 - 0.5 * 0.999)
    assert lr_factor(500, 1) == 1.0
    assert lr_factor(10_000, 169) == 1.0
    assert lr_factor(10_000, 170) == pytest.approx(0.1)
    assert lr_factor(10_000, 200) == pytest.approx(0.01)


# ------------------------------------------------------------------------------------------------ data sets and errors
def test_custom_dataset_file(dots, tmp_path):
    info = load_dataset_info(dots["dataset"])
    assert info.num_keypoints == 5 and info.flip_pairs == ((1, 2), (3, 4)) and info.skeleton[2] == (0, 3)
    assert info.upper_body_ids == (0, 1, 2) and info.lower_body_ids == (3, 4)
    with pytest.raises(ValueError, match="sigmas has 2 entries but there are 5 keypoints"):
        dataset_info_from_dict({**HAND5, "sigmas": [0.1, 0.1]})
    with pytest.raises(ValueError, match="unknown keypoint name 'tail'"):
        dataset_info_from_dict({**HAND5, "flip_pairs": [["tail", "head"]]})
    with pytest.raises(ValueError, match="unknown field"):
        dataset_info_from_dict({**HAND5, "sigma": 1})


def test_bad_inputs_are_reported_clearly(coco_dir, dots, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read it as JSON"):
        KeypointDataset(bad, coco_dir)
    with pytest.raises(ValueError, match="annotation file not found"):
        KeypointDataset(tmp_path / "missing.json", coco_dir)
    with pytest.raises(ValueError, match=r"has 51 keypoint values \(17 keypoints\) but the data set 'dots5' has 5"):
        KeypointDataset(coco_dir / "test_coco.json", coco_dir, dots["dataset"])
    with pytest.raises(ValueError, match="4 of the 4 annotated images are not in"):
        KeypointDataset(coco_dir / "test_coco.json", tmp_path)
    with pytest.raises(ValueError, match="images folder not found"):
        KeypointDataset(coco_dir / "test_coco.json", tmp_path / "nope")
    with pytest.raises(ValueError, match="no 'annotations' list"):
        bad.write_text(json.dumps({"images": []}))
        KeypointDataset(bad, coco_dir, "coco")
    with pytest.raises(ValueError, match="one image folder per annotation file"):
        TrainConfig(model="tiny", train_annotations=["a.json", "b.json"], train_images=["x"], out="o")


def test_multi_dataset_batches_mix_keypoint_counts(coco_dir):
    coco = KeypointDataset(coco_dir / "test_coco.json", coco_dir, input_size=(48, 64))
    whole = KeypointDataset(coco_dir / "test_coco_wholebody.json", coco_dir, input_size=(48, 64))
    assert whole.info.name == "wholebody" and whole.num_keypoints == 133
    both = MultiDataset([coco, whole])
    batch = collate_samples([both[(0, 0)], both[(0, len(coco))]])
    assert batch["labels"].shape == (2, 133, 16, 12)
    assert batch["dataset_index"].tolist() == [0, 5]
    assert float(batch["label_weights"][0, 17:].abs().sum()) == 0
    assert (coco.seed_offset, whole.seed_offset) == (0, len(coco))  # every sample its own random stream


# ------------------------------------------------------------------------------------------------------- the loop
@pytest.mark.slow
def test_tiny_model_from_scratch_learns_the_four_images(coco_dir, tmp_path):
    """From random weights to AP >= 0.9 on the four shared COCO images (12 people), with `vitpose eval`'s code.

    Width 96, 3 blocks, simple decoder, 128x96 input (32x24 heatmaps), the 12 people as one batch, no augmentation.
    Measured AP after 75 / 100 / 125 / 150 / 200 steps: 0.52 / 0.77 / 0.90 / 0.96 / 1.0 (0.09 s a step on one
    core). At 64x48 the 16x12 heatmaps stall at AP 0.43; the 256x192 classic-decoder run is
    examples/train_tiny_coco.py."""
    ann = str(coco_dir / "test_coco.json")
    result = train(
        model="tiny",
        decoder="simple",
        input_size=[96, 128],
        train_annotations=ann,
        train_images=str(coco_dir),
        val_annotations=ann,
        val_images=str(coco_dir),
        epochs=180,
        batch_size=12,  # the 12 people: one step per epoch
        lr=1e-3,
        warmup_iters=0,
        lr_steps=[],
        augment=False,
        eval_interval=90,
        checkpoint_interval=90,
        num_workers=0,
        progress=False,
        out=str(tmp_path / "run"),
    )
    out = tmp_path / "run"
    assert result.step == 180 and not result.interrupted
    assert result.best is not None and result.best["AP"] >= 0.9, result.best
    reloaded = VitPoseForPoseEstimation.from_pretrained(out / "best")
    report = evaluate(reloaded, ann, coco_dir)
    assert report.metrics["AP"] == pytest.approx(result.best["AP"], abs=1e-6)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "training_state.pt"):
        assert (out / "last" / name).is_file(), name
    assert json.loads((out / "last" / "preprocessor_config.json").read_text())["size"] == {"height": 128, "width": 96}
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,lr,loss,AP") and len(rows) == 181
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.2 * losses[0]  # from the new head's all-zero prediction
    # log.csv holds the history's values: one row per epoch, the AP in the evaluated epochs only.
    import csv

    with (out / "log.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in table] == list(range(1, 181)) == [r["epoch"] for r in result.history]
    assert [int(r["step"]) for r in table] == list(range(1, 181))
    assert [float(r["loss"]) for r in table] == pytest.approx(losses, rel=1e-12)
    assert [int(r["epoch"]) for r in table if r["AP"]] == [90, 180]
    assert max(float(r["AP"]) for r in table if r["AP"]) == pytest.approx(result.best["AP"], abs=1e-12)
    # training.png: the loss panel and the validation panel; the loss curve passes where each epoch's loss is.
    plot = np.asarray(Image.open(out / "training.png").convert("RGB")).astype(int)
    assert plot.shape == (380, 1040, 3)
    for epoch, x, y in _loss_curve_points(losses):
        patch = plot[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3]
        assert (np.abs(patch - (31, 119, 180)).max(axis=-1) <= 40).any(), (epoch, x, y)
    red = (np.abs(plot - (214, 39, 40)).max(axis=-1) <= 40).nonzero()
    assert len(red[0]) > 0 and red[1].min() >= 520  # the AP curve, in the right panel only
    ap_top = 330 - max(r["AP"] for r in result.history if "AP" in r) * 294  # AP on a 0..1 axis from y 330 to 36
    assert abs(red[0].min() - ap_top) <= 4


def _loss_curve_points(losses: list[float]) -> list[tuple[int, float, float]]:
    """(epoch, x, y) pixels of the loss curve in training.png's left panel: the plot area is x 70..500 and
    y 36..330, epochs linear in x, the loss log10 in y over whole decades around the values +- 5 %."""
    logs = [math.log10(v) for v in losses]
    lo, hi = min(logs), max(logs)
    pad = 0.05 * (hi - lo)
    lo, hi = math.floor(lo - pad), math.ceil(hi + pad)
    last = len(losses)
    return [(e, 70 + (e - 1) / (last - 1) * 430, 330 - (v - lo) / (hi - lo) * 294) for e, v in enumerate(logs, start=1)]


def test_finetune_custom_skeleton_replaces_the_head_and_keeps_the_backbone(dots, tmp_path):
    checkpoint = save_hf(make_hf_model(hidden_size=64, num_layers=2, num_heads=4), tmp_path / "ckpt")
    original = VitPoseForPoseEstimation.from_pretrained(checkpoint)
    info = load_dataset_info(dots["dataset"])
    model, changes = build_training_model(str(checkpoint), [info])
    assert any("main head: 17 -> 5" in c for c in changes)
    assert model.keypoint_head.num_keypoints == 5 and model.config.num_labels == 5
    assert model.config.flip_pairs == [[1, 2], [3, 4]] and model.config.id2label[1] == "left_hand"
    before = {k: v for k, v in original.state_dict().items() if k.startswith("backbone.")}
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())

    result = train(
        model=str(checkpoint),
        train_annotations=str(dots["annotations"]),
        train_images=str(dots["root"]),
        datasets=[str(dots["dataset"])],
        val_annotations=str(dots["annotations"]),
        val_images=str(dots["root"]),
        eval_interval=0,
        input_size=[96, 128],
        epochs=12,
        batch_size=6,
        lr=5e-4,
        warmup_iters=0,
        augment=False,
        num_workers=0,
        progress=False,
        out=str(tmp_path / "ft"),
    )
    losses = [r["loss"] for r in result.history]  # the first epoch is the new head's all-zero prediction
    assert np.mean(losses[-3:]) < 0.85 * losses[0], losses
    assert 0.0 <= result.history[-1]["AP"] <= 1.0  # evaluated with the custom skeleton's sigmas
    saved = VitPoseForPoseEstimation.from_pretrained(tmp_path / "ft" / "last")
    assert saved.config.num_labels == 5 and saved.config.edges[0] == [0, 1]
    assert list(saved.config.backbone_config.image_size) == [128, 96]  # position embedding resized from 256x192


def _tiny_settings(coco_dir, out, **extra):
    return dict(
        model="tiny", train_annotations=str(coco_dir / "test_coco.json"), train_images=str(coco_dir),
        epochs=3, batch_size=4, lr=1e-3, warmup_iters=4, num_workers=0, progress=False, out=str(out), seed=11,
        drop_path=0.1, **SMALL, **extra,
    )  # fmt: skip


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    state = VitPoseForPoseEstimation.from_pretrained(directory).state_dict()
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def test_interrupt_and_resume_gives_the_same_weights(coco_dir, tmp_path):
    """Stopped mid-epoch (augmentation, drop path and warm-up on), then resumed: bit-identical final weights."""
    full = train(**_tiny_settings(coco_dir, tmp_path / "full"))
    assert full.step == 9  # 12 instances, batch 4, 3 epochs

    def stop_at_4(state):
        if state.step == 4:
            state.request_stop()

    part = train(**_tiny_settings(coco_dir, tmp_path / "part"), callback=stop_at_4)
    assert part.interrupted and part.step == 4
    saved = torch.load(tmp_path / "part" / "last" / "training_state.pt", weights_only=True)
    assert (saved["epoch"], saved["batch_in_epoch"], saved["step"]) == (1, 1, 4)
    resumed = train(**_tiny_settings(coco_dir, tmp_path / "part", resume=True))
    assert resumed.step == 9 and not resumed.interrupted
    a, b = _weights(tmp_path / "full" / "last"), _weights(tmp_path / "part" / "last")
    assert a.keys() == b.keys()
    assert [key for key in a if not torch.equal(a[key], b[key])] == []  # bit for bit
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]


def test_default_loss_fn_is_the_models_labelled_loss_exactly():
    """`heatmap_loss`, the trainer's default `loss_fn`, is bit for bit what `model(..., labels=...).loss` computes
    (the trainer's loss before the hook), for one head and for a mixed ViTPose++ batch."""
    torch.manual_seed(0)
    for preset, index, k in (("tiny", [0, 0, 0], 17), ("tiny+", [0, 5, 1], 133)):
        model = VitPoseForPoseEstimation(preset_config(preset, input_size=(48, 64), decoder="simple")).eval()
        batch = {
            "pixel_values": torch.randn(3, 3, 64, 48),
            "labels": torch.rand(3, k, 16, 12),
            "label_weights": (torch.rand(3, k) > 0.3).float(),
            "dataset_index": torch.tensor(index),
        }
        labelled = model(
            batch["pixel_values"],
            dataset_index=batch["dataset_index"],
            labels=batch["labels"],
            label_weights=batch["label_weights"],
        ).loss
        outputs = model(batch["pixel_values"], dataset_index=batch["dataset_index"])
        assert torch.equal(heatmap_loss(model, batch, outputs), labelled), preset


def test_a_zero_loss_fn_leaves_the_weights_unchanged(coco_dir, tmp_path):
    """The custom loss is called once per step with the model, the batch and the outputs, and is what is optimised:
    a loss that is 0 (weight decay off) leaves every weight as it was, where the default loss moves them."""
    import copy

    model = VitPoseForPoseEstimation(preset_config("tiny", input_size=(48, 64), decoder="simple"))
    control = copy.deepcopy(model)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    calls, logs = [], []

    def zero(m, batch, outputs):
        calls.append((m, {k: (tuple(v.shape), v.dtype) for k, v in batch.items()}, outputs))
        return outputs.heatmaps.sum() * 0.0, {"heatmap_sum": outputs.heatmaps.sum()}

    settings = {**_tiny_settings(coco_dir, tmp_path / "zero"), "epochs": 1, "weight_decay": 0.0}
    result = train(**{**settings, "model": model}, loss_fn=zero, callback=lambda s: logs.append((s.loss, s.logs)))
    assert result.step == 3 and len(calls) == 3 and result.model is model
    for m, shapes, outputs in calls:
        assert m is model  # the model itself, not a wrapper
        assert shapes == {
            "pixel_values": ((4, 3, 64, 48), torch.float32),
            "labels": ((4, 17, 16, 12), torch.float32),
            "label_weights": ((4, 17), torch.float32),
            "dataset_index": ((4,), torch.int64),
            "sample_index": ((4,), torch.int64),
        }
        assert outputs.heatmaps.shape == (4, 17, 16, 12) and outputs.heatmaps.requires_grad
    assert [loss for loss, _ in logs] == [0.0] * 3
    assert all(
        set(step_logs) == {"heatmap_sum"} and isinstance(step_logs["heatmap_sum"], float) for _, step_logs in logs
    )
    assert all(torch.equal(v, before[k]) for k, v in model.named_parameters())

    train(**{**settings, "model": control, "out": str(tmp_path / "control")})
    assert not all(torch.equal(v, before[k]) for k, v in control.named_parameters())


def test_a_loss_fn_shifted_by_a_constant_trains_as_the_default(coco_dir, tmp_path):
    """A constant added to the default loss changes no gradient: the weights equal the default run's bit for bit,
    and the loss the trainer reports is the value the loss function returned."""
    returned, reported, default = [], [], []

    def shifted(m, batch, outputs):
        loss = heatmap_loss(m, batch, outputs) + 1.0
        returned.append(float(loss.detach()))
        return loss

    settings = {**_tiny_settings(coco_dir, tmp_path), "epochs": 1}
    train(**{**settings, "out": str(tmp_path / "default")}, callback=lambda s: default.append(s.loss))
    train(**{**settings, "out": str(tmp_path / "shifted")}, loss_fn=shifted, callback=lambda s: reported.append(s.loss))
    assert reported == returned and len(returned) == 3
    assert reported == pytest.approx([v + 1.0 for v in default], rel=1e-6)
    # log.csv's epoch loss is the mean of that epoch's step losses (three equal batches of 4), at step 3.
    for name, steps in (("default", default), ("shifted", returned)):
        header, row = (tmp_path / name / "log.csv").read_text().splitlines()
        values = dict(zip(header.split(","), row.split(","), strict=True))
        assert (values["epoch"], values["step"]) == ("1", "3")
        assert float(values["loss"]) == pytest.approx(sum(steps) / 3, rel=1e-6)
    a, b = _weights(tmp_path / "default" / "last"), _weights(tmp_path / "shifted" / "last")
    assert [key for key in a if not torch.equal(a[key], b[key])] == []


def test_vitpose_plus_trains_on_two_data_sets_at_once(coco_dir, tmp_path):
    seen = []
    result = train(
        model="tiny+",
        train_annotations=[str(coco_dir / "test_coco.json"), str(coco_dir / "test_coco_wholebody.json")],
        train_images=[str(coco_dir), str(coco_dir)],
        epochs=1,
        batch_size=8,
        warmup_iters=0,
        num_workers=0,
        progress=False,
        out=str(tmp_path / "plus"),
        callback=lambda s: seen.append(s.loss),
        **SMALL,
    )
    assert result.step == math.ceil(24 / 8) and all(math.isfinite(v) for v in seen)
    saved = VitPoseForPoseEstimation.from_pretrained(tmp_path / "plus" / "last")
    assert saved.is_moe and saved.config.associate_num_labels == [14, 16, 17, 17, 133]


def test_cli_config_file_overrides_and_errors(coco_dir, tmp_path, capsys):
    from vitpose.cli.train import main

    config = tmp_path / "train.json"
    settings = _tiny_settings(coco_dir, tmp_path / "cli")
    settings.update(epochs=1, eval_interval=1, val_annotations=[settings["train_annotations"]],
                    val_images=[settings["train_images"]])  # fmt: skip
    config.write_text(json.dumps(settings))
    assert main(["train", "--config", str(config), "--epochs", "2", "--quiet"]) == 0
    assert "6 steps, 2 epochs" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "train_config.json").read_text())["epochs"] == 2
    assert (tmp_path / "cli" / "best" / "metrics.json").is_file()
    # resume with nothing left to do: the same result; without --resume the run is not overwritten
    assert main(["train", "--config", str(config), "--epochs", "2", "--resume", "--quiet"]) == 0
    assert main(["train", "--config", str(config), "--quiet"]) == 2
    assert "already holds a training run" in capsys.readouterr().err

    assert main(["train", "--model", "tiny", "--train-annotations", "x.json", "--train-images", "."]) == 2
    assert "missing --out" in capsys.readouterr().err
    code = main(["train", "--model", "tiny", "--train-annotations", str(tmp_path / "none.json"),
                 "--train-images", str(coco_dir), "--out", str(tmp_path / "e")])  # fmt: skip
    assert code == 2 and "annotation file not found" in capsys.readouterr().err
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "fresh"), "--resume"])
    assert code == 2 and "nothing to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_processes_match_one(coco_dir, tmp_path):
    """`torchrun --nproc_per_node 2` on the CPU (gloo): same steps as one process and, since the global batch and
    the augmentations are the same, the same weights up to float summation order."""
    args = [
        "train", "--model", "tiny", "--decoder", "simple", "--input-size", "64x48",
        "--train-annotations", str(coco_dir / "test_coco.json"), "--train-images", str(coco_dir),
        "--epochs", "2", "--batch-size", "4", "--warmup-iters", "2", "--workers", "0", "--device", "cpu",
        "--seed", "3", "--quiet",
    ]  # fmt: skip
    run_torchrun("vitpose.cli.train", [*args, "--out", str(tmp_path / "ddp")])
    from vitpose.cli.train import main

    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two = torch.load(tmp_path / "ddp" / "last" / "training_state.pt", weights_only=True)
    one = torch.load(tmp_path / "one" / "last" / "training_state.pt", weights_only=True)
    assert two["step"] == one["step"] == 6 and two["world_size"] == 2
    a, b = _weights(tmp_path / "ddp" / "last"), _weights(tmp_path / "one" / "last")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=key)
