"""What a training run writes to its `out` folder and reads back on resume.

- `last/`: the model in the hub format (`config.json`, `model.safetensors`, `preprocessor_config.json`) and
  `training_state.pt` (optimiser, scheduler, grad scaler, every rank's RNG states, step, epoch, position in the
  epoch, history, best row, the epoch's running loss, elapsed time, world size, batch size, the settings);
- `best/`: the model with the best validation metric so far, with `metrics.json`;
- `log.csv`: one row per epoch.

Folders are written next to their final place and moved in (`replace_dir`), so that an interruption at any moment
leaves a complete `last/` or `last.old/`; `find_resume_dir` takes either.
"""

from __future__ import annotations

import csv
import math
import os
import random
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitpose.errors import CheckpointError, VitPoseError
from vitpose.outputs import json_text

__all__ = [
    "METRIC_COLUMNS",
    "STATE_NAME",
    "ResumePoint",
    "check_fresh_out",
    "find_resume_dir",
    "load_training_state",
    "replace_dir",
    "rng_state",
    "save_model",
    "set_rng_state",
    "write_best",
    "write_csv",
    "write_last",
]

STATE_NAME = "training_state.pt"
METRIC_COLUMNS = ("AP", "AP50", "AP75", "APm", "APl", "AR")


# ---------------------------------------------------------------------------------------------------- RNG states
def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's torch, Python, NumPy (and CUDA) RNG states, in a form `torch.load(weights_only=True)` reads."""
    name, keys, *rest = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), *rest],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ------------------------------------------------------------------------------------------------------- writing
def replace_dir(tmp: Path, final: Path) -> None:
    """Move `tmp` to `final` so that an interruption at any moment leaves a complete `final` or `final.old`."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def save_model(model: nn.Module, directory: Path) -> None:
    """The model in the hub format, with the preprocessor config of its input size."""
    from vitpose.processor import VitPoseImageProcessor

    model.save_pretrained(directory)
    h, w = model.config.backbone_config.image_size
    VitPoseImageProcessor(size={"height": h, "width": w}).save_pretrained(directory)


def _fresh_tmp(out: Path, name: str) -> Path:
    tmp = out / f"{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    return tmp


def write_last(
    out: Path,
    model: nn.Module,
    *,
    epoch: int,
    batch_in_epoch: int,
    step: int,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    rng: list[dict[str, Any]],
    history: list[dict[str, Any]],
    best: dict[str, Any] | None,
    epoch_loss: Sequence[float],
    elapsed: float,
    world_size: int,
    batch_size: int,
    config: dict[str, Any],
    epoch_logs: Mapping[str, Sequence[float]] | None = None,
) -> None:
    """Write `out/last` (model + `training_state.pt`) atomically; `epoch` / `batch_in_epoch` say where to go on.
    `rng` holds every rank's `rng_state`, in rank order."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_tmp(out, "last")
    save_model(model, tmp)
    torch.save(
        {
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng,
            "history": history,
            "best": best,
            "epoch_loss": list(epoch_loss),
            "epoch_logs": {k: list(v) for k, v in (epoch_logs or {}).items()},
            "elapsed": elapsed,
            "world_size": world_size,
            "batch_size": batch_size,
            "config": config,
        },
        tmp / STATE_NAME,
    )
    replace_dir(tmp, out / "last")


def write_best(out: Path, model: nn.Module, row: Mapping[str, Any]) -> None:
    """Write `out/best` (model + `metrics.json` with the epoch's row) atomically."""
    tmp = _fresh_tmp(out, "best")
    save_model(model, tmp)
    (tmp / "metrics.json").write_text(json_text(dict(row), indent=2) + "\n")  # a NaN metric is null, valid JSON
    replace_dir(tmp, out / "best")


def write_csv(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    """`log.csv`: epoch, step, lr, loss, the COCO metrics, time, then any other column in the rows (sorted)."""
    columns = ["epoch", "step", "lr", "loss", *METRIC_COLUMNS, "time_s"]
    extra = sorted({k for row in history for k in row} - set(columns) - {"metrics"})
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns + extra, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns + extra})
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------------- reading
def check_fresh_out(out: Path) -> None:
    """Refuse to start a new run over one that `out` already holds."""
    if (out / "last" / STATE_NAME).is_file():
        raise VitPoseError(
            f"{out} already holds a training run (last/{STATE_NAME}): pass --resume (resume=True) to "
            "continue it, or choose another --out"
        )


def find_resume_dir(out: Path) -> Path:
    """`out/last`, or `out/last.old` where an interruption came while `last/` was being replaced."""
    last = out / "last"
    for candidate in (last, last.with_name("last.old")):
        if (candidate / STATE_NAME).is_file():
            return candidate
    raise VitPoseError(f"nothing to resume in {out}: no {last / STATE_NAME} (train without --resume first)")


@dataclass
class ResumePoint:
    """Where a resumed run goes on, from `training_state.pt`."""

    epoch: int
    batch_in_epoch: int
    step: int
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    epoch_loss: list[float]
    elapsed: float
    epoch_logs: dict[str, list[float]] = field(default_factory=dict)


def load_training_state(
    directory: Path,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    device: torch.device,
    rank: int,
    world_size: int,
    batch_size: int,
) -> ResumePoint:
    """Read `directory/training_state.pt`: load the optimiser, scheduler and grad scaler in place, restore this
    rank's RNG states, and return the position. A run stopped mid-epoch resumes only with its world size and batch
    size (the sampler's shards depend on both).

    The file is read with `weights_only=True` (a pickle payload never runs) and checked against what this run would
    write (keys, types, the optimiser's tensors against the parameters' shapes) before anything is restored: a
    corrupt, truncated or foreign file is one `CheckpointError` naming it and saying what to do.
    """
    path = directory / STATE_NAME
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise _bad_state(path, f"cannot be read ({err.strerror or err})") from None
    if magic != b"PK\x03\x04":  # torch.save writes a zip file
        raise _bad_state(path, "is not a PyTorch file (empty, or not written by torch.save)")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # about a foreign file; refused
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or hostile file; one message for all
        if "weights_only" in str(err):
            why = "it holds Python objects other than tensors and plain data, which are never unpickled"
        else:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            why = f"{type(err).__name__}: {first[:120]}"
        raise _bad_state(path, f"cannot be read ({why})") from None
    try:
        _check_state(state, optimizer, scheduler, scaler)
    except VitPoseError:
        raise
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, RuntimeError) as err:
        raise _bad_state(
            path, f"does not have the structure of a training state ({type(err).__name__}: {err})"
        ) from None
    if state["batch_in_epoch"] and (state["world_size"], state["batch_size"]) != (world_size, batch_size):
        raise VitPoseError(
            f"the run was interrupted mid-epoch with {state['world_size']} process(es) and batch size "
            f"{state['batch_size']}; resume with the same (now {world_size} and {batch_size})"
        )
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        point = ResumePoint(
            epoch=int(state["epoch"]),
            batch_in_epoch=int(state["batch_in_epoch"]),
            step=int(state["step"]),
            history=list(state["history"]),
            best=state["best"],
            epoch_loss=[float(state["epoch_loss"][0]), int(state["epoch_loss"][1])],
            elapsed=float(state.get("elapsed", 0.0)),
            # The epoch's sums of the loss function's logs (absent in states written before they were kept).
            epoch_logs={str(k): [float(v[0]), int(v[1])] for k, v in state.get("epoch_logs", {}).items()},
        )
        rng = state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0]
        set_rng_state(rng, device)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError, RuntimeError) as err:
        raise _bad_state(path, f"cannot be restored ({type(err).__name__}: {err})") from None
    return point


def _bad_state(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(
        f"{path} {problem}: it is not a training state this run can resume from (corrupt, truncated or from another "
        f"program). Start a fresh run (without --resume, with another --out), or resume a run whose --out holds a "
        "good last/"
    )


_COUNTERS = ("epoch", "batch_in_epoch", "step", "world_size", "batch_size")


def _check_state(state: Any, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any) -> None:
    """Raise (a TypeError / ValueError, turned into a `CheckpointError` by the caller) unless `state` is what
    `write_last` writes for this optimiser, scheduler and grad scaler."""
    if not isinstance(state, dict):
        raise TypeError(f"a {type(state).__name__}, not a dict")
    missing = [
        k for k in (*_COUNTERS, "optimizer", "scheduler", "scaler", "rng", "history", "epoch_loss") if k not in state
    ]
    if missing:
        raise KeyError(f"no {', '.join(missing)}")
    for key in _COUNTERS:
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} is {value!r:.40}, not a count")
    if not isinstance(state["history"], list) or not all(isinstance(r, dict) for r in state["history"]):
        raise TypeError("history is not a list of rows")
    if state.get("best") is not None and not isinstance(state["best"], dict):
        raise TypeError("best is not a row")
    loss = state["epoch_loss"]
    if not isinstance(loss, (list, tuple)) or len(loss) != 2 or not all(isinstance(v, (int, float)) for v in loss):
        raise TypeError("epoch_loss is not [sum, count]")
    if not isinstance(state.get("elapsed", 0.0), (int, float)):
        raise TypeError("elapsed is not a number")
    rng = state["rng"]
    if not isinstance(rng, list) or not rng or not all(isinstance(r, dict) for r in rng):
        raise TypeError("rng is not a list of RNG states")
    for r in rng:
        if not isinstance(r.get("torch"), torch.Tensor) or r["torch"].dtype != torch.uint8:
            raise TypeError("an RNG state has no torch generator state")
    _same_structure(state["scheduler"], scheduler.state_dict(), "scheduler")
    if scaler.state_dict():  # a disabled grad scaler (no fp16) ignores what it is given
        _same_structure(state["scaler"], scaler.state_dict(), "scaler")
    _check_optimizer(state["optimizer"], optimizer)


def _same_structure(saved: Any, template: Any, where: str) -> None:
    """No keys that `template` lacks (a file of an older PyTorch may lack some), and the same kinds of values
    (numbers as numbers, tensors of the same shape and dtype, lists of the same length) as `template`."""
    if isinstance(template, dict):
        if not isinstance(saved, dict) or not set(saved) <= set(template):
            raise ValueError(f"{where} has other entries than this run's ({sorted(map(str, template))})")
        for key, value in saved.items():
            _same_structure(value, template[key], f"{where}.{key}")
    elif isinstance(template, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(template):
            raise ValueError(f"{where} is not a list of {len(template)}")
        for i, (a, b) in enumerate(zip(saved, template, strict=True)):
            _same_structure(a, b, f"{where}[{i}]")
    elif isinstance(template, bool) or template is None:
        if not (saved is None or isinstance(saved, bool)):
            raise TypeError(f"{where} is {saved!r:.40}")
    elif isinstance(template, (int, float)):
        if isinstance(saved, bool) or not isinstance(saved, (int, float)) or not math.isfinite(saved):
            raise TypeError(f"{where} is {saved!r:.40}, not a finite number")
    elif isinstance(template, torch.Tensor):
        if not isinstance(saved, torch.Tensor) or saved.shape != template.shape or saved.dtype != template.dtype:
            raise TypeError(f"{where} is not a {template.dtype} tensor of shape {tuple(template.shape)}")
    elif type(saved) is not type(template):
        raise TypeError(f"{where} is a {type(saved).__name__}, not a {type(template).__name__}")


def _check_optimizer(saved: Any, optimizer: torch.optim.Optimizer) -> None:
    """Its parameter groups those of `optimizer` (the same sizes) and every state tensor of its parameter's shape."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
        raise TypeError("optimizer has no state")
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise ValueError(f"optimizer does not have this model's {len(optimizer.param_groups)} parameter groups")
    params: dict[Any, torch.Tensor] = {}
    for group, current in zip(groups, optimizer.param_groups, strict=True):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(current["params"]):
            raise ValueError("optimizer's parameter groups do not hold this model's parameters")
        params.update(zip(ids, current["params"], strict=True))
        for key, value in group.items():
            if key != "params" and key in current and isinstance(current[key], (int, float)):
                if isinstance(value, bool) != isinstance(current[key], bool) or not isinstance(value, (int, float)):
                    raise TypeError(f"optimizer setting {key} is {value!r:.40}")
    for pid, entry in saved["state"].items():
        if pid not in params or not isinstance(entry, dict):
            raise ValueError(f"optimizer state for an unknown parameter {pid!r:.40}")
        param = params[pid]
        for key, value in entry.items():
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    continue
                raise TypeError(f"optimizer state {key} is not a floating-point tensor")
            if value.ndim and value.shape != param.shape:
                raise ValueError(
                    f"optimizer state {key} has shape {tuple(value.shape)}, its parameter {tuple(param.shape)}"
                )
