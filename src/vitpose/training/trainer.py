"""The training loop: `train(TrainConfig(...))` or `vitpose train`.

What one run does:

1. builds the model (`build_training_model`: a checkpoint or a preset, heads fitted to the data sets, input size),
   the training set (`KeypointDataset` per annotation file; several files = ViTPose++ multi-data-set training with
   mixed batches), AdamW with layer-wise lr decay, the warm-up + step schedule, and mixed precision where the
   device supports it (fp16 with a GradScaler on CUDA; optional bf16 autocast);
2. trains, with a progress bar per epoch, gradient clipping, and, every `eval_interval` epochs, the evaluation of
   `vitpose eval` (`vitpose.evaluation.evaluate`, ground-truth boxes) on the validation set(s);
3. every `checkpoint_interval` epochs (default 1), after each evaluation and after the last epoch, writes to `out`:
   - `last/`: the model in the hub format (`config.json`, `model.safetensors`, `preprocessor_config.json`) and
     `training_state.pt` (optimiser, scheduler, grad scaler, RNG states, step, epoch, position in the epoch, history);
   - `best/`: the model with the best validation AP so far (hub format, with `metrics.json`);
   - `log.csv` (one row per epoch: step, lr, loss, AP...) and `training.png` (loss and AP curves);
4. stops cleanly on Ctrl-C / SIGTERM (or `TrainerState.request_stop()` from a callback): the step in flight is
   finished, `last/` is written with the exact position in the epoch, and `resume=True` later continues to the same
   final weights an uninterrupted run reaches (same seed): the data order and every augmentation are functions of
   (seed, epoch, sample), and the RNG states are restored.

Multi-GPU / multi-machine: launch with `torchrun`, e.g. `torchrun --standalone --nproc_per_node 4 -m
vitpose.cli.train train ...` on one machine (`--nnodes`, `--node_rank`, `--rdzv_endpoint` across machines), or
`vitpose train` through torchrun's `--no-python`. Each process takes a shard of every epoch (the `ResumableSampler`,
a DistributedSampler that can start mid-epoch); `batch_size` is the GLOBAL batch, split evenly, so the number of
steps does not depend on the number of processes; gradients are averaged by DistributedDataParallel (NCCL on CUDA,
gloo on the CPU). Rank 0 evaluates, writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitpose.config import parse_input_size
from vitpose.datasets import DatasetInfo
from vitpose.datasets.custom import infer_dataset_info, resolve_dataset_info
from vitpose.device import resolve_device
from vitpose.errors import VitPoseError
from vitpose.models.pose import VitPoseForPoseEstimation
from vitpose.training.augment import AugmentConfig
from vitpose.training.data import KeypointDataset, MultiDataset, ResumableSampler, collate_samples, read_annotations
from vitpose.training.model_setup import build_training_model
from vitpose.training.optim import (
    build_optimizer,
    build_scheduler,
    clip_gradients,
    default_layer_decay,
    default_lr_steps,
)
from vitpose.training.plot import plot_history

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainerState", "train"]

STATE_NAME = "training_state.pt"
METRIC_COLUMNS = ("AP", "AP50", "AP75", "APm", "APl", "AR")


def _as_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike, int)) or isinstance(value, Mapping):
        return [value]
    return list(value)


@dataclass
class TrainConfig:
    """Everything a training run needs; the CLI flags and the JSON config file have the same names.

    Attributes:
        model: checkpoint (hub id, hub-format directory, original `.pth`) or preset (`tiny`, `small`, `base`,
            `large`, `huge`; `+` for ViTPose++).
        train_annotations, train_images: COCO-format keypoint file(s) and their image folder(s), one folder per file.
        out: output folder (checkpoints, log, plot).
        datasets: per training file, its data set: a known name or index (coco, aic, ap10k, wholebody, ...) or a
            custom data set JSON file (`vitpose.datasets.custom`); None infers it from the file.
        val_annotations, val_images, val_datasets: validation file(s), folder(s), data sets (default: the training
            files' data sets, in order). The first one's AP picks `best/`.
        epochs: number of epochs (210 in the original).
        batch_size: global batch (all processes together); the original used 512 (64 x 8 GPUs).
        lr: base learning rate (None: 5e-4, or 1e-3 for ViTPose++, as the original).
        weight_decay: AdamW weight decay (0.1), not applied to 1-D parameters, biases and pos_embed.
        layer_decay: layer-wise lr decay rate (None: the original's for the model size, 0.75 for other sizes;
            1.0 turns it off).
        warmup_iters, warmup_ratio: linear warm-up (500 iterations from 0.001 of the lr).
        lr_steps: epochs at which the lr is multiplied by `lr_gamma` (None: 170/210 and 200/210 of `epochs`).
        grad_clip: max gradient L2 norm (1.0); 0 turns clipping off.
        input_size: network input (width, height), as everywhere in the Python API, or the command line's text
            "HEIGHTxWIDTH" (e.g. "256x192"); None keeps the checkpoint's (presets: (192, 256)). `to_dict` (hence
            `train_config.json`) writes the text form; in a JSON file a bare [a, b] list is read as the (height,
            width) of files written before this changed, with a FutureWarning.
        decoder: presets only: "classic" (default) or "simple".
        drop_path: stochastic depth rate (None keeps the checkpoint's; presets: the original's per size).
        augment: the original augmentations (flip, half-body, scale, rotation); False trains on the plain crops.
        augmentation: probabilities and ranges (`AugmentConfig` fields).
        sigma: target Gaussian sigma in heatmap pixels (2).
        use_joint_weights: multiply target weights by the data set's joint weights (off in the original configs).
        amp: "auto" (fp16 on CUDA, off elsewhere), "fp16", "bf16" or "off".
        device: "auto", "cpu", "cuda", "cuda:N", "mps" (under torchrun: the local rank's GPU, or the CPU).
        seed: seed of the initialisation, the data order and the augmentations.
        num_workers: data-loader worker processes (0: load in the training process).
        eval_interval: evaluate every this many epochs (and after the last); 0 = only after the last.
        eval_batch_size: crops per batch in evaluation.
        flip_test: evaluate with the flip test.
        checkpoint_interval: write `last/`, `log.csv` and `training.png` every this many epochs (1), and after
            the last one and every evaluation.
        save_interval: also write `last/` every this many steps within epochs (0: never).
        resume: continue from `out/last` (model, optimiser, schedule, RNG, position); the other settings should be
            those of the interrupted run (`epochs` may grow).
        progress: progress bars and per-epoch lines on stderr.
    """

    model: str
    train_annotations: list[str]
    train_images: list[str]
    out: str
    datasets: list[Any] | None = None
    val_annotations: list[str] | None = None
    val_images: list[str] | None = None
    val_datasets: list[Any] | None = None
    epochs: int = 210
    batch_size: int = 64
    lr: float | None = None
    weight_decay: float = 0.1
    layer_decay: float | None = None
    warmup_iters: int = 500
    warmup_ratio: float = 0.001
    lr_steps: list[int] | None = None
    lr_gamma: float = 0.1
    grad_clip: float = 1.0
    input_size: list[int] | None = None
    decoder: str | None = None
    drop_path: float | None = None
    augment: bool = True
    augmentation: dict[str, float] = field(default_factory=dict)
    sigma: float = 2.0
    use_joint_weights: bool = False
    amp: str = "auto"
    device: str = "auto"
    seed: int = 0
    num_workers: int = 2
    eval_interval: int = 1
    eval_batch_size: int = 32
    flip_test: bool = False
    checkpoint_interval: int = 1
    save_interval: int = 0
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.train_annotations = [str(p) for p in _as_list(self.train_annotations) or []]
        self.train_images = [str(p) for p in _as_list(self.train_images) or []]
        self.datasets = _as_list(self.datasets)
        self.val_annotations = [str(p) for p in _as_list(self.val_annotations)] if self.val_annotations else None
        self.val_images = [str(p) for p in _as_list(self.val_images)] if self.val_images else None
        self.val_datasets = _as_list(self.val_datasets)
        self.model = str(self.model)
        self.out = str(self.out)
        if self.input_size is not None:
            self.input_size = list(parse_input_size(self.input_size))
        if self.lr_steps is not None:
            self.lr_steps = [int(v) for v in _as_list(self.lr_steps) or []]
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on inconsistent settings (before any work is done)."""
        if not self.train_annotations:
            raise VitPoseError("train_annotations is required: a COCO-format keypoint file")
        if len(self.train_images) != len(self.train_annotations):
            raise VitPoseError(
                f"give one image folder per annotation file: {len(self.train_annotations)} train_annotations but "
                f"{len(self.train_images)} train_images"
            )
        if self.datasets is not None and len(self.datasets) != len(self.train_annotations):
            raise VitPoseError(f"datasets has {len(self.datasets)} entries for {len(self.train_annotations)} files")
        if (self.val_annotations is None) != (self.val_images is None):
            raise VitPoseError("give both val_annotations and val_images, or neither")
        if self.val_annotations is not None and len(self.val_annotations) != len(self.val_images or []):
            raise VitPoseError("give one val_images folder per val_annotations file")
        if self.val_datasets is not None and len(self.val_datasets) != len(self.val_annotations or []):
            raise VitPoseError("val_datasets needs one entry per val_annotations file")
        if self.epochs < 1:
            raise VitPoseError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise VitPoseError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise VitPoseError(f"lr must be > 0, got {self.lr}")
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 16):
            raise VitPoseError(f"input_size must be (width, height), each >= 16, got {self.input_size}")
        if self.amp not in ("auto", "fp16", "bf16", "off"):
            raise VitPoseError(f"amp must be auto, fp16, bf16 or off, got {self.amp!r}")
        if self.decoder not in (None, "simple", "classic"):
            raise VitPoseError(f"decoder must be 'simple' or 'classic', got {self.decoder!r}")
        known = {f.name for f in dataclasses.fields(AugmentConfig)}
        unknown = set(self.augmentation) - known
        if unknown:
            raise VitPoseError(f"unknown augmentation settings {sorted(unknown)}; known: {sorted(known)}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("datasets", "val_datasets"):
            if out[key] is not None:
                out[key] = [
                    v if isinstance(v, (str, int, type(None))) else getattr(v, "name", str(v)) for v in out[key]
                ]
        if out["input_size"] is not None:  # text: unambiguous for any reader, and the command line's form
            width, height = out["input_size"]
            out["input_size"] = f"{height}x{width}"
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise VitPoseError(f"unknown training settings {unknown}; known: {sorted(names)}")
        missing = [k for k in ("model", "train_annotations", "train_images", "out") if k not in data]
        if missing:
            raise VitPoseError(f"training settings miss {missing}")
        return cls(**dict(data))

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """Read a JSON config (same field names as the CLI flags, with `_`); `overrides` win."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise VitPoseError(f"cannot read training config {path}: {err}") from None
        if not isinstance(data, dict):
            raise VitPoseError(f"training config {path} must be a JSON object")
        legacy = data.get("input_size")
        if isinstance(legacy, list) and len(legacy) == 2:
            # Files written before input_size became (width, height) hold [height, width] lists.
            warnings.warn(
                f"{path}: input_size {legacy} is read as [height, width], the order of files written before "
                f'input_size became (width, height); write it as text "{legacy[0]}x{legacy[1]}" (HEIGHTxWIDTH, '
                "as --input-size), which is what vitpose train writes now",
                FutureWarning,
                stacklevel=2,
            )
            data["input_size"] = f"{legacy[0]}x{legacy[1]}"
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        model: the trained model (eval mode), unwrapped from DistributedDataParallel.
        history: one row per epoch (`epoch`, `step`, `lr`, `loss`, `time_s`, metrics where evaluated).
        best: the row whose AP was best (None without validation).
        step: optimiser steps done; epoch: epochs completed.
        interrupted: stopped early (Ctrl-C, SIGTERM, `request_stop`); `out/last` holds the exact position.
        out: the output folder.
    """

    model: VitPoseForPoseEstimation
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    step: int
    epoch: int
    interrupted: bool
    out: Path


@dataclass
class TrainerState:
    """Passed to the per-step callback: where training is, and a way to stop it cleanly."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    loss: float = float("nan")
    lr: float = 0.0
    stop_requested: bool = False

    def request_stop(self) -> None:
        """Finish the current step, write `last/` with the exact position, and return (as Ctrl-C does)."""
        self.stop_requested = True


class _LossModule(nn.Module):
    """Model + loss in one forward, so that DistributedDataParallel sees one tensor output."""

    def __init__(self, model: VitPoseForPoseEstimation) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor,
        label_weights: torch.Tensor,
        dataset_index: torch.Tensor,
    ) -> torch.Tensor:
        return self.model(pixel_values, dataset_index=dataset_index, labels=labels, label_weights=label_weights).loss


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def _pick_device(spec: str, local_rank: int, world: int) -> torch.device:
    """The device of this process: `vitpose.device.resolve_device`'s (names, "auto", availability checks), pinned
    to the local rank's GPU under torchrun (to the current GPU for one process on "auto"); "auto" with several
    processes does not pick MPS (one device per machine)."""
    device = resolve_device(spec)
    if device.type == "cuda" and (world > 1 or spec == "auto"):
        device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    elif device.type == "mps" and spec == "auto" and world > 1:
        device = torch.device("cpu")
    return device


def _rng_state(device: torch.device) -> dict[str, Any]:
    name, keys, *rest = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), *rest],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _write_csv(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    columns = ["epoch", "step", "lr", "loss", *METRIC_COLUMNS, "time_s"]
    extra = sorted({k for row in history for k in row} - set(columns) - {"metrics"})
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns + extra, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns + extra})
    os.replace(tmp, path)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move `tmp` to `final` so that an interruption at any moment leaves a complete `final` or `final.old`."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


class Trainer:
    """One training run (see the module docstring). Most users call `train(config)`.

    Args:
        config: the settings.
        model: train this model instead of loading `config.model` (heads are still fitted to the data sets).
        evaluate_fn: replaces `vitpose.evaluation.evaluate` (same signature and `EvalReport.metrics`).
        callback: called after every optimiser step with a `TrainerState` (e.g. to stop early).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: VitPoseForPoseEstimation | None = None,
        evaluate_fn: Callable[..., Any] | None = None,
        callback: Callable[[TrainerState], None] | None = None,
    ) -> None:
        self.config = config
        self._model_arg = model
        self._evaluate_fn = evaluate_fn
        self.callback = callback
        self.state = TrainerState()
        self.out = Path(config.out)
        self.rank, self.world, self.local_rank = _distributed()
        self.is_main = self.rank == 0

    # ------------------------------------------------------------------ set-up
    def _say(self, message: str) -> None:
        if self.is_main and self.config.progress:
            from tqdm import tqdm

            tqdm.write(f"vitpose train: {message}", file=sys.stderr)

    def _init_distributed(self) -> None:
        self.device = _pick_device(self.config.device, self.local_rank, self.world)
        self.dist = None
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                backend = "nccl" if self.device.type == "cuda" else "gloo"
                if self.device.type == "cuda":
                    torch.cuda.set_device(self.device)
                dist.init_process_group(backend=backend)
            self.dist = dist
        if self.config.batch_size % self.world:
            raise VitPoseError(
                f"batch_size {self.config.batch_size} is the global batch and must split evenly over the "
                f"{self.world} processes"
            )
        self.local_batch = self.config.batch_size // self.world

    def _dataset_specs(self) -> list[DatasetInfo]:
        cfg = self.config
        infos = []
        for i, ann in enumerate(cfg.train_annotations):
            spec = cfg.datasets[i] if cfg.datasets is not None else None
            if spec is None:
                data, name = read_annotations(ann)
                self._loaded_annotations[ann] = data
                infos.append(infer_dataset_info(data, name))
            else:
                infos.append(resolve_dataset_info(spec))
        return infos

    def _build(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self._loaded_annotations: dict[str, Any] = {}
        self.infos = self._dataset_specs()
        resume_dir = self._resume_dir() if cfg.resume else None
        if resume_dir is None and (self.out / "last" / STATE_NAME).is_file():
            raise VitPoseError(
                f"{self.out} already holds a training run (last/{STATE_NAME}): pass --resume (resume=True) to "
                "continue it, or choose another --out"
            )
        source: Any = self._model_arg if self._model_arg is not None else cfg.model
        if resume_dir is not None:
            source = str(resume_dir)
        model, changes = build_training_model(
            source,
            self.infos,
            input_size=cfg.input_size,
            decoder=cfg.decoder if resume_dir is None else None,
            drop_path=cfg.drop_path,
        )
        for change in changes:
            self._say(change)
        self.model = model.to(self.device).train()
        bb = self.model.config.backbone_config
        self.heatmap_size = self.model.config.heatmap_size  # (width, height)
        augmentation = AugmentConfig(**cfg.augmentation)
        self.train_sets = [
            KeypointDataset(
                self._loaded_annotations.get(ann, ann),
                images,
                info,
                input_size=self.model.config.input_size,
                heatmap_size=self.heatmap_size,
                augment=cfg.augment,
                augmentation=augmentation,
                sigma=cfg.sigma,
                use_joint_weights=cfg.use_joint_weights,
                seed=cfg.seed,
            )
            for ann, images, info in zip(cfg.train_annotations, cfg.train_images, self.infos, strict=True)
        ]
        for ds, ann in zip(self.train_sets, cfg.train_annotations, strict=True):
            ds.source = ann
        self.dataset = MultiDataset(self.train_sets)
        self.sampler = ResumableSampler(len(self.dataset), seed=cfg.seed, rank=self.rank, num_replicas=self.world)
        self.steps_per_epoch = -(-self.sampler.per_replica // self.local_batch)
        self.loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.local_batch,
            sampler=self.sampler,
            num_workers=cfg.num_workers,
            collate_fn=collate_samples,
            pin_memory=self.device.type == "cuda",
            persistent_workers=cfg.num_workers > 0,  # keys carry the epoch, so workers (and their caches) can stay
            drop_last=False,
            generator=torch.Generator().manual_seed(cfg.seed),  # keeps the global RNG out of the loader
        )
        lr = cfg.lr if cfg.lr is not None else (1e-3 if self.model.is_moe else 5e-4)
        layer_decay = (
            cfg.layer_decay
            if cfg.layer_decay is not None
            else default_layer_decay(bb.hidden_size, bb.num_hidden_layers)
        )
        self.lr = lr
        self.optimizer = build_optimizer(self.model, lr=lr, weight_decay=cfg.weight_decay, layer_decay=layer_decay)
        self.lr_steps = cfg.lr_steps if cfg.lr_steps is not None else default_lr_steps(cfg.epochs)
        self.scheduler = build_scheduler(
            self.optimizer,
            self.steps_per_epoch,
            warmup_iters=cfg.warmup_iters,
            warmup_ratio=cfg.warmup_ratio,
            lr_steps=self.lr_steps,
            gamma=cfg.lr_gamma,
        )
        amp = cfg.amp
        if amp == "auto":
            amp = "fp16" if self.device.type == "cuda" else "off"
        if amp == "fp16" and self.device.type != "cuda":
            raise VitPoseError("amp 'fp16' needs a CUDA device (use 'bf16' or 'off' here)")
        self.amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        multi_head = len(self.model.config.valid_dataset_indices) > 1  # some heads or experts sit out a batch
        self.loss_module: nn.Module = _LossModule(self.model)
        if self.world > 1:
            self.loss_module = nn.parallel.DistributedDataParallel(
                self.loss_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=multi_head,
            )
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.start_epoch, self.start_batch, self.step = 0, 0, 0
        self.epoch_loss = [0.0, 0]
        self.elapsed = 0.0
        self._build_validation()
        if resume_dir is not None:
            self._load_state(resume_dir)

    def _build_validation(self) -> None:
        cfg = self.config
        self.val_sets: list[tuple[str, str, DatasetInfo]] = []
        if not cfg.val_annotations:
            return
        for i, (ann, images) in enumerate(zip(cfg.val_annotations, cfg.val_images or [], strict=True)):
            if cfg.val_datasets is not None and cfg.val_datasets[i] is not None:
                info = resolve_dataset_info(cfg.val_datasets[i])
            elif i < len(self.infos):
                info = self.infos[i]
            else:
                info = infer_dataset_info(read_annotations(ann)[0], ann)
            if not Path(ann).is_file():
                raise VitPoseError(f"validation annotation file not found: {ann}")
            if not Path(images).is_dir():
                raise VitPoseError(f"validation images folder not found: {images}")
            self.val_sets.append((ann, images, info))

    def _resume_dir(self) -> Path:
        last = self.out / "last"
        for candidate in (last, last.with_name("last.old")):
            if (candidate / STATE_NAME).is_file():
                return candidate
        raise VitPoseError(f"nothing to resume in {self.out}: no {last / STATE_NAME} (train without --resume first)")

    def _load_state(self, directory: Path) -> None:
        state = torch.load(directory / STATE_NAME, map_location="cpu", weights_only=True)
        if state["batch_in_epoch"] and (state["world_size"], state["batch_size"]) != (
            self.world,
            self.config.batch_size,
        ):
            raise VitPoseError(
                f"the run was interrupted mid-epoch with {state['world_size']} process(es) and batch size "
                f"{state['batch_size']}; resume with the same (now {self.world} and {self.config.batch_size})"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"])
        self.start_batch = int(state["batch_in_epoch"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.best = state["best"]
        self.epoch_loss = [float(state["epoch_loss"][0]), int(state["epoch_loss"][1])]
        self.elapsed = float(state.get("elapsed", 0.0))
        rng = state["rng"][self.rank] if self.rank < len(state["rng"]) else state["rng"][0]
        _set_rng_state(rng, self.device)
        self._say(f"resumed from {directory}: epoch {self.start_epoch + 1}, batch {self.start_batch}, step {self.step}")

    # ------------------------------------------------------------------ checkpoints
    def _gather_rng(self) -> list[dict[str, Any]]:
        mine = _rng_state(self.device)
        if self.dist is None:
            return [mine]
        states: list[Any] = [None] * self.world
        self.dist.all_gather_object(states, mine)
        return states

    def _save_model(self, directory: Path) -> None:
        from vitpose.processor import VitPoseImageProcessor

        self.model.save_pretrained(directory)
        h, w = self.model.config.backbone_config.image_size
        VitPoseImageProcessor(size={"height": h, "width": w}).save_pretrained(directory)

    def save_checkpoint(self, epoch: int, batch_in_epoch: int) -> None:
        """Write `last/` (model + training state) atomically; `epoch` / `batch_in_epoch` say where to go on."""
        rng = self._gather_rng()  # every rank takes part
        if not self.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / "last.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        self._save_model(tmp)
        torch.save(
            {
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng,
                "history": self.history,
                "best": self.best,
                "epoch_loss": list(self.epoch_loss),
                "elapsed": self.elapsed,
                "world_size": self.world,
                "batch_size": self.config.batch_size,
                "config": self.config.to_dict(),
            },
            tmp / STATE_NAME,
        )
        _replace_dir(tmp, self.out / "last")

    def _save_best(self, row: Mapping[str, Any]) -> None:
        tmp = self.out / "best.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        self._save_model(tmp)
        (tmp / "metrics.json").write_text(json.dumps(dict(row), indent=2) + "\n")
        _replace_dir(tmp, self.out / "best")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """Metrics of the model on the validation set(s) (rank 0; empty without validation). The first set's
        metrics keep their names; the others are prefixed with their data set's name."""
        if not self.val_sets:
            return {}
        fn = self._evaluate_fn
        if fn is None:
            from vitpose.evaluation import evaluate as fn
        self.model.eval()
        metrics: dict[str, float] = {}
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for i, (ann, images, info) in enumerate(self.val_sets):
                    report = fn(
                        self.model,
                        ann,
                        images,
                        dataset=info,
                        flip_test=self.config.flip_test,
                        batch_size=self.config.eval_batch_size,
                        device=self.device,
                        progress=False,
                    )
                    for key, value in report.metrics.items():
                        metrics[key if i == 0 else f"{info.name}_{key}"] = float(value)
        finally:
            self.model.train()
        return metrics

    # ------------------------------------------------------------------ the loop
    def _install_signal_handlers(self) -> list[tuple[int, Any]]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return []
        previous = []

        def handler(signum: int, frame: Any) -> None:
            if self.state.stop_requested:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            self.state.request_stop()
            if self.is_main:
                print(
                    "\nvitpose train: stopping after this step (press Ctrl-C again to abort without saving)",
                    file=sys.stderr,
                )

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous.append((sig, signal.signal(sig, handler)))
        return previous

    def _stop_everywhere(self) -> bool:
        if self.dist is None:
            return self.state.stop_requested
        flag = torch.tensor([1.0 if self.state.stop_requested else 0.0], device=self._comm_device)
        self.dist.all_reduce(flag)
        return bool(flag.item() > 0)

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _reduce_mean(self, total: float, count: int) -> float:
        if self.dist is None:
            return total / max(count, 1)
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=self._comm_device)
        self.dist.all_reduce(t)
        return float(t[0] / max(t[1].item(), 1.0))

    def _train_step(self, batch: Mapping[str, torch.Tensor]) -> float:
        dev = self.device
        batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        autocast = (
            torch.autocast(device_type=dev.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            loss = self.loss_module(
                batch["pixel_values"], batch["labels"], batch["label_weights"], batch["dataset_index"]
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip_gradients([p for g in self.optimizer.param_groups for p in g["params"]], self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        value = float(loss.detach())
        if not math.isfinite(value) and self.amp_dtype is None:
            raise VitPoseError(
                f"the loss is {value} at step {self.step}: lower the lr (now {self.lr}) or check the data"
            )
        return value

    def run(self) -> TrainResult:
        """Train (or resume) to `config.epochs`; returns the result (also on a clean stop)."""
        cfg = self.config
        self._init_distributed()
        try:
            self._build()
            if self.is_main:
                self.out.mkdir(parents=True, exist_ok=True)
                saved = {**cfg.to_dict(), "resume": False}  # the file restarts nothing by itself; add --resume
                (self.out / "train_config.json").write_text(json.dumps(saved, indent=2) + "\n")
            self._say(
                f"{len(self.dataset)} training instances, {self.steps_per_epoch} step(s) per epoch, "
                f"{self.world} process(es) on {self.device}"
            )
            previous = self._install_signal_handlers()
            try:
                interrupted = self._loop()
            finally:
                for sig, old in previous:
                    signal.signal(sig, old)
            if self.dist is not None:
                self.dist.barrier()
            return TrainResult(
                model=self.model.eval(),
                history=self.history,
                best=self.best,
                step=self.step,
                epoch=len(self.history),
                interrupted=interrupted,
                out=self.out,
            )
        finally:
            if self.dist is not None and self.dist.is_initialized():
                self.dist.destroy_process_group()

    def _loop(self) -> bool:
        from tqdm import tqdm

        cfg = self.config
        for epoch in range(self.start_epoch, cfg.epochs):
            start = self.start_batch if epoch == self.start_epoch else 0
            if start == 0:
                self.epoch_loss = [0.0, 0]
            self.sampler.set_epoch(epoch, start * self.local_batch)
            self.dataset.set_epoch(epoch)
            self.loader.generator.manual_seed(cfg.seed * 100003 + epoch)
            bar = tqdm(
                total=self.steps_per_epoch,
                initial=start,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                unit="step",
                disable=not (self.is_main and cfg.progress),
                file=sys.stderr,
                leave=False,
            )
            t0 = time.time()
            batch_in_epoch = start
            stopped = False
            for batch in self.loader:
                loss = self._train_step(batch)
                self.step += 1
                batch_in_epoch += 1
                self.epoch_loss[0] += loss * int(batch["labels"].shape[0])
                self.epoch_loss[1] += int(batch["labels"].shape[0])
                lr = self.optimizer.param_groups[-1]["lr"]
                st = self.state
                st.step, st.epoch, st.batch_in_epoch, st.loss, st.lr = self.step, epoch, batch_in_epoch, loss, lr
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3g}", lr=f"{lr:.2g}")
                if self.callback is not None:
                    self.callback(self.state)
                if self._stop_everywhere():
                    stopped = True
                    break
                if cfg.save_interval and self.step % cfg.save_interval == 0 and batch_in_epoch < self.steps_per_epoch:
                    self.elapsed += time.time() - t0
                    t0 = time.time()
                    self.save_checkpoint(epoch, batch_in_epoch)
            bar.close()
            self.elapsed += time.time() - t0
            if batch_in_epoch >= self.steps_per_epoch:
                last = epoch + 1 == cfg.epochs
                every = cfg.eval_interval > 0 and (epoch + 1) % cfg.eval_interval == 0
                evaluate = bool(self.val_sets) and (last or every)
                write = last or stopped or evaluate or (epoch + 1) % max(cfg.checkpoint_interval, 1) == 0
                self._end_epoch(epoch, evaluate=evaluate, write=write)
                if write:
                    self.save_checkpoint(epoch + 1, 0)
            else:
                self.save_checkpoint(epoch, batch_in_epoch)
            if stopped:
                self._say(f"stopped at step {self.step}; {self.out / 'last'} holds it: resume with --resume")
                return True
        return False

    def _end_epoch(self, epoch: int, evaluate: bool, write: bool = True) -> None:
        loss = self._reduce_mean(*self.epoch_loss)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": self.step,
            "lr": self.optimizer.param_groups[-1]["lr"],
            "loss": loss,
            "time_s": round(self.elapsed, 3),
        }
        if evaluate and self.is_main:
            row.update(self.evaluate())
        if self.dist is not None:
            box = [row]
            self.dist.broadcast_object_list(box, src=0)
            row = box[0]
        self.history.append(row)
        key = "AP" if "AP" in row else ("PCKh" if "PCKh" in row else None)
        improved = key is not None and (self.best is None or row[key] > self.best.get(key, -math.inf))
        if improved:
            self.best = dict(row)
        if self.is_main:
            if improved:
                self._save_best(row)
            if write:
                _write_csv(self.history, self.out / "log.csv")
                try:
                    plot_history(self.history, self.out / "training.png")
                except OSError as err:  # a plot is not worth stopping a run for
                    warnings.warn(f"could not write the training plot: {err}", stacklevel=2)
            if write:
                shown = f", {key} {row[key]:.4f} (best {self.best[key]:.4f})" if key else ""
                self._say(f"epoch {epoch + 1}/{self.config.epochs}: step {self.step}, loss {loss:.4g}{shown}")


def train(
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    model: str | os.PathLike[str] | VitPoseForPoseEstimation | None = None,
    evaluate_fn: Callable[..., Any] | None = None,
    callback: Callable[[TrainerState], None] | None = None,
    **settings: Any,
) -> TrainResult:
    """Train or fine-tune a ViTPose / ViTPose++ model (see `TrainConfig` for the settings).

    Either a `TrainConfig`, a mapping of its fields, or the fields as keyword arguments::

        result = train(model="usyd-community/vitpose-base-simple", train_annotations="train.json",
                       train_images="images/", val_annotations="val.json", val_images="images/",
                       epochs=20, batch_size=32, lr=1e-4, out="runs/finetune")
        result.model, result.history, result.best

    `model` is a checkpoint or preset name (the `model` setting) or a `VitPoseForPoseEstimation` to train in place.
    `evaluate_fn` replaces `vitpose.evaluation.evaluate`; `callback(state)` runs after every step.
    """
    instance = model if isinstance(model, VitPoseForPoseEstimation) else None
    if model is not None and instance is None:
        settings["model"] = str(model)
    elif (
        instance is not None
        and "model" not in settings
        and not (isinstance(config, TrainConfig) or (isinstance(config, Mapping) and "model" in config))
    ):
        settings["model"] = type(instance).__name__
    if config is None:
        config = TrainConfig(**settings)
    elif isinstance(config, Mapping):
        config = TrainConfig.from_dict({**config, **settings})
    elif settings:
        config = dataclasses.replace(config, **settings)
    return Trainer(config, model=instance, evaluate_fn=evaluate_fn, callback=callback).run()
