"""`vitpose train` under hostile input (issue 13, class 4): a corrupt or hostile `training_state.pt` (or model) on
`--resume` is one line naming the file and what to do; a DataLoader worker's error reaches the command line as the
same one-line message that `--workers 0` gives, not as a worker traceback dump."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from vitpose.errors import VitPoseError
from vitpose.training.checkpointing import STATE_NAME
from vitpose.training.data import KeypointDataset
from vitpose.training.loop import loader_batches, unwrap_worker_error

SMALL = {"input_size": "64x48", "decoder": "simple"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _settings(coco_dir, out, **extra):
    settings = dict(
        model="tiny", train_annotations=str(coco_dir / "test_coco.json"), train_images=str(coco_dir), epochs=1,
        batch_size=4, lr=1e-3, warmup_iters=2, num_workers=0, progress=False, out=str(out), seed=3, **SMALL,
    )  # fmt: skip
    return {**settings, **extra}


def _train(*argv):
    from vitpose.cli.train import main

    return main(["train", *map(str, argv)])


@pytest.fixture(scope="module")
def finished_run(coco_dir, tmp_path_factory):
    """A one-epoch run (last/ with its training state) and the config file to resume it."""
    root = tmp_path_factory.mktemp("run")
    settings = _settings(coco_dir, root / "out")
    config = root / "train.json"
    config.write_text(json.dumps(settings))
    assert _train("--config", config, "--quiet") == 0
    return root


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def _state(run) -> dict:
    return torch.load(run / "out" / "last" / STATE_NAME, weights_only=True)


def _corruptions(run):
    good = (run / "out" / "last" / STATE_NAME).read_bytes()
    state = _state(run)

    def changed(**values):
        return {**state, **values}

    optimizer = state["optimizer"]
    first = next(iter(optimizer["state"]))
    wrong_shape = {**optimizer, "state": {**optimizer["state"], first: {
        **optimizer["state"][first], "exp_avg": torch.zeros(7, 7)}}}  # fmt: skip
    wrong_dtype = {**optimizer, "state": {**optimizer["state"], first: {
        **optimizer["state"][first], "exp_avg": torch.zeros(1, dtype=torch.int64)}}}  # fmt: skip
    return {
        "not a zip": b"hello, not a checkpoint",
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "pickle payload": pickle.dumps({"epoch": _Payload()}),
        "pickle payload in a torch file": {"epoch": _Payload()},
        "a list": [1, 2, 3],
        "no optimizer": {k: v for k, v in state.items() if k != "optimizer"},
        "epoch a string": changed(epoch="one"),
        "negative step": changed(step=-5),
        "scheduler strings": changed(scheduler={**state["scheduler"], "base_lrs": ["x"]}),
        "scheduler extra key": changed(scheduler={**state["scheduler"], "step": 1}),
        "optimizer tensor of the wrong shape": changed(optimizer=wrong_shape),
        "optimizer tensor of the wrong dtype": changed(optimizer=wrong_dtype),
        "optimizer groups missing": changed(optimizer={**optimizer, "param_groups": []}),
        "rng not tensors": changed(rng=[{"torch": [1, 2, 3]}]),
        "rng of the wrong size": changed(rng=[{**state["rng"][0], "torch": torch.zeros(3, dtype=torch.uint8)}]),
        "epoch_loss a dict": changed(epoch_loss={"a": 1}),
    }


def test_a_corrupt_or_hostile_training_state_is_one_line(finished_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = json.loads((finished_run / "train.json").read_text())
    for name, content in _corruptions(finished_run).items():
        run = tmp_path / name.replace(" ", "_")
        shutil.copytree(finished_run / "out", run)
        path = run / "last" / STATE_NAME
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        config = tmp_path / f"{run.name}.json"
        config.write_text(json.dumps({**settings, "out": str(run)}))
        code = _train("--config", config, "--resume", "--quiet")
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (name, err)
        assert len(err) == 1 and err[0].startswith("vitpose train: error: "), (name, err)
        assert str(path) in err[0] and "Start a fresh run" in err[0], (name, err)
        assert "Traceback" not in err[0], name
    assert not (tmp_path / "PWNED").exists()  # the pickle payload never ran


def test_a_corrupt_model_in_last_is_one_line(finished_run, tmp_path, capsys):
    settings = json.loads((finished_run / "train.json").read_text())
    for name, edit in {
        "weights": lambda last: (last / "model.safetensors").write_bytes(b"\0" * 64),
        "config": lambda last: (last / "config.json").write_text('{"backbone_config": {"num_hidden_layers": 0}}'),
    }.items():
        run = tmp_path / name
        shutil.copytree(finished_run / "out", run)
        edit(run / "last")
        config = tmp_path / f"{name}.json"
        config.write_text(json.dumps({**settings, "out": str(run)}))
        assert _train("--config", config, "--resume", "--quiet") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"cannot resume from {run / 'last'}" in err[0], err
        assert "Start a fresh run" in err[0]


def test_the_good_state_still_resumes(finished_run, capsys):
    assert _train("--config", finished_run / "train.json", "--resume", "--quiet") == 0


# ------------------------------------------------------------------------------------------- DataLoader workers
def _broken_sample(self, index, *args, **kwargs):
    raise VitPoseError(f"{self.source}: sample {index} is broken: fix the annotation")


@pytest.mark.parametrize("error", [VitPoseError, FileNotFoundError])
def test_a_worker_error_is_unwrapped(error):
    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            raise error(f"item {index} cannot be read: check it")

    loader = torch.utils.data.DataLoader(Broken(), num_workers=1)
    with pytest.raises(error) as info:
        list(loader_batches(loader))
    assert str(info.value) == "item 0 cannot be read: check it"
    assert "Original Traceback" in info.value.worker_traceback
    plain = RuntimeError("no worker here")
    assert unwrap_worker_error(plain) is plain


def test_workers_give_the_message_of_workers_0(coco_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(KeypointDataset, "sample", _broken_sample)  # forked workers inherit it
    lines = {}
    for workers in (0, 2):
        settings = _settings(coco_dir, tmp_path / f"w{workers}", num_workers=workers)
        config = tmp_path / f"w{workers}.json"
        config.write_text(json.dumps(settings))
        assert _train("--config", config, "--quiet") == 2
        lines[workers] = capsys.readouterr().err.strip().splitlines()
    assert len(lines[2]) == 1 and "DataLoader worker" not in lines[2][0], lines[2]
    assert lines[2] == lines[0]
    assert "is broken: fix the annotation" in lines[0][0]
