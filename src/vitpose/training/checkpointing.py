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
import json
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitpose.errors import VitPoseError

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
    (tmp / "metrics.json").write_text(json.dumps(dict(row), indent=2) + "\n")
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
    size (the sampler's shards depend on both)."""
    state = torch.load(directory / STATE_NAME, map_location="cpu", weights_only=True)
    if state["batch_in_epoch"] and (state["world_size"], state["batch_size"]) != (world_size, batch_size):
        raise VitPoseError(
            f"the run was interrupted mid-epoch with {state['world_size']} process(es) and batch size "
            f"{state['batch_size']}; resume with the same (now {world_size} and {batch_size})"
        )
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
    )
    rng = state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0]
    set_rng_state(rng, device)
    return point
