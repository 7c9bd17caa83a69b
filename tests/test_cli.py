"""The `vitpose` command line as a whole: one --dataset parser for every command, the shared option groups, the one
error handler, and the regression tests of the bugs that came from each command parsing for itself."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import ROOT, make_hf_model, save_hf
from vitpose.cli import build_parser
from vitpose.cli import main as cli_main
from vitpose.cli.common import run
from vitpose.datasets import DatasetInfo, get_dataset_info, parse_dataset
from vitpose.errors import DatasetError, VitPoseError

DET_FILE = "test_coco_det_AP_H_56.json"
ANN_FILE = "test_coco.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture
def custom_dataset(tmp_path):
    path = tmp_path / "hand3.json"
    path.write_text(json.dumps({"name": "hand3", "keypoints": ["wrist", "tip", "base"], "sigmas": [0.05] * 3}))
    return path


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


# ---------------------------------------------------------------------------------------------- --dataset
def test_parse_dataset_names_indices_and_files(custom_dataset, tmp_path):
    assert parse_dataset("coco") == "coco" and parse_dataset("AP-10K") == "ap10k"
    assert parse_dataset("coco_wholebody") == "wholebody" and parse_dataset(" aic ") == "aic"
    assert [parse_dataset(str(i)) for i in range(6)] == [0, 1, 2, 3, 4, 5] and parse_dataset(4) == 4
    info = parse_dataset(str(custom_dataset))
    assert isinstance(info, DatasetInfo) and info.name == "hand3" and info.num_keypoints == 3
    assert parse_dataset(custom_dataset) == info and parse_dataset(info) is info
    for bad, message in (
        ("6", r"unknown data set 6; valid names: coco, .*valid indices: 0 \(coco\)"),
        ("-1", r"unknown data set '-1'"),
        ("cocoa", r"unknown data set 'cocoa'.*custom data set JSON"),
        (str(tmp_path / "missing.json"), r"data set description not found"),
    ):
        with pytest.raises(DatasetError, match=message):
            parse_dataset(bad)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DatasetError, match="cannot read it as JSON"):
        parse_dataset(str(tmp_path / "broken.json"))


def test_every_command_reads_dataset_alike(custom_dataset):
    """Bug 2: predict and eval refused `--dataset 3`, which video, export and train took."""
    parser = build_parser()
    common = {
        "predict": ["predict", "a.jpg"],
        "eval": ["eval", "--annotations", "a.json"],
        "video": ["video", "v.mp4"],
        "export": ["export", "onnx", "--model", "m", "--out", "m.onnx"],
    }
    for text, want in (("3", 3), ("AP-10K", "ap10k"), ("wholebody", "wholebody")):
        for name, argv in common.items():
            assert parser.parse_args([*argv, "--dataset", text]).dataset == want, (name, text)
        assert parser.parse_args(["train", "--dataset", text, "coco"]).datasets == [want, "coco"]
        assert parser.parse_args(["convert", "a.pth", "out", "--fold", text]).fold == want
    for name, argv in common.items():
        assert parser.parse_args([*argv, "--dataset", str(custom_dataset)]).dataset.name == "hand3", name
    # train keeps the file's path, so that the train_config.json written for --resume names the file
    assert parser.parse_args(["train", "--dataset", str(custom_dataset)]).datasets == [str(custom_dataset)]


@pytest.mark.parametrize("command", ["predict", "eval", "video", "export", "train", "convert"])
def test_unknown_dataset_is_a_usage_error_naming_the_valid_ones(command, capsys):
    argv = {
        "predict": ["predict", "a.jpg", "--dataset", "7"],
        "eval": ["eval", "--annotations", "a.json", "--dataset", "7"],
        "video": ["video", "v.mp4", "--dataset", "7"],
        "export": ["export", "onnx", "--model", "m", "--out", "m.onnx", "--dataset", "7"],
        "train": ["train", "--dataset", "7"],
        "convert": ["convert", "a.pth", "out", "--fold", "7"],
    }[command]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown data set 7; valid names: coco, aic, mpii, ap10k, apt36k, wholebody" in err
    assert "Traceback" not in err


def test_predict_and_eval_take_a_dataset_index(checkpoint, coco_dir, tmp_path, capsys):
    """Bug 2: `--dataset 3` is AP-10K for predict and eval too (a dense 17-keypoint model: it declares the layout)."""
    ap10k = coco_dir.parent / "ap10k"
    outs = {}
    for text in ("3", "ap10k"):
        out = tmp_path / f"predict_{text}"
        argv = ["predict", str(ap10k), "--model", str(checkpoint), "--detector", "full-image", "--device", "cpu"]
        assert cli_main([*argv, "--dataset", text, "--out", str(out)]) == 0
        outs[text] = json.loads((out / "predictions.json").read_text())
    assert outs["3"] == outs["ap10k"] and len(outs["3"]) > 0
    metrics = {}
    for text in ("3", "ap10k"):
        argv = ["eval", "--model", str(checkpoint), "--annotations", str(ap10k / "test_ap10k.json"), "--images"]
        capsys.readouterr()
        assert cli_main([*argv, str(ap10k), "--device", "cpu", "--dataset", text, "--json"]) == 0
        metrics[text] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["3"] == metrics["ap10k"] and "AP" in metrics["3"]


# ---------------------------------------------------------------------------------------------- option groups
def test_shared_options_have_one_name_and_one_help_text():
    commands = _subcommands()
    shared = {
        "--model": ["predict", "eval", "video", "export", "train"],
        "--device": ["predict", "eval", "video", "train"],
        "--batch-size": ["predict", "eval", "video"],
        "--flip-test": ["predict", "eval", "video"],
        "--dataset": ["predict", "video", "export"],
        "--detector": ["predict", "video"],
        "--det-thr": ["predict", "eval", "video"],
        "--nms-thr": ["predict", "eval", "video"],
        "--no-nms": ["predict", "eval", "video"],
        "--kpt-thr": ["predict", "video"],
    }
    for flag, names in shared.items():
        helps = set()
        for name in names:
            action = _option(commands[name], flag)
            assert action is not None, (name, flag)
            helps.add(action.help.split(" (")[0].split(";")[0])  # the text before the default and the notes
        assert len(helps) == 1, (flag, helps)
    # Thresholds are --*-thr everywhere; no other spelling is left.
    for name, parser in commands.items():
        for action in parser._actions:
            for flag in action.option_strings:
                assert "threshold" not in flag and "min-score" not in flag, (name, flag)


def test_defaults_are_unchanged():
    commands = _subcommands()
    predict = commands["predict"].parse_args(["a.jpg"])
    assert (predict.det_thr, predict.kpt_thr, predict.nms_thr, predict.batch_size) == (0.3, 0.3, 0.9, 32)
    assert (predict.model, predict.device, predict.detector) == ("usyd-community/vitpose-base-simple", "auto", "auto")
    ev = commands["eval"].parse_args(["--annotations", "a.json"])
    assert (ev.det_thr, ev.nms_thr, ev.model, ev.dataset) == (0.0, 0.9, None, None)
    video = commands["video"].parse_args(["v.mp4"])
    assert (video.det_thr, video.kpt_thr, video.nms_thr, video.no_nms) == (0.3, 0.3, 0.9, False)
    train = commands["train"].parse_args([])
    assert not {"model", "device", "batch_size", "flip_test", "datasets"} & set(vars(train))  # from --config


# ---------------------------------------------------------------------------------------------- error handler
def _namespace(func, command="predict"):
    return argparse.Namespace(func=func, command=command)


def test_user_errors_are_one_line_with_exit_2(capsys):
    def fails(error):
        def func(args):
            raise error

        return func

    for error in (VitPoseError("bad input\nsecond line"), DatasetError("no such data set"), FileNotFoundError("x")):
        assert run(_namespace(fails(error))) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("vitpose predict: error: ") and "Traceback" not in err
    assert "bad input second line" not in err  # the last one checked; the first is joined into one line
    assert run(_namespace(fails(VitPoseError("a\n  b")), "eval")) == 2
    assert capsys.readouterr().err == "vitpose eval: error: a b\n"


def test_other_exceptions_are_bugs_and_keep_their_traceback():
    def buggy(args):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run(_namespace(buggy))
    with pytest.raises(TypeError):
        run(_namespace(lambda args: None + 1))


def test_warnings_are_one_plain_line(capsys):
    import warnings

    def warns(args):
        warnings.warn("look out", UserWarning, stacklevel=1)
        return 0

    assert run(_namespace(warns, "video")) == 0
    assert capsys.readouterr().err == "vitpose video: warning: look out\n"


def test_torchrun_entry_uses_the_same_handler(capsys, monkeypatch):
    from vitpose.cli import common, distill, train

    handled = []
    monkeypatch.setattr(common, "run", lambda args: handled.append(args.command) or run(args))
    assert train.main(["train", "--model", "tiny"]) == 2
    assert capsys.readouterr().err.startswith("vitpose train: error: missing --train-annotations")
    assert distill.main(["distill", "--student", "tiny"]) == 2
    assert capsys.readouterr().err.startswith("vitpose distill: error: missing --train-annotations")
    assert handled == ["train", "distill"]  # both through the one error handler


@pytest.mark.slow
def test_python_dash_m_train_is_the_torchrun_entry_with_the_same_errors():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "vitpose.cli.train", "train", "--model", "tiny"],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr == "vitpose train: error: missing --train-annotations, --train-images, --out (or give them in a "
        "--config file)\n"
    )  # one line: no runpy warning about vitpose.cli importing the module first


@pytest.mark.slow
def test_rtdetr_without_its_weights_is_one_line_and_exit_2(checkpoint, coco_dir, tmp_path):
    """Bug 1: `--detector rtdetr` offline (transformers installed, the weights not cached) printed a traceback."""
    pytest.importorskip("transformers")
    home = tmp_path / "hf_home"
    home.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(home)}
    env.pop("HF_HUB_CACHE", None)
    env["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "vitpose", "predict", str(coco_dir / "000000000785.jpg"), "--model", str(checkpoint),
         "--detector", "rtdetr", "--device", "cpu", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("vitpose predict: error: could not load the RT-DETR detector")
    assert "--detector hog" in errors[0] and "--boxes FILE" in errors[0]  # it says what to do instead


# ---------------------------------------------------------------------------------------------- degenerate boxes
def _with_degenerate_boxes(coco_dir, tmp_path):
    """The shared detections file with three entries whose boxes cannot hold a person: w = 0, h < 0, NaN."""
    entries = json.loads((coco_dir / DET_FILE).read_text())
    image_id = entries[0]["image_id"]
    bad = [
        {"image_id": image_id, "category_id": 1, "bbox": [10, 10, 0, 50], "score": 0.9},
        {"image_id": image_id, "category_id": 1, "bbox": [10, 10, 30, -5], "score": 0.9},
        {"image_id": image_id, "category_id": 1, "bbox": [math.nan, 10, 30, 50], "score": 0.9},
    ]
    path = tmp_path / "with_degenerate.json"
    path.write_text(json.dumps([bad[0], *entries[:3], bad[1], *entries[3:], bad[2]]))  # NaN: Python's JSON
    return path, len(entries) + 3, [0, 4, len(entries) + 2]


@pytest.mark.slow
def test_degenerate_boxes_are_skipped_and_reported_alike_by_predict_and_eval(checkpoint, coco_dir, tmp_path, capsys):
    """Bug 7: --boxes refused degenerate boxes while eval --detections skipped them quietly: now one policy."""
    path, total, indices = _with_degenerate_boxes(coco_dir, tmp_path)
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(json.loads((coco_dir / DET_FILE).read_text())))
    want = (
        f"{path}: skipped 3 of {total} detections whose box cannot hold a person: entry {indices[0]} [10, 10, 0, 50] "
        f"has width 0 <= 0, entry {indices[1]} [10, 10, 30, -5] has height -5 <= 0, entry {indices[2]} "
        "[nan, 10, 30, 50] is not finite (boxes are [x, y, width, height], not [x1, y1, x2, y2])"
    )
    ann = coco_dir / ANN_FILE
    outputs = {}
    for name, boxes in (("degenerate", path), ("clean", clean)):
        out = tmp_path / f"predict_{name}"
        argv = ["predict", str(coco_dir), "--model", str(checkpoint), "--boxes", str(boxes), "--annotations", str(ann)]
        assert cli_main([*argv, "--det-thr", "0", "--device", "cpu", "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert (f"vitpose predict: warning: {want}" in err) == (name == "degenerate"), err[-2000:]
        outputs[name] = json.loads((out / "predictions.json").read_text())
    assert outputs["degenerate"] == outputs["clean"]  # the skipped entries change nothing else

    metrics = {}
    for name, boxes in (("degenerate", path), ("clean", clean)):
        argv = ["eval", "--model", str(checkpoint), "--annotations", str(ann), "--images", str(coco_dir)]
        assert cli_main([*argv, "--detections", str(boxes), "--device", "cpu", "--json"]) == 0
        captured = capsys.readouterr()
        assert (f"vitpose eval: warning: {want}" in captured.err) == (name == "degenerate"), captured.err[-2000:]
        metrics[name] = json.loads(captured.out.strip().splitlines()[-1])
    assert metrics["degenerate"] == metrics["clean"]


def test_a_malformed_box_is_still_an_error_in_both(checkpoint, coco_dir, tmp_path, capsys):
    entries = json.loads((coco_dir / DET_FILE).read_text())
    entries[2]["bbox"] = [1, 2, 3]
    path = tmp_path / "malformed.json"
    path.write_text(json.dumps(entries))
    ann = coco_dir / ANN_FILE
    argv = ["predict", str(coco_dir), "--model", str(checkpoint), "--boxes", str(path), "--annotations", str(ann)]
    assert cli_main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "entry 2: bbox must be a list of 4 numbers" in capsys.readouterr().err
    argv = ["eval", "--model", str(checkpoint), "--annotations", str(ann), "--images", str(coco_dir)]
    assert cli_main([*argv, "--detections", str(path)]) == 2
    assert "entry 2: bbox must be a list of 4 numbers" in capsys.readouterr().err  # one parser, one message


def test_dataset_info_of_a_registry_name_is_the_registry_entry():
    assert get_dataset_info(parse_dataset("AI-Challenger")) is get_dataset_info("aic")
