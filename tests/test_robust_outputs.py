"""No command's output replaces one of its inputs, and result files are written atomically.

Each command is given an output that is one of its inputs, by several spellings (the same path, `./a` against `a`,
a symbolic link, a hard link): it refuses with one line naming both and saying what to do, exit code 2, before it
writes anything (the inputs are unchanged byte for byte, no output appears); the refusals come before the model
loads (a missing --model is never reached).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import COCO_DIR, make_hf_model, save_hf
from vitpose.cli import main as cli_main
from vitpose.errors import OutputError
from vitpose.outputs import InputFiles, atomic_open, atomic_write_text, progress_bar, protected, stop_signals

SHARED = sorted(COCO_DIR.glob("*.jpg"))
MISSING_MODEL = "/nonexistent/never-loaded"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in SHARED[:2]:
        shutil.copy(path, folder / path.name)
    return folder


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _refused(capsys, argv: list, *expected: str) -> str:
    code = cli_main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "error:" in lines[0] and "nothing was written" in lines[0], err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------- predict
@pytest.mark.parametrize("spelling", ["same", "dot", "symlink", "file-input"])
def test_predict_refuses_out_that_holds_the_inputs(spelling, photos, tmp_path, capsys, monkeypatch):
    before = _digest(tmp_path)
    monkeypatch.chdir(tmp_path)
    inputs, out = [photos], photos
    if spelling == "dot":
        inputs, out = ["./photos"], "photos/../photos"
    elif spelling == "symlink":
        (tmp_path / "link").symlink_to(photos, target_is_directory=True)
        out = "link"
    elif spelling == "file-input":
        inputs = [f"photos/{SHARED[1].name}"]
    line = _refused(
        capsys,
        ["predict", *inputs, "--model", MISSING_MODEL, "--out", out],
        "would overwrite the input image",
        SHARED[1].name if spelling == "file-input" else SHARED[0].name,
        "choose another --out folder",
    )
    assert line.startswith("vitpose predict: error: --out ")
    assert _digest(tmp_path) == before  # nothing written (nor predictions.json)
    assert not (photos / "predictions.json").exists()


def test_predict_refuses_out_over_its_boxes_file(photos, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    boxes = out / "predictions.json"  # an earlier run's output fed back as --boxes
    shutil.copy(COCO_DIR / "test_coco_det_AP_H_56.json", boxes)
    before = boxes.read_bytes()
    _refused(
        capsys,
        ["predict", photos, "--model", MISSING_MODEL, "--boxes", boxes, "--out", out],
        "would overwrite the --boxes file",
    )
    assert boxes.read_bytes() == before


def test_predict_refuses_out_over_a_hard_link_of_an_input(photos, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    os.link(photos / SHARED[0].name, out / SHARED[0].name)  # the same file under another path
    _refused(capsys, ["predict", photos, "--model", MISSING_MODEL, "--out", out], "would overwrite the input image")


@pytest.mark.slow
def test_predict_same_names_in_one_run_get_unique_files(checkpoint, tmp_path):
    a, b = tmp_path / "cam1", tmp_path / "cam2"
    a.mkdir()
    b.mkdir()
    shutil.copy(SHARED[0], a / "x.jpg")
    shutil.copy(SHARED[1], b / "x.jpg")
    out = tmp_path / "out"
    # The output folder may be beside the inputs, and even hold other images: only inputs are protected.
    code = cli_main([
        "predict", str(a / "x.jpg"), str(b / "x.jpg"), "--model", str(checkpoint), "--detector", "full-image",
        "--device", "cpu", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json", "x.jpg", "x_1.jpg"]  # no state file left
    names = {p["file_name"] for p in json.loads((out / "predictions.json").read_text())}
    assert names == {str(a / "x.jpg"), str(b / "x.jpg")}
    assert (out / "x.jpg").read_bytes() != (out / "x_1.jpg").read_bytes()


# ---------------------------------------------------------------------------------------------- video
@pytest.fixture
def clip(tmp_path) -> Path:
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--out", "{clip}"], "--out: writing {clip} would overwrite the input video"),
        (["--out", "{dot}"], "would overwrite the input video"),
        (["--out", "{link}"], "would overwrite the input video"),
        (["--out", "{other}", "--jsonl", "{clip}"], "--jsonl: writing {clip} would overwrite the input video"),
        (["--out", "{other}", "--jsonl", "{other}"], "--out and --jsonl name the same file"),
    ],
    ids=["out", "dot", "symlink", "jsonl", "out-is-jsonl"],
)
def test_video_refuses_outputs_over_the_input(options, expected, clip, tmp_path, capsys):
    (tmp_path / "link.avi").symlink_to(clip)
    names = {
        "clip": str(clip), "dot": f"{tmp_path}/./{clip.name}", "link": str(tmp_path / "link.avi"),
        "other": str(tmp_path / "other.avi"),
    }  # fmt: skip
    before = _digest(tmp_path)
    argv = ["video", clip, *(o.format(**names) for o in options), "--model", MISSING_MODEL]
    line = cli_main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert line == 2 and expected.format(**names) in err and len(err.strip().splitlines()) == 1, err
    assert _digest(tmp_path) == before


def test_video_refuses_an_image_of_the_sequence(photos, capsys):
    target = photos / SHARED[0].name
    assert cli_main(["video", str(photos), "--jsonl", str(target), "--model", MISSING_MODEL]) == 2
    assert "would overwrite the input image" in capsys.readouterr().err


def test_process_video_refuses_the_input_as_output(clip, checkpoint):
    from vitpose import PoseEstimator
    from vitpose.video import process_video

    before = clip.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image")
    with pytest.raises(OutputError, match="would overwrite the input video"):
        process_video(estimator, str(clip), out=str(clip), progress=False)
    with pytest.raises(OutputError, match="would overwrite the input video"):
        process_video(estimator, str(clip), jsonl=str(clip), progress=False)
    assert clip.read_bytes() == before


# ---------------------------------------------------------------------------------------------- eval
@pytest.mark.parametrize("target", ["annotations", "detections", "model", "image", "image-in-subfolder"])
def test_eval_refuses_out_over_an_input(target, checkpoint, tmp_path, capsys):
    images = tmp_path / "images"
    shutil.copytree(COCO_DIR, images)
    (images / "sub").mkdir()
    shutil.copy(SHARED[0], images / "sub" / "nested.jpg")
    model = tmp_path / "model"
    shutil.copytree(checkpoint, model)
    annotations, detections = images / "test_coco.json", images / "test_coco_det_AP_H_56.json"
    out = {
        "annotations": annotations, "detections": detections, "model": model / "config.json",
        "image": images / SHARED[0].name, "image-in-subfolder": images / "sub" / "nested.jpg",
    }[target]  # fmt: skip
    before = _digest(tmp_path)
    _refused(
        capsys,
        [
            "eval",
            "--model",
            model,
            "--annotations",
            annotations,
            "--detections",
            detections,
            "--images",
            images,
            "--out",
            out,
        ],
        "would overwrite",
        "choose another file name for the predictions",
    )
    assert _digest(tmp_path) == before


# ---------------------------------------------------------------------------------------------- export, convert, train
def test_export_refuses_out_over_the_checkpoint(checkpoint, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(checkpoint, model)
    before = _digest(tmp_path)
    for out in (model / "model.safetensors", model / "config.json"):
        _refused(capsys, ["export", "onnx", "--model", model, "--out", out], "would overwrite the --model checkpoint")
    # --int8 writes OUT.int8.onnx: checked too.
    (model / "m.int8.onnx").write_bytes(b"not a model")
    before = _digest(tmp_path)
    _refused(
        capsys,
        ["export", "onnx", "--model", model / "m.int8.onnx", "--out", model / "m.onnx", "--int8"],
        "m.int8.onnx would overwrite the --model checkpoint",
    )
    assert _digest(tmp_path) == before


@pytest.mark.slow
def test_convert_refuses_its_source_folder_and_writes_whole_files(checkpoint, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(checkpoint, model)
    before = _digest(tmp_path)
    for out in (model, f"{model}/.", tmp_path / "model" / ".." / "model"):
        _refused(capsys, ["convert", model, out], "would overwrite the source checkpoint", "convert into another")
    assert _digest(tmp_path) == before
    out = tmp_path / "converted"
    assert cli_main(["convert", str(model), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "model"]  # no staging folder left


def test_train_refuses_out_over_its_model_or_annotations(checkpoint, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    for path in checkpoint.iterdir():
        shutil.copy(path, run / "best" / path.name)
    annotations = tmp_path / "train.json"
    shutil.copy(COCO_DIR / "test_coco.json", annotations)
    common = ["--train-images", COCO_DIR, "--epochs", "1", "--device", "cpu"]
    before = _digest(tmp_path)
    _refused(
        capsys,
        ["train", "--model", run / "best", "--train-annotations", annotations, "--out", run, *common],
        f"writing {run / 'best'} would overwrite the --model checkpoint",
    )
    shutil.copy(annotations, run / "log.csv")  # (an odd name, but an input all the same)
    _refused(
        capsys,
        ["train", "--model", checkpoint, "--train-annotations", run / "log.csv", "--out", run, *common],
        "would overwrite the --train-annotations file",
    )
    assert _digest(tmp_path) == {**before, "run/log.csv": before["train.json"]}


# ---------------------------------------------------------------------------------------------- the helpers
def test_input_files_compare_real_paths_and_hard_links(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "l").symlink_to(tmp_path / "a")
    os.link(tmp_path / "a", tmp_path / "hard")
    inputs = InputFiles([("the input", "a")])
    for same in ("a", "./a", str(tmp_path / "a"), "sub/../a", "sub/l", "hard"):
        assert inputs.find(same) == ("the input", "a"), same
    for other in ("b", "sub", "a.json", "sub/a"):
        assert inputs.find(other) is None, other
    with pytest.raises(OutputError, match=r"--out x: writing \./a would overwrite the input a; nothing was written"):
        inputs.check_outputs(["./a"], option="--out x", hint="h")


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / "predictions.json"
    atomic_write_text(target, "[1]")
    assert target.read_text() == "[1]"
    for error in (KeyboardInterrupt(), OSError("disk full")):
        with pytest.raises(type(error)), atomic_open(target) as handle:
            handle.write("[1, 2")  # half a file
            raise error
        assert target.read_text() == "[1]"  # unchanged
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.json"]  # no temporary file left
    atomic_write_text(target, "[2]")
    assert target.read_text() == "[2]" and oct(target.stat().st_mode & 0o777) != "0o600"


def test_a_signal_inside_protected_waits_for_the_end_of_the_block():
    steps = []
    with stop_signals() as interruption, pytest.raises(KeyboardInterrupt):
        with protected():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("written")  # the block goes on
        steps.append("not reached")
    assert steps == ["written"] and interruption.signal == "SIGTERM"
    with stop_signals(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)  # outside protected(): at once
        for _ in range(1000):
            pass
        steps.append("not reached")
    with stop_signals():  # the last writes of a stopping run drop a second signal
        with protected(raise_pending=False):
            os.kill(os.getpid(), signal.SIGINT)
        steps.append("finished")
    assert steps == ["written", "finished"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handlers are restored


def test_a_signal_while_a_progress_bar_is_built_comes_after_it(monkeypatch, capsys):
    """Ctrl-C inside tqdm's constructor (found in CI: the signal came as `vitpose predict` set up) left a
    half-built bar whose destructor printed "Exception ignored ... AttributeError" under the command's message."""
    import tqdm

    built = []

    class Bar(tqdm.tqdm):
        def __init__(self, *args, **kwargs) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # the signal lands before the bar has its attributes
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    with stop_signals() as interruption, pytest.raises(KeyboardInterrupt):
        progress_bar(total=3, file=sys.stderr)
    assert interruption.signal == "Ctrl-C"
    assert len(built) == 1 and built[0].pos is not None  # whole: it closes cleanly
    built[0].close()
    with pytest.raises(KeyboardInterrupt), stop_signals():  # a plain tqdm would be cut in its constructor
        Bar(total=3, file=sys.stderr)
    assert len(built) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_json_text_is_always_strict_json():
    """What the commands write is valid JSON even when a value is NaN or infinite (a diverged loss): null."""
    import json
    import math

    from vitpose.outputs import json_text

    text = json_text({"loss": math.nan, "AP": [0.5, math.inf, -math.inf], "n": 3, "nested": ({"x": 1.25},)})
    assert json.loads(text) == {"loss": None, "AP": [0.5, None, None], "n": 3, "nested": [{"x": 1.25}]}
    assert "NaN" not in text and "Infinity" not in text
    assert json_text([1.0, 2.5], indent=None) == json.dumps([1.0, 2.5])  # finite values are written as json.dumps does
