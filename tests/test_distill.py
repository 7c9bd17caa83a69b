"""`vitpose distill`: the ViTPose paper's knowledge transfer from a large model to a small one.

Stage 1 trains the teacher's knowledge token and nothing else (bit for bit); stage 2 keeps the student's token bit for
bit; the loss is the hand computation; a token of another width is carried by the least-squares map; the runs resume
exactly, run under torchrun, and give ordinary checkpoints (PyTorch, reloaded, ONNX Runtime). The toy experiment: a
teacher fitted to the four shared COCO images teaches a smaller student, from its heatmaps alone (the student's
labels are scrambled), most of its AP.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, run_torchrun
from vitpose import VitPoseConfig, VitPoseForPoseEstimation
from vitpose.errors import VitPoseError
from vitpose.evaluation import evaluate
from vitpose.models.surgery import set_knowledge_token
from vitpose.training import DistillationLoss, distill, train
from vitpose.training.distill import (
    TOKEN_FILE,
    _training_crops,
    carry_token,
    load_token,
    save_token,
)
from vitpose.training.optim import layer_id, param_groups

TOKEN = "backbone.knowledge_token"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(width: int = 96, layers: int = 3, simple: bool = False) -> VitPoseConfig:
    return VitPoseConfig.from_preset(
        "tiny",
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 32),
        image_size=[64, 48],
        use_simple_decoder=simple,
    )


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    """A 96-wide teacher with the classic decoder (its BatchNorm statistics would move in train mode)."""
    torch.manual_seed(5)
    folder = tmp_path_factory.mktemp("teacher")
    VitPoseForPoseEstimation(_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def narrow_dir(tmp_path_factory) -> Path:
    """A 64-wide, 2-block student with the simple decoder."""
    torch.manual_seed(6)
    folder = tmp_path_factory.mktemp("narrow")
    VitPoseForPoseEstimation(_config(64, 2, simple=True)).save_pretrained(folder)
    return folder


def _settings(coco_dir: Path, out: Path, **extra) -> dict:
    settings = dict(
        train_annotations=str(coco_dir / "test_coco.json"), train_images=str(coco_dir), out=str(out), epochs=1,
        batch_size=4, lr=1e-3, warmup_iters=0, num_workers=0, progress=False, seed=3, token_epochs=2,
    )  # fmt: skip
    settings.update(extra)
    return settings


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# ---------------------------------------------------------------------------------------------- stage 1
def test_stage_one_trains_the_token_and_nothing_else(teacher_dir, narrow_dir, coco_dir, tmp_path):
    out = tmp_path / "run"
    result = distill(teacher=str(teacher_dir), model=str(narrow_dir), method="token", **_settings(coco_dir, out))
    before = _weights(teacher_dir)
    after = _weights(out / "token" / "last")
    key = "backbone.embeddings.knowledge_token"  # the hub format's name
    assert set(after) == set(before) | {key}
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved == [], moved  # weights and BatchNorm statistics, bit for bit
    assert any("running_mean" in k for k in before)  # the classic decoder's BatchNorm is among them
    # The token moved from its initialisation (as the model's own: truncated normal, std 0.02, drawn after the seed).
    torch.manual_seed(3)
    init = torch.empty(1, 1, 96)
    torch.nn.init.trunc_normal_(init, std=0.02, a=-0.04, b=0.04)
    token = after[key].reshape(-1)
    steps = result.token_run.step
    assert steps == 2 * 3  # 12 people, batch 4, 2 epochs
    change = (token - init.reshape(-1)).abs()
    assert float(change.max()) > 1e-4 and float(change.max()) <= 1e-3 * steps * 1.01  # Adam: at most lr a step
    saved, meta = load_token(out / TOKEN_FILE)
    assert torch.equal(saved, token) and meta["width"] == "96" and meta["teacher"] == str(teacher_dir)
    assert result.token is not None and torch.equal(result.token, token)
    assert (out / "token" / "log.csv").is_file() and (out / "token" / "training.png").is_file()


def test_the_token_is_an_embedding_parameter_without_weight_decay():
    model = VitPoseForPoseEstimation(_config())
    set_knowledge_token(model)
    assert layer_id(TOKEN, 3) == 0 == layer_id("backbone.pos_embed", 3)
    group = next(g for g in param_groups(model, 1e-3, 0.1, 0.75) if TOKEN in g["names"])
    assert group["weight_decay"] == 0.0 and group["layer_id"] == 0


# ---------------------------------------------------------------------------------------------- stage 2
def test_stage_two_keeps_the_token_bit_identical_same_width(teacher_dir, coco_dir, tmp_path):
    torch.manual_seed(11)
    token = torch.randn(96) * 0.3
    save_token(tmp_path / "token.safetensors", token, teacher="test")
    out = tmp_path / "run"
    result = distill(
        teacher=str(teacher_dir), model="tiny", method="both", token=str(tmp_path / "token.safetensors"),
        input_size="64x48", **_settings(coco_dir, out, epochs=2),
    )  # fmt: skip
    assert result.token_run is None  # stage 1 skipped: the file's token
    student = _weights(out / "last")
    assert torch.equal(student["backbone.embeddings.knowledge_token"].reshape(-1), token)  # the width is the same
    assert result.student.model.backbone.knowledge_token.requires_grad is False
    config = json.loads((out / "last" / "config.json").read_text())
    assert config["backbone_config"]["knowledge_token"] is True
    logs = (out / "log.csv").read_text().splitlines()
    assert len(logs) == 3 and logs[0].startswith("epoch,step,lr,loss")


def test_stage_two_carries_a_wider_token_by_least_squares_and_freezes_it(teacher_dir, narrow_dir, coco_dir, tmp_path):
    torch.manual_seed(12)
    token = torch.randn(96) * 0.3
    save_token(tmp_path / "token.safetensors", token)
    out = tmp_path / "run"
    settings = _settings(coco_dir, out, epochs=2)
    distill(teacher=str(teacher_dir), model=str(narrow_dir), method="token", token=str(tmp_path / "token.safetensors"),
            **settings)  # fmt: skip
    teacher = VitPoseForPoseEstimation.from_pretrained(teacher_dir)
    student = VitPoseForPoseEstimation.from_pretrained(narrow_dir)
    from vitpose.training import TrainConfig

    crops = _training_crops(TrainConfig(model="x", **{k: settings[k] for k in ("train_annotations", "train_images",
                                                                            "out")}), student, 256)  # fmt: skip
    assert crops.shape == (12, 3, 64, 48)  # every person of the four images, unaugmented
    want = carry_token(token, teacher, student, crops)
    got = _weights(out / "last")["backbone.embeddings.knowledge_token"].reshape(-1)
    assert got.shape == (64,) and torch.equal(got, want)
    assert not torch.equal(_weights(out / "last")["backbone.embeddings.patch_embeddings.projection.weight"],
                           _weights(narrow_dir)["backbone.embeddings.patch_embeddings.projection.weight"])  # fmt: skip


def test_carry_token_recovers_an_exact_affine_relation():
    """A student whose embedded patch tokens are exactly E_t @ A + c receives the token t @ A + c."""
    torch.manual_seed(2)
    teacher = VitPoseForPoseEstimation(_config()).eval()
    student = VitPoseForPoseEstimation(_config(64, 2)).eval()
    a, c = torch.randn(96, 64) * 0.2, torch.randn(64) * 0.1
    with torch.no_grad():
        pt, ps = teacher.backbone.patch_embed.proj, student.backbone.patch_embed.proj
        ps.weight.copy_(torch.einsum("ichw,ij->jchw", pt.weight, a))
        ps.bias.copy_(pt.bias @ a + c)
        student.backbone.pos_embed.copy_(teacher.backbone.pos_embed @ a)
    pixels = torch.randn(16, 3, 64, 48)  # 16 x 12 = 192 tokens: more than the 97 unknowns per column
    with torch.no_grad():
        exact = teacher.backbone.embed_patches(pixels) @ a + c
        torch.testing.assert_close(student.backbone.embed_patches(pixels), exact, atol=1e-5, rtol=1e-5)
    token = torch.randn(96)
    torch.testing.assert_close(carry_token(token, teacher, student, pixels), token @ a + c, atol=1e-3, rtol=1e-3)
    same = VitPoseForPoseEstimation(_config()).eval()
    assert torch.equal(carry_token(token, teacher, same, pixels), token)  # same width: the token itself


# ---------------------------------------------------------------------------------------------- the loss
def test_distillation_loss_is_the_hand_computation():
    torch.manual_seed(4)
    teacher = VitPoseForPoseEstimation(_config()).eval()
    pixels = torch.randn(3, 3, 64, 48)
    batch = {
        "pixel_values": pixels,
        "labels": torch.rand(3, 17, 16, 12),
        "label_weights": (torch.rand(3, 17) > 0.3).float(),
        "dataset_index": torch.zeros(3, dtype=torch.long),
    }
    student = torch.randn(3, 17, 16, 12, requires_grad=True)
    outputs = type("Out", (), {"heatmaps": student, "num_keypoints": None})()
    loss, logs = DistillationLoss(teacher, gt_weight=0.3, distill_weight=2.0)(None, batch, outputs)
    with torch.no_grad():
        target = teacher(pixels).heatmaps
    w = batch["label_weights"][:, :, None, None]
    gt = ((w * (student - batch["labels"])) ** 2).sum() / (3 * 17 * 16 * 12)
    od = ((student - target) ** 2).sum() / (3 * 17 * 16 * 12)
    torch.testing.assert_close(loss, 0.3 * gt + 2.0 * od, rtol=1e-6, atol=0)
    torch.testing.assert_close(logs["gt_loss"], gt.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(logs["distill_loss"], od.detach(), rtol=1e-6, atol=0)
    loss.backward()  # the graph reaches the student only
    assert student.grad is not None and all(p.grad is None for p in teacher.parameters())
    only_teacher, logs = DistillationLoss(teacher, gt_weight=0.0)(None, batch, outputs)
    assert set(logs) == {"distill_loss"}
    torch.testing.assert_close(only_teacher, od, rtol=1e-6, atol=0)
    with torch.no_grad():  # the teacher's flip test: its heatmaps averaged with the mirrored crop's
        flipped = teacher(pixels, flip_test=True).heatmaps
    assert float((flipped - target).abs().max()) > 1e-6
    od_flip = ((student - flipped) ** 2).sum() / (3 * 17 * 16 * 12)
    torch.testing.assert_close(DistillationLoss(teacher, gt_weight=0.0, flip_test=True)(None, batch, outputs)[0],
                               od_flip, rtol=1e-6, atol=0)  # fmt: skip


def test_mixed_vitpose_plus_batches_leave_the_padded_keypoints_out():
    """A ViTPose++ batch with a COCO (17 keypoints) and an AI Challenger (14) sample: each sample's MSE over its own
    keypoints, as the labelled loss; the kept heatmaps give the same loss as the fresh ones."""
    from vitpose.training.model_setup import preset_config

    torch.manual_seed(8)
    teacher = VitPoseForPoseEstimation(preset_config("tiny+", input_size=(48, 64), decoder="simple")).eval()
    pixels = torch.randn(2, 3, 64, 48)
    index = torch.tensor([0, 1])
    batch = {"pixel_values": pixels, "dataset_index": index, "sample_index": torch.tensor([0, 1]),
             "labels": torch.zeros(2, 17, 16, 12), "label_weights": torch.zeros(2, 17)}  # fmt: skip
    student = torch.randn(2, 17, 16, 12)
    student[1, 14:] = 0  # the padding of the 14-keypoint sample, as the model gives it
    outputs = type("Out", (), {"heatmaps": student, "num_keypoints": torch.tensor([17, 14])})()
    with torch.no_grad():
        target = teacher(pixels, dataset_index=index).heatmaps
    assert target.shape == (2, 17, 16, 12) and float(target[1, 14:].abs().max()) == 0.0
    want = (((student[0] - target[0]) ** 2).sum() / (17 * 16 * 12) + ((student[1, :14] - target[1, :14]) ** 2).sum()
            / (14 * 16 * 12)) / 2  # fmt: skip
    fresh = DistillationLoss(teacher, gt_weight=0.0)(None, batch, outputs)[0]
    torch.testing.assert_close(fresh, want, rtol=1e-6, atol=0)
    kept = DistillationLoss(teacher, gt_weight=0.0, cache=True)
    kept(None, batch, outputs)
    assert [tuple(kept.cache[i].shape) for i in (0, 1)] == [(17, 16, 12), (17, 16, 12)]
    torch.testing.assert_close(kept(None, batch, outputs)[0], want, rtol=1e-6, atol=0)
    assert kept.teacher_crops == 2


def test_teacher_heatmaps_are_kept_per_sample_without_augmentation():
    torch.manual_seed(4)
    teacher = VitPoseForPoseEstimation(_config()).eval()
    pixels = torch.randn(4, 3, 64, 48)
    batch = {
        "pixel_values": pixels, "labels": torch.zeros(4, 17, 16, 12), "label_weights": torch.ones(4, 17),
        "dataset_index": torch.zeros(4, dtype=torch.long), "sample_index": torch.tensor([7, 2, 9, 4]),
    }  # fmt: skip
    outputs = type("Out", (), {"heatmaps": torch.zeros(4, 17, 16, 12), "num_keypoints": None})()
    kept = DistillationLoss(teacher, gt_weight=0.0, cache=True)
    first = kept(None, batch, outputs)[0]
    assert kept.teacher_crops == 4 and sorted(kept.cache) == [2, 4, 7, 9]
    # The next epoch, in another order and with other pixels: the kept heatmaps are used, the teacher does not run.
    order = torch.tensor([2, 0, 3, 1])
    again = {**{k: v[order] for k, v in batch.items()}, "pixel_values": torch.zeros(4, 3, 64, 48)}
    torch.testing.assert_close(kept(None, again, outputs)[0], first, rtol=1e-6, atol=0)
    assert kept.teacher_crops == 4
    with torch.no_grad():
        torch.testing.assert_close(kept.cache[9], teacher(pixels[2:3]).heatmaps[0], rtol=1e-5, atol=1e-6)
    bounded = DistillationLoss(teacher, gt_weight=0.0, cache=True, cache_bytes=2 * 17 * 16 * 12 * 4)
    bounded(None, batch, outputs)
    assert len(bounded.cache) == 2  # no more than the bound
    fresh = DistillationLoss(teacher, gt_weight=0.0)  # augmentation on: never kept
    fresh(None, batch, outputs)
    fresh(None, batch, outputs)
    assert fresh.teacher_crops == 8 and fresh.cache is None


# ---------------------------------------------------------------------------------------------- resume, files
def test_interrupted_stages_resume_to_the_uninterrupted_student(teacher_dir, narrow_dir, coco_dir, tmp_path):
    """Stopped in stage 1, then in stage 2 (augmentation on: the teacher runs on every augmented crop), resumed
    each time: the student is bit for bit the uninterrupted run's; it predicts the same through PyTorch, a reloaded
    checkpoint and ONNX Runtime."""
    common = dict(teacher=str(teacher_dir), model=str(narrow_dir), method="both", augment=True)
    whole = distill(**common, **_settings(coco_dir, tmp_path / "whole", epochs=2))
    assert not whole.interrupted and whole.student.step == 6

    out = tmp_path / "stopped"

    def stop_at(step: int, in_stage_two: bool):
        seen: list[int] = []  # the steps of this run; stage 1 ends at its step 6, stage 2 counts from 1 again

        def callback(state) -> None:
            if state.step == step and (6 in seen) == in_stage_two:
                state.request_stop()
            seen.append(state.step)

        return callback

    first = distill(**common, **_settings(coco_dir, out, epochs=2), callback=stop_at(2, False))
    assert first.interrupted and first.student is None and not (out / TOKEN_FILE).exists()
    with pytest.raises(VitPoseError, match="already holds a training run"):
        distill(**common, **_settings(coco_dir, out, epochs=2))
    second = distill(**common, **_settings(coco_dir, out, epochs=2, resume=True), callback=stop_at(4, True))
    assert second.interrupted and second.student is not None and second.student.step == 4
    third = distill(**common, **_settings(coco_dir, out, epochs=2, resume=True))
    assert not third.interrupted and third.student.step == 6
    assert torch.equal(load_token(out / TOKEN_FILE)[0], load_token(tmp_path / "whole" / TOKEN_FILE)[0])
    a, b = _weights(out / "last"), _weights(tmp_path / "whole" / "last")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    # log.csv: the loss's parts as epoch means, the same after the interruptions (their sums are in last/).
    import csv

    def log(run: Path) -> list[dict]:
        with (run / "log.csv").open() as f:
            return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]

    assert log(out) == log(tmp_path / "whole")
    rows = log(out)
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(float(r["gt_loss"]) > 0 for r in rows)
    assert all(float(r["loss"]) == pytest.approx(float(r["gt_loss"]) + float(r["distill_loss"])) for r in rows)

    # An ordinary checkpoint: the same heatmaps in PyTorch, reloaded, and in ONNX Runtime (the token in the graph).
    pytest.importorskip("onnxruntime")
    from vitpose.export import export_onnx
    from vitpose.inference.backends.onnx import OnnxPoseModel

    model = whole.student.model.eval()
    reloaded = VitPoseForPoseEstimation.from_pretrained(tmp_path / "whole" / "last").eval()
    pixels = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        want = model(pixels).heatmaps
        torch.testing.assert_close(reloaded(pixels).heatmaps, want, rtol=0, atol=0)
    export_onnx(reloaded, tmp_path / "student.onnx")
    got = OnnxPoseModel(tmp_path / "student.onnx", config=reloaded.config)(pixels).heatmaps
    torch.testing.assert_close(torch.as_tensor(got), want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the token matters in that graph
        reloaded.backbone.knowledge_token.add_(torch.randn_like(reloaded.backbone.knowledge_token))
        assert float((reloaded(pixels).heatmaps - want).abs().max()) > 1e-4
    # ... and for the commands: vitpose predict and vitpose eval load it as any checkpoint.
    from vitpose.cli import main

    image = coco_dir / "000000000785.jpg"
    assert main(["predict", str(image), "--model", str(tmp_path / "whole" / "last"), "--detector", "full-image",
                 "--device", "cpu", "--out", str(tmp_path / "pred")]) == 0  # fmt: skip
    assert len(json.loads((tmp_path / "pred" / "predictions.json").read_text())) == 1
    report = evaluate(tmp_path / "whole" / "last", coco_dir / "test_coco.json", coco_dir)
    assert report.metrics["AP"] == pytest.approx(evaluate(model, coco_dir / "test_coco.json", coco_dir).metrics["AP"])


def test_bad_settings_are_refused_with_a_clear_message(teacher_dir, coco_dir, tmp_path):
    settings = _settings(coco_dir, tmp_path / "run")
    with pytest.raises(VitPoseError, match="teacher is required"):
        distill(model="tiny", **settings)
    with pytest.raises(VitPoseError, match="method must be one of token, output, both"):
        distill(teacher=str(teacher_dir), model="tiny", method="heatmaps", **settings)
    with pytest.raises(VitPoseError, match="not the preset 'base'"):
        distill(teacher="base", model="tiny", method="output", **settings)
    with pytest.raises(VitPoseError, match="both 0"):
        distill(teacher=str(teacher_dir), model="tiny", method="output", gt_weight=0, distill_weight=0, **settings)
    with pytest.raises(VitPoseError, match="nothing to resume"):
        distill(teacher=str(teacher_dir), model="tiny", **{**settings, "resume": True})
    (tmp_path / "other.safetensors").write_bytes(b"not a token")
    with pytest.raises(VitPoseError, match="not a knowledge token file"):
        distill(teacher=str(teacher_dir), model="tiny", token=str(tmp_path / "other.safetensors"), **settings)
    save_token(tmp_path / "short.safetensors", torch.ones(10))
    with pytest.raises(VitPoseError, match="10 values but the teacher's width is 96"):
        distill(teacher=str(teacher_dir), model="tiny", token=str(tmp_path / "short.safetensors"),
                **{**settings, "input_size": "64x48"})  # fmt: skip
    # A teacher whose head does not fit the data: its head would be replaced, which would destroy it.
    dots = tmp_path / "dots.json"
    data = json.loads((coco_dir / "test_coco.json").read_text())
    data["annotations"] = [{**a, "keypoints": a["keypoints"][:15], "num_keypoints": 5} for a in data["annotations"]]
    dots.write_text(json.dumps(data))
    spec = {"name": "five", "keypoints": ["a", "b", "c", "d", "e"], "sigmas": [0.05] * 5}
    (tmp_path / "five.json").write_text(json.dumps(spec))
    with pytest.raises(VitPoseError, match="do not fit the training data"):
        distill(teacher=str(teacher_dir), model="tiny", method="token",
                **{**settings, "train_annotations": str(dots), "datasets": [str(tmp_path / "five.json")],
                   "out": str(tmp_path / "five")})  # fmt: skip
    # Teacher and student must see the same crops: the same input size.
    with pytest.raises(VitPoseError, match="same input size"):
        distill(teacher=str(teacher_dir), model="tiny", method="output", **{**settings, "out": str(tmp_path / "s")})


def test_cli_distill_and_its_errors(teacher_dir, coco_dir, tmp_path, capsys):
    from vitpose.cli import main

    args = [
        "distill", "--teacher", str(teacher_dir), "--student", "tiny", "--input-size", "64x48", "--method", "output",
        "--train-annotations", str(coco_dir / "test_coco.json"), "--train-images", str(coco_dir), "--epochs", "1",
        "--batch-size", "4", "--warmup-iters", "0", "--workers", "0", "--device", "cpu", "--teacher-flip-test",
        "--quiet", "--no-augment",
    ]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("student: 3 steps, 1 epochs") and str(tmp_path / "run" / "last") in out
    saved = json.loads((tmp_path / "run" / "distill_config.json").read_text())
    assert saved["teacher"] == str(teacher_dir) and saved["method"] == "output" and saved["resume"] is False
    assert saved["teacher_flip_test"] is True
    assert main(["distill", "--config", str(tmp_path / "run" / "distill_config.json"), "--resume"]) == 0
    capsys.readouterr()
    import shutil

    shutil.copytree(teacher_dir, tmp_path / "large" / "last")  # a teacher in the last/ of its own training run
    over = [a if a != str(teacher_dir) else str(tmp_path / "large" / "last") for a in args]
    assert main([*over, "--out", str(tmp_path / "large")]) == 2  # the student's last/ would replace the teacher
    assert "would overwrite the --teacher checkpoint" in capsys.readouterr().err
    for wrong, message in ((["--dtype", "float16"], "--amp"), (["--gt-weight", "-1"], "expected a number >= 0")):
        with pytest.raises(SystemExit) as stop:  # argparse's own refusal: its usage line and exit code 2
            main([*args, "--out", str(tmp_path / "x"), *wrong])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert main(["distill", "--teacher", str(teacher_dir), "--out", str(tmp_path / "z")]) == 2
    assert "missing --student, --train-annotations, --train-images" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_torchrun_two_processes_distill_like_one(teacher_dir, narrow_dir, coco_dir, tmp_path):
    """Both stages in one torchrun (one process group for the two trainings): the same student as one process, up
    to float summation order."""
    args = [
        "distill", "--teacher", str(teacher_dir), "--student", str(narrow_dir),
        "--train-annotations", str(coco_dir / "test_coco.json"), "--train-images", str(coco_dir),
        "--epochs", "2", "--token-epochs", "2", "--batch-size", "4", "--warmup-iters", "2", "--workers", "0",
        "--device", "cpu", "--seed", "3", "--quiet",
    ]  # fmt: skip
    run_torchrun("vitpose.cli.distill", [*args, "--out", str(tmp_path / "ddp")])
    from vitpose.cli.distill import main

    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two = torch.load(tmp_path / "ddp" / "last" / "training_state.pt", weights_only=True)
    assert two["step"] == 6 and two["world_size"] == 2
    tokens = [load_token(tmp_path / run / TOKEN_FILE)[0] for run in ("ddp", "one")]
    torch.testing.assert_close(*tokens, atol=1e-6, rtol=1e-5)
    a, b = _weights(tmp_path / "ddp" / "last"), _weights(tmp_path / "one" / "last")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.slow
def test_a_fitted_teacher_teaches_a_smaller_student_from_its_heatmaps_alone(coco_dir, tmp_path):
    """The toy experiment. A tiny teacher (width 96, 3 blocks) fitted to the four shared COCO images (12 people,
    180 steps, AP 1.0 measured); a student of width 64 and 2 blocks trained on the same crops by output distillation
    alone: its labels are scrambled (random keypoints) and weighted 0, so everything it learns comes from the
    teacher's heatmaps. Measured: student AP 0.72 against the teacher's 1.0 (the same student trained on the true
    labels: 0.79; on the scrambled labels alone: 0.0). examples/distill_tiny_coco.py measures it over seeds."""
    ann = str(coco_dir / "test_coco.json")
    recipe = dict(
        train_images=str(coco_dir), epochs=180, batch_size=12, lr=1e-3, warmup_iters=0, lr_steps=[], augment=False,
        eval_interval=0, checkpoint_interval=180, num_workers=0, progress=False,
    )  # fmt: skip
    teacher = train(model="tiny", decoder="simple", input_size=[96, 128], train_annotations=ann,
                    val_annotations=ann, val_images=str(coco_dir), out=str(tmp_path / "teacher"), **recipe)  # fmt: skip
    teacher_ap = teacher.best["AP"]
    assert teacher_ap >= 0.9
    data = json.loads(Path(ann).read_text())
    rng = random.Random(0)
    for a in data["annotations"]:  # labels that teach nothing
        a["keypoints"] = [rng.uniform(0, 400) if i % 3 < 2 else 2 for i in range(51)]
    (tmp_path / "scrambled.json").write_text(json.dumps(data))
    torch.manual_seed(0)
    config = VitPoseConfig.from_preset("tiny", hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       use_simple_decoder=True, image_size=[128, 96])  # fmt: skip
    VitPoseForPoseEstimation(config).save_pretrained(tmp_path / "student0")
    result = distill(teacher=str(tmp_path / "teacher" / "last"), model=str(tmp_path / "student0"), method="output",
                     gt_weight=0.0, train_annotations=str(tmp_path / "scrambled.json"), out=str(tmp_path / "student"),
                     **recipe)  # fmt: skip
    student_ap = evaluate(result.student.model, ann, coco_dir).metrics["AP"]
    assert student_ap >= 0.65 * teacher_ap, (student_ap, teacher_ap)
    scrambled_ap = evaluate(
        train(model=str(tmp_path / "student0"), train_annotations=str(tmp_path / "scrambled.json"),
              out=str(tmp_path / "labels"), **recipe).model, ann, coco_dir,
    ).metrics["AP"]  # fmt: skip
    assert scrambled_ap < 0.1  # the labels alone teach nothing: the AP came from the teacher


def test_the_distillation_example_prints_its_table(coco_dir, tmp_path, capsys):
    """examples/distill_tiny_coco.py (the README's measured table), cut to a few steps: every row is there."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("distill_example", ROOT / "examples" / "distill_tiny_coco.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    argv = ["--data", str(coco_dir), "--out", str(tmp_path / "runs"), "--epochs", "2", "--token-epochs", "1",
            "--seeds", "1"]  # fmt: skip
    assert example.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | AP on the 4 images (mean of 1 seeds") and len(lines) == 2 + 1 + 4
    assert [line.split(" | ")[0][2:] for line in lines[2:]] == ["teacher (width 96, 3 blocks)"] + [
        name for name, _ in example.STUDENTS
    ]
    assert all(0.0 <= float(line.split(" | ")[1]) <= 1.0 for line in lines[2:])
    assert (tmp_path / "runs" / "both_0" / "knowledge_token.safetensors").is_file()


def test_unlabelled_boxes_learn_from_the_teacher_alone(teacher_dir, coco_dir, tmp_path):
    """--unlabelled: annotations with a box and no keypoints (the 12 people's keypoints removed, and the 2 boxes the
    file never labelled) are trained on from the teacher's heatmaps; with gt_weight 0 the student is bit for bit
    the one trained on the labelled file, so no label was used (augmentation off: the half-body draw, as the
    original's, depends on how many keypoints are labelled)."""
    from vitpose.training import KeypointDataset

    data = json.loads((coco_dir / "test_coco.json").read_text())
    for a in data["annotations"]:
        del a["keypoints"], a["num_keypoints"]
    (tmp_path / "boxes.json").write_text(json.dumps(data))
    boxes = KeypointDataset(tmp_path / "boxes.json", coco_dir, "coco", input_size=(48, 64), unlabelled=True)
    assert len(boxes) == 14 and float(boxes[0]["label_weights"].sum()) == 0.0
    with pytest.raises(VitPoseError, match="no annotation with labelled keypoints"):
        KeypointDataset(tmp_path / "boxes.json", coco_dir, "coco", input_size=(48, 64))
    common = dict(teacher=str(teacher_dir), model="tiny", input_size="64x48", method="output", gt_weight=0.0,
                  unlabelled=True, datasets=["coco"], augment=False)  # fmt: skip
    labelled = distill(**common, **_settings(coco_dir, tmp_path / "labelled"))
    unlabelled = distill(
        **common, **_settings(coco_dir, tmp_path / "boxes", train_annotations=str(tmp_path / "boxes.json"))
    )
    assert labelled.student.step == unlabelled.student.step == 4  # 14 boxes, batch 4
    a, b = _weights(tmp_path / "labelled" / "last"), _weights(tmp_path / "boxes" / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(VitPoseError, match="teach the default loss nothing"):
        train(model="tiny", unlabelled=True, **{k: v for k, v in _settings(coco_dir, tmp_path / "t").items()
                                                if k != "token_epochs"})  # fmt: skip
    with pytest.raises(VitPoseError, match="method output or both"):
        distill(**{**common, "method": "token"}, **_settings(coco_dir, tmp_path / "x"))
