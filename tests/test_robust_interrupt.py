"""Ctrl-C (SIGINT) and SIGTERM during `vitpose predict`, `eval` and `video`, sent to a real `python -m vitpose`
process at several points: the files left are valid, no finished result is lost, the exit code is 130 and the last
line says where the run stopped; `predict --resume` then completes to exactly (byte for byte) the output of an
uninterrupted run.

The signal is sent when the run shows it reached the point: a line of `predict`'s partial results file, the
progress bar of `eval`, a line of `video`'s JSON Lines; each wait is bounded. The runs are long enough (tens of
images) that the signal lands before the end; a run that ended first fails the test rather than passing it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import COCO_DIR, DATA, make_hf_model, require_shared, save_hf
from vitpose.cli import main as cli_main

pytestmark = pytest.mark.slow

N_IMAGES = 60  # long enough for the signal to land before the end (see `photos`: the second half is slow)
WAIT_S = 120  # the longest wait for a point of a run (start-up included) before the test fails
SHARED = sorted(COCO_DIR.glob("*.jpg"))
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """N_IMAGES copies of the shared COCO images (their four sizes in turn), in a folder of their own.

    The second half are the same photos enlarged to 12 megapixels: each costs tens of milliseconds to decode, draw
    and encode on any machine, so the run's second half lasts seconds however fast the first goes, and a signal sent
    at "half" lands before the end (the partial results grow in groups, every quarter of a second).
    """
    import cv2

    folder = tmp_path_factory.mktemp("photos")
    for i in range(N_IMAGES):
        source, target = SHARED[i % len(SHARED)], folder / f"img{i:02d}.jpg"
        if i < N_IMAGES // 2:
            shutil.copy(source, target)
        else:
            large = cv2.resize(cv2.imread(str(source)), (4000, 3000), interpolation=cv2.INTER_LINEAR)
            assert cv2.imwrite(str(target), large, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


class Run:
    """A `python -m vitpose ...` process with its stderr read as it comes (progress bars included)."""

    def __init__(self, *argv: object, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vitpose", *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            cwd=cwd,
        )
        self.err = ""
        self.out = ""
        self._readers = [threading.Thread(target=self._read, args=(name,), daemon=True) for name in ("err", "out")]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        stream = self.proc.stderr if name == "err" else self.proc.stdout
        assert stream is not None
        while chunk := stream.read(1):
            setattr(self, name, getattr(self, name) + chunk)

    def wait_for(self, what: str, ready) -> None:
        """Poll `ready()` until true; fail if the process ends first or after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while not ready():
            if self.proc.poll() is not None:
                self.finish()
                pytest.fail(f"the run ended (exit {self.proc.returncode}) before {what}:\n{self.err[-3000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no {what} after {WAIT_S} s:\n{self.err[-3000:]}")
            time.sleep(0.01)

    def finish(self) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) once the process ended (bounded)."""
        try:
            self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        for reader in self._readers:
            reader.join(timeout=10)
        return self.proc.returncode, self.out, self.err


def _lines(path: Path) -> int:
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:
        return 0


def _last_line(text: str) -> str:
    return [line for line in re.split(r"[\r\n]", text) if line.strip()][-1]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------------------------- predict
def _predict_args(photos: Path, checkpoint: Path, out: Path) -> list[object]:
    return [
        "predict", photos, "--model", checkpoint, "--detector", "full-image", "--device", "cpu", "--out", out,
        "--batch-size", "4",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(photos, checkpoint, tmp_path_factory) -> dict[str, bytes]:
    """The files of an uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "out"
    code, _, err = Run(*_predict_args(photos, checkpoint, out)).finish()
    assert code == 0, err
    return _tree(out)


# The points: the set-up done (the partial results file holds its header), the first image finished, half done.
POINTS = {"set-up": 1, "first image": 2, "half": N_IMAGES // 2 + 1}


@pytest.mark.parametrize(
    ("sig", "point"),
    [
        (signal.SIGINT, "first image"),
        (signal.SIGTERM, "first image"),
        (signal.SIGINT, "set-up"),
        (signal.SIGTERM, "half"),
    ],
    ids=["SIGINT-first", "SIGTERM-first", "SIGINT-setup", "SIGTERM-half"],
)
def test_predict_interrupted_keeps_every_finished_image_and_resumes_exactly(
    sig, point, photos, checkpoint, reference, tmp_path, capsys
):
    out = tmp_path / "out"
    state = out / "predictions.partial.jsonl"
    run = Run(*_predict_args(photos, checkpoint, out))
    run.wait_for(f"line {POINTS[point]} of {state.name}", lambda: _lines(state) >= POINTS[point])
    run.proc.send_signal(sig)
    code, _, err = run.finish()
    assert code == 130, err
    name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    last = _last_line(err)
    match = re.fullmatch(
        rf"vitpose predict: interrupted \({name}\): stopped after (\d+) of {N_IMAGES} images; rerun with --resume "
        "to continue",
        last,
    )
    assert match, last
    assert "Traceback" not in err
    # Valid files; every image recorded in the partial results is in predictions.json, with its annotated copy.
    entries = [json.loads(line) for line in state.read_text().splitlines()[1:]]
    done = len(entries)
    assert int(match.group(1)) == done >= POINTS[point] - 1
    assert done < N_IMAGES, "the run finished before the signal: it proves nothing"
    assert [e["position"] for e in entries] == list(range(done))  # in input order, none lost
    predictions = json.loads((out / "predictions.json").read_text())
    wanted = json.loads(reference["predictions.json"])
    finished = {e["input"] for e in entries}
    assert predictions == [p for p in wanted if p["file_name"] in finished]
    files = _tree(out)
    for entry in entries:
        assert files[entry["name"]] == reference[entry["name"]]
    assert not [n for n in files if n.startswith(".")], "a temporary file was left"
    # A plain rerun refuses to drop the interrupted run; --resume completes it to the uninterrupted output.
    # (Refusals come before the model loads: checked in this process.)
    assert cli_main([str(a) for a in _predict_args(photos, checkpoint, out)]) == 2
    assert "add --resume to continue it" in capsys.readouterr().err
    code, _, err = Run(*_predict_args(photos, checkpoint, out), "--resume").finish()
    assert code == 0, err
    assert not done or f"resuming: {done} of {N_IMAGES} images already done" in err
    assert _tree(out) == reference  # byte for byte, and the partial results file is gone
    # Resuming a finished run says there is nothing to resume.
    assert cli_main([str(a) for a in _predict_args(photos, checkpoint, out)] + ["--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_predict_resume_refuses_other_options(photos, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    state = out / "predictions.partial.jsonl"
    run = Run(*_predict_args(photos, checkpoint, out))
    run.wait_for(f"line 2 of {state.name}", lambda: _lines(state) >= 2)
    run.proc.send_signal(signal.SIGINT)
    assert run.finish()[0] == 130
    args = [str(a) for a in _predict_args(photos, checkpoint, out)] + ["--resume"]
    assert cli_main([*args, "--kpt-thr", "0.5"]) == 2
    assert "other settings: kpt_thr (0.3 then, 0.5 now)" in capsys.readouterr().err
    others = [str(p) for p in sorted(photos.iterdir())[1:]]  # not the same inputs: the first image left out
    assert cli_main(["predict", *others, *args[2:]]) == 2
    assert "the inputs differ" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- eval
@pytest.fixture(scope="module")
def eval_set(tmp_path_factory) -> tuple[Path, Path]:
    """A COCO keypoint file of N_IMAGES images (the shared images and their ground truth, repeated)."""
    folder = tmp_path_factory.mktemp("eval")
    images = folder / "images"
    images.mkdir()
    source = json.loads((COCO_DIR / "test_coco.json").read_text())
    data = {**source, "images": [], "annotations": []}
    ann_id = 1
    for i in range(N_IMAGES):
        image = source["images"][i % len(source["images"])]
        name = f"img{i:02d}.jpg"
        shutil.copy(COCO_DIR / image["file_name"], images / name)
        data["images"].append({**image, "id": i + 1, "file_name": name})
        for ann in source["annotations"]:
            if ann["image_id"] == image["id"]:
                data["annotations"].append({**ann, "id": ann_id, "image_id": i + 1})
                ann_id += 1
    annotations = folder / "annotations.json"
    annotations.write_text(json.dumps(data))
    return annotations, images


def _eval_args(eval_set, checkpoint, out: Path) -> list[object]:
    annotations, images = eval_set
    return [
        "eval", "--model", checkpoint, "--annotations", annotations, "--images", images, "--device", "cpu",
        "--batch-size", "4", "--out", out,
    ]  # fmt: skip


def test_eval_interrupted_writes_the_finished_predictions(eval_set, checkpoint, tmp_path):
    full = tmp_path / "full.json"
    code, stdout, err = Run(*_eval_args(eval_set, checkpoint, full)).finish()
    assert code == 0 and "AP" in stdout, err
    wanted = json.loads(full.read_text())
    out = tmp_path / "partial.json"
    run = Run(*_eval_args(eval_set, checkpoint, out))

    def progress() -> bool:
        counts = re.findall(rf"(\d+)/{N_IMAGES} ", run.err)
        return bool(counts) and int(counts[-1]) >= 1

    run.wait_for("the first image in the progress bar", progress)
    run.proc.send_signal(signal.SIGINT)
    code, stdout, err = run.finish()
    assert code == 130, err
    last = _last_line(err)
    match = re.fullmatch(
        rf"vitpose eval: interrupted \(Ctrl-C\): stopped after (\d+) of {N_IMAGES} images; no metrics \(they need "
        rf"every image\); the predictions of the \d+ images? done are in {re.escape(str(out))}; rerun with --resume "
        "to continue",
        last,
    )
    assert match, last
    done = int(match.group(1))
    assert 1 <= done < N_IMAGES, "the run finished before the signal: it proves nothing"
    assert "AP" not in stdout  # no metrics of a partial set
    predictions = json.loads(out.read_text())
    assert predictions == [p for p in wanted if p["image_id"] <= done]  # the first `done` images, none lost
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_eval_resume_ends_with_the_uninterrupted_metrics_and_predictions(eval_set, checkpoint, tmp_path, capsys):
    full = tmp_path / "full.json"
    code, stdout, err = Run(*_eval_args(eval_set, checkpoint, full), "--json").finish()
    assert code == 0, err
    metrics = json.loads(stdout.strip().splitlines()[-1])
    out = tmp_path / "partial.json"
    state = tmp_path / "partial.json.partial.jsonl"
    run = Run(*_eval_args(eval_set, checkpoint, out), "--json")
    run.wait_for(f"line 2 of {state.name}", lambda: _lines(state) >= 2)  # the header and the first image
    run.proc.send_signal(signal.SIGINT)
    code, stdout, err = run.finish()
    assert code == 130, err
    assert _last_line(err).endswith("; rerun with --resume to continue"), err
    assert not stdout.strip(), "no metrics of a partial set"
    entries = [json.loads(line) for line in state.read_text().splitlines()[1:]]
    done = len(entries)
    assert 1 <= done < N_IMAGES, "the run finished before the signal: it proves nothing"
    assert [e["position"] for e in entries] == list(range(done))
    assert json.loads(out.read_text()) == [p for p in json.loads(full.read_text()) if p["image_id"] <= done]
    args = [str(a) for a in _eval_args(eval_set, checkpoint, out)]
    # Refusals come before the model loads: checked in this process.
    assert cli_main(args) == 2  # a plain rerun would drop the interrupted run
    assert "add --resume to continue it" in capsys.readouterr().err
    assert cli_main([*args, "--resume", "--flip-test"]) == 2
    assert "other settings: flip_test (False then, True now)" in capsys.readouterr().err
    assert cli_main([*args, "--resume", "--det-thr", "0.5"]) == 2
    assert "other settings: det_thr (0.0 then, 0.5 now)" in capsys.readouterr().err
    code, stdout, err = Run(*args, "--resume", "--json").finish()
    assert code == 0, err
    assert f"resuming: {done} images already done" in err
    assert json.loads(stdout.strip().splitlines()[-1]) == metrics
    assert out.read_bytes() == full.read_bytes()  # byte for byte
    assert not state.exists(), "a finished run leaves no partial results"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert cli_main([*args, "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["coco", "mpii"])
def test_evaluate_resumed_from_the_records_of_some_images_is_the_uninterrupted_report(dataset, tmp_path):
    """The library hook under `eval --resume`: the records `on_image` got (through JSON, as the partial file keeps
    them) of some images, given back as `finished`, skip those images and give the same predictions and metrics."""
    from vitpose.evaluation import evaluate

    if dataset == "coco":
        annotations, images, k = COCO_DIR / "test_coco.json", COCO_DIR, 17
    else:
        annotations, images, k = require_shared(DATA / "mpii" / "test_mpii.json"), DATA / "mpii", 16
    model = save_hf(make_hf_model(num_labels=k), tmp_path / "model")
    records: list[dict] = []
    full = evaluate(str(model), annotations, images, device="cpu", on_image=records.append)
    assert [r["position"] for r in records] == list(range(len(records))) and len(records) >= 2
    kept = {r["position"]: json.loads(json.dumps(r)) for r in records[: len(records) // 2]}
    seen: list[int] = []
    resumed = evaluate(
        str(model), annotations, images, device="cpu", finished=kept, on_image=lambda r: seen.append(r["position"])
    )
    assert seen == [r["position"] for r in records[len(records) // 2 :]]  # only the images not done
    assert json.dumps(resumed.predictions) == json.dumps(full.predictions)
    assert resumed.metrics == full.metrics and resumed.num_instances == full.num_instances
    moved = {1 if 0 in kept else 0: kept[min(kept)]}  # a record at another image's position
    with pytest.raises(Exception, match="the images differ from the interrupted run's"):
        evaluate(str(model), annotations, images, device="cpu", finished=moved)


def test_eval_resume_needs_out(eval_set, checkpoint, capsys):
    args = [str(a) for a in _eval_args(eval_set, checkpoint, Path("unused.json"))[:-2]]
    assert cli_main([*args, "--resume"]) == 2
    assert "--resume needs the --out FILE" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- video
def test_video_sigterm_closes_both_files_cleanly(photos, checkpoint, tmp_path):
    import cv2

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(N_IMAGES):
        shutil.copy(SHARED[0], frames / f"f{i:02d}.jpg")  # one size: no resizing
    video, jsonl = tmp_path / "out.avi", tmp_path / "out.jsonl"
    run = Run(
        "video", frames, "--out", video, "--jsonl", jsonl, "--model", checkpoint, "--detector", "full-image",
        "--device", "cpu", "--frame-batch", "2", "--no-progress",
    )  # fmt: skip
    run.wait_for(f"line 1 of {jsonl.name}", lambda: _lines(jsonl) >= 1)
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 130, err
    match = re.fullmatch(
        r"vitpose video: interrupted \(SIGTERM\) after (\d+) frames: the files end at frame (\d+)", _last_line(err)
    )
    assert match, err
    written = int(match.group(1))
    assert 1 <= written < N_IMAGES, "the run finished before the signal: it proves nothing"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(written))
    assert int(match.group(2)) == written - 1
    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count == written
