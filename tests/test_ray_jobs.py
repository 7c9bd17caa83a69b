"""`vitpose predict / eval --engine ray` on a local Ray: the local path's results (to 1e-5), shards with a journal,
errors reported, resume without redoing or doubling, including after a kill mid-way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, assert_same_results, make_hf_model, read_predictions, require_shared, save_hf
from vitpose.cli import main
from vitpose.integrations.ray import LOCAL_RAY_ENV

os.environ.update(LOCAL_RAY_ENV)  # before ray's first import (the session's `local_ray` fixture starts it)
pytest.importorskip("ray.data")
psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture
def images(coco_dir, tmp_path):
    """The shared COCO images, a broken file among them."""
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(coco_dir.glob("*.jpg")):
        shutil.copy(path, folder / path.name)
    (folder / "000000000999.jpg").write_bytes(b"not an image")
    return folder


def journal_images(out: Path) -> list[list]:
    lines = (out / "shards" / "journal.jsonl").read_text().splitlines()[1:]
    return [image for line in lines for image in json.loads(line)["images"]]


@pytest.mark.parametrize("shard_format", ["jsonl", "parquet"])
def test_predict_on_ray_writes_the_local_predictions(local_ray, checkpoint, images, tmp_path, capsys, shard_format):
    common = [str(images), "--model", str(checkpoint), "--detector", "hog", "--device", "cpu"]
    assert main(["predict", *common, "--out", str(tmp_path / "local")]) == 1  # the broken file
    ray_out = tmp_path / "ray"
    args = ["--engine", "ray", "--shard-size", "2", "--shard-format", shard_format, "--out", str(ray_out)]
    assert main(["predict", *common, *args]) == 1
    err = capsys.readouterr().err
    assert "000000000999.jpg" in err and "not an image file" in err
    assert_same_results(read_predictions(ray_out), read_predictions(tmp_path / "local"))
    errors = [json.loads(line) for line in (ray_out / "errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == [str(images / "000000000999.jpg")] and "not an image" in errors[0]["reason"]
    shards = sorted(p.name for p in (ray_out / "shards").iterdir() if p.name.startswith("part-"))
    assert shards == [f"part-{i:05d}.{shard_format}" for i in range(3)]  # 5 images, 2 per shard
    recorded = sorted(journal_images(ray_out))
    assert [image[0] for image in recorded] == list(range(5))  # every image once
    # A rerun needs --resume (it would mix two runs' results); with it, nothing is redone.
    assert main(["predict", *common, *args]) == 2
    assert "add --resume" in capsys.readouterr().err
    assert main(["predict", *common, *args, "--resume"]) == 1  # the broken file is tried again, and fails again
    assert "resuming: 4 of 5 images already done" in capsys.readouterr().err
    broken = [image[0] for image in recorded if image[4] is not None]
    assert len(broken) == 1 and recorded[broken[0]][1] == str(images / "000000000999.jpg")
    again = journal_images(ray_out)[len(recorded) :]
    assert [image[0] for image in again] == broken  # only the failed image was run again
    succeeded = sorted(image[0] for image in journal_images(ray_out) if image[4] is None)
    assert succeeded == sorted(set(range(5)) - set(broken))
    assert_same_results(read_predictions(ray_out), read_predictions(tmp_path / "local"))
    # Other settings cannot continue it; the local engine refuses the folder.
    assert main(["predict", *common, *args, "--resume", "--flip-test"]) == 2
    assert "other settings: flip_test" in capsys.readouterr().err
    assert main(["predict", *common, "--out", str(ray_out)]) == 2
    assert "--engine ray --resume" in capsys.readouterr().err


def test_predict_on_ray_with_a_boxes_file(local_ray, checkpoint, coco_dir, tmp_path):
    common = [
        str(coco_dir),
        "--model",
        str(checkpoint),
        "--boxes",
        str(coco_dir / "test_coco_det_AP_H_56.json"),
        "--annotations",
        str(coco_dir / "test_coco.json"),
        "--device",
        "cpu",
    ]
    assert main(["predict", *common, "--out", str(tmp_path / "local")]) == 0
    assert main(["predict", *common, "--engine", "ray", "--out", str(tmp_path / "ray")]) == 0
    want = read_predictions(tmp_path / "local")
    assert_same_results(read_predictions(tmp_path / "ray"), want)
    ids = {image["id"] for image in json.loads((coco_dir / "test_coco.json").read_text())["images"]}
    assert {p["image_id"] for p in want} <= ids  # the COCO ids, not positions


def test_a_coco_file_as_input_gives_its_ids(local_ray, checkpoint, coco_dir, tmp_path):
    out = tmp_path / "ray"
    args = ["--model", str(checkpoint), "--detector", "full-image", "--engine", "ray", "--out", str(out)]
    assert main(["predict", str(coco_dir / "test_coco.json"), *args]) == 0
    coco = json.loads((coco_dir / "test_coco.json").read_text())
    by_name = {image["file_name"]: image["id"] for image in coco["images"]}
    got = read_predictions(out)
    assert len(got) == len(by_name)  # full-image: one person per image
    assert sorted((Path(p["file_name"]).name, p["image_id"]) for p in got) == sorted(by_name.items())


def test_eval_on_ray_gives_the_local_metrics(local_ray, checkpoint, coco_dir, tmp_path, capsys):
    common = [
        "eval",
        "--model",
        str(checkpoint),
        "--annotations",
        str(coco_dir / "test_coco.json"),
        "--images",
        str(coco_dir),
        "--detections",
        str(coco_dir / "test_coco_det_AP_H_56.json"),
        "--json",
        "--device",
        "cpu",
    ]
    assert main([*common, "--out", str(tmp_path / "local.json")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*common, "--engine", "ray", "--actors", "2", "--out", str(tmp_path / "ray.json")]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert on_ray.keys() == local.keys()
    for key in local:
        assert on_ray[key] == pytest.approx(local[key], abs=1e-9), key
    got, want = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("ray", "local"))
    assert_same_results(got, want)


def test_engine_options_need_the_ray_engine(checkpoint, coco_dir, tmp_path, capsys):
    assert main(["predict", str(coco_dir), "--model", str(checkpoint), "--actors", "2", "--out", str(tmp_path)]) == 2
    assert "--actors: only with --engine ray" in capsys.readouterr().err


LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def _connections(process) -> list:
    try:
        return process.net_connections(kind="inet")
    except psutil.Error:
        return []


def _ray_processes(temp: str) -> list:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if temp in " ".join(process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


TOTAL = 40


def test_a_killed_job_resumes_with_only_the_remaining_images(checkpoint, coco_dir, tmp_path):
    """SIGKILL to the whole job (its local Ray included) once half its shards are done: the rerun with --resume
    runs only the images not recorded, and the merge has every image once, as the local path."""
    folder = tmp_path / "many"
    folder.mkdir()
    sources = sorted(coco_dir.glob("*.jpg"))
    for i in range(TOTAL):
        shutil.copy(sources[i % len(sources)], folder / f"img_{i:03d}.jpg")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vitpose", "predict", str(folder), "--model", str(checkpoint)]
    command += ["--detector", "full-image", "--flip-test", "--engine", "ray", "--shard-size", "2", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_RAY_ENV}  # the command sets them itself
    job = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True)
    temp = f"/tmp/vitpose-ray-{job.pid}"
    journal = out / "shards" / "journal.jsonl"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and job.poll() is None and not journal.is_file():
            time.sleep(0.05)
        addresses = {c.laddr.ip for p in _ray_processes(temp) for c in _connections(p)}
        assert addresses and addresses <= LOOPBACK, addresses  # the command's own local Ray: loopback only
        while time.monotonic() < deadline and job.poll() is None:
            if journal.is_file() and len(journal.read_text().splitlines()) >= 1 + TOTAL // 4:  # header, half the shards
                break
            time.sleep(0.02)
        assert job.poll() is None, f"the job ended before it could be killed: {job.stderr.read()[-2000:]}"
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
    finally:
        for process in _ray_processes(temp):  # Ray's own processes of that job, whatever happened
            process.kill()
    done_then = sorted(image[0] for image in journal_images(out))
    assert TOTAL // 2 <= len(done_then) < TOTAL and len(set(done_then)) == len(done_then)  # killed at 50% or later
    rerun = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming: {len(done_then)} of {TOTAL} images already done" in rerun.stderr
    recorded = journal_images(out)
    assert sorted(image[0] for image in recorded) == list(range(TOTAL))  # nothing missing, nothing doubled
    assert sorted(image[0] for image in recorded[len(done_then) :]) == [p for p in range(TOTAL) if p not in done_then]
    local = tmp_path / "local"
    assert main(["predict", str(folder), "--model", str(checkpoint), "--detector", "full-image", "--flip-test",
                 "--device", "cpu", "--out", str(local)]) == 0  # fmt: skip
    assert_same_results(read_predictions(out), read_predictions(local))


def test_parquet_of_uris_and_a_list_file(local_ray, checkpoint, images, tmp_path):
    """Images named by URIs in a Parquet file (read through pyarrow's file systems on the actors) and by a list
    file: the same keypoints as the local path on the same files; the broken one reported under its URI."""
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    files = sorted(images.glob("*.jpg"))
    uris = [path.as_uri() for path in files]
    pq.write_table(pa.table({"path": uris, "image_id": list(range(101, 101 + len(uris)))}), tmp_path / "in.parquet")
    common = ["--model", str(checkpoint), "--detector", "full-image"]
    out = tmp_path / "parquet"
    assert main(["predict", str(tmp_path / "in.parquet"), *common, "--engine", "ray", "--out", str(out)]) == 1
    assert main(["predict", str(images), *common, "--device", "cpu", "--out", str(tmp_path / "local")]) == 1
    want = read_predictions(tmp_path / "local")
    got = read_predictions(out)
    assert [p["file_name"] for p in got] == [u for u in uris if not u.endswith("999.jpg")]
    assert [p["image_id"] for p in got] == [101 + i for i, u in enumerate(uris) if not u.endswith("999.jpg")]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-5, rtol=0)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == [u for u in uris if u.endswith("999.jpg")]
    listed = tmp_path / "list.txt"
    good = [path for path in files if not path.name.endswith("999.jpg")][:2]
    listed.write_text("# two of them\n" + "\n".join(str(p) for p in good) + "\n")
    out = tmp_path / "list"
    assert main(["predict", str(listed), *common, "--engine", "ray", "--out", str(out)]) == 0
    got = read_predictions(out)
    assert [(p["file_name"], p["image_id"]) for p in got] == [(str(path), i + 1) for i, path in enumerate(good)]
    for a, b in zip(got, [p for p in want if p["file_name"] in {str(f) for f in good}], strict=True):
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-5, rtol=0)


def test_mpii_eval_on_ray_gives_the_local_pckh(local_ray, tmp_path, capsys):
    """MPII goes through the runner with crop regions (centre and scale) instead of boxes: the same PCKh."""
    mpii = require_shared(DATA / "mpii")
    model = save_hf(make_hf_model(num_labels=16), tmp_path / "mpii_model")
    common = ["eval", "--model", str(model), "--annotations", str(mpii / "test_mpii.json"), "--images", str(mpii)]
    common += ["--json", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "local.json")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*common, "--engine", "ray", "--actors", "2", "--out", str(tmp_path / "ray.json")]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert on_ray.keys() == local.keys() and "PCKh" in local
    for key in local:
        assert on_ray[key] == pytest.approx(local[key], abs=1e-9), key
    got, want = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("ray", "local"))
    assert [p["image"] for p in got] == [p["image"] for p in want]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a["joints"], b["joints"], atol=1e-5, rtol=0)
