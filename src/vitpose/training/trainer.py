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

import dataclasses
import json
import os
import random
import signal
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
from vitpose.errors import CheckpointError, ConfigError, VitPoseError
from vitpose.models.pose import VitPoseForPoseEstimation
from vitpose.training.augment import AugmentConfig
from vitpose.training.checkpointing import check_fresh_out, find_resume_dir, load_training_state
from vitpose.training.data import KeypointDataset, MultiDataset, ResumableSampler, collate_samples, read_annotations
from vitpose.training.distributed import (
    distributed_env,
    init_process_group,
    local_batch_size,
    pick_device,
    wrap_ddp,
)
from vitpose.training.loop import LossFn, TrainerState, TrainingLoop, _LossModule, heatmap_loss
from vitpose.training.model_setup import build_training_model
from vitpose.training.optim import build_optimizer, build_scheduler, default_layer_decay, default_lr_steps

__all__ = ["LossFn", "TrainConfig", "TrainResult", "Trainer", "TrainerState", "heatmap_loss", "train"]


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
        unlabelled: also train on annotations with a box and no labelled keypoint (their labels weigh 0): only
            for a loss that learns without labels (`vitpose distill`, whose teacher's heatmaps label them).
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
    unlabelled: bool = False
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


class Trainer(TrainingLoop):
    """One training run (see the module docstring). Most users call `train(config)`.

    This class sets the run up (process group, device, model, data, optimiser, schedule, mixed precision, resume);
    the epochs themselves are `vitpose.training.loop.TrainingLoop`'s, and the files in `out`
    `vitpose.training.checkpointing`'s.

    Args:
        config: the settings.
        model: train this model instead of loading `config.model` (heads are still fitted to the data sets).
        evaluate_fn: replaces `vitpose.evaluation.evaluate` (same signature and `EvalReport.metrics`).
        callback: called after every optimiser step with a `TrainerState` (e.g. to stop early).
        loss_fn: the training loss, `loss_fn(model, batch, outputs) -> loss` or `-> (loss, logs)`, e.g. for
            knowledge distillation; default `vitpose.training.loop.heatmap_loss`, the original's weighted heatmap
            MSE. `model` is the `VitPoseForPoseEstimation` being trained, `batch` holds `pixel_values`
            (B, 3, H, W), `labels` (B, K, h, w), `label_weights` (B, K) and `dataset_index` (B,) on the training
            device, and `outputs` is the model's `VitPoseEstimatorOutput` for it (`heatmaps` (B, K, h, w),
            `num_keypoints` (B,) or None); it runs inside the autocast region, and what it returns is what is
            optimised. `logs` (name -> number) reach the callback as `TrainerState.logs`. See `heatmap_loss`.
        frozen: names of parameters (as `model.named_parameters()`) that do not learn: no gradient, not in the
            optimiser, bit-identical at the end (e.g. the student's knowledge token in `vitpose distill`).
        train_only: when given, the only parameters that learn; every other one is frozen and the model runs in
            evaluation mode (no dropout, stochastic depth or BatchNorm statistics updates): a frozen network with
            a few added parameters, as the teacher whose knowledge token `vitpose distill` trains.
        keep_heads: the model's heads must fit the data sets as they are: a head that would be replaced or added
            is a `VitPoseError` instead (a teacher, whose heads are its knowledge).
        prepare: `prepare(model)` runs on the built model before the optimiser is made, on a fresh run only (a
            resumed run's checkpoint holds what it did), e.g. to add the student's knowledge token.
        command: the command the progress lines name ("vitpose train: ...").
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: VitPoseForPoseEstimation | None = None,
        evaluate_fn: Callable[..., Any] | None = None,
        callback: Callable[[TrainerState], None] | None = None,
        loss_fn: LossFn | None = None,
        frozen: Sequence[str] = (),
        train_only: Sequence[str] | None = None,
        keep_heads: bool = False,
        prepare: Callable[[VitPoseForPoseEstimation], None] | None = None,
        command: str = "train",
    ) -> None:
        self.command = command
        self.keep_heads = keep_heads
        self.prepare = prepare
        self.config = config
        self.frozen = tuple(frozen)
        self.train_only = None if train_only is None else tuple(train_only)
        self._model_arg = model
        self._evaluate_fn = evaluate_fn
        self.callback = callback
        self.loss_fn: LossFn = loss_fn if loss_fn is not None else heatmap_loss
        self.state = TrainerState()
        self.out = Path(config.out)
        self.rank, self.world, self.local_rank = distributed_env()
        self.is_main = self.rank == 0

    # ------------------------------------------------------------------ set-up
    def _init_distributed(self) -> None:
        self.device = pick_device(self.config.device, self.local_rank, self.world)
        # A process group started by the caller (`vitpose distill` runs two trainings in one) stays for it.
        self._owns_group = self.world > 1 and not torch.distributed.is_initialized()
        self.dist = init_process_group(self.device, self.world)
        self.local_batch = local_batch_size(self.config.batch_size, self.world)

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
        if cfg.unlabelled and self.loss_fn is heatmap_loss:
            raise VitPoseError(
                "unlabelled annotations teach the default loss nothing (their labels weigh 0): use vitpose distill, "
                "whose teacher's heatmaps label them, or a loss_fn that needs no labels"
            )
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self._loaded_annotations: dict[str, Any] = {}
        self.infos = self._dataset_specs()
        resume_dir = find_resume_dir(self.out) if cfg.resume else None
        if resume_dir is None:
            check_fresh_out(self.out)
        source: Any = self._model_arg if self._model_arg is not None else cfg.model
        if resume_dir is not None:
            source = str(resume_dir)
        try:
            model, changes = build_training_model(
                source,
                self.infos,
                # (width, height), checked by TrainConfig; passed on as "HEIGHTxWIDTH" text, which warns about
                # nothing.
                input_size=None if cfg.input_size is None else f"{cfg.input_size[1]}x{cfg.input_size[0]}",
                decoder=cfg.decoder if resume_dir is None else None,
                drop_path=cfg.drop_path,
                keep_heads=self.keep_heads,
            )
        except (CheckpointError, ConfigError) as err:
            if resume_dir is None:
                raise
            raise type(err)(
                f"cannot resume from {resume_dir}: {err}. Start a fresh run (without --resume, with another --out), "
                "or resume a run whose --out holds a good last/"
            ) from None
        for change in changes:
            self._say(change)
        if self.prepare is not None and resume_dir is None:
            self.prepare(model)
        self.model = model.to(self.device)
        self._freeze()
        self.training_mode()
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
                unlabelled=cfg.unlabelled,
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
        self.loss_module: nn.Module = wrap_ddp(
            _LossModule(self.model, self.loss_fn), self.device, self.world, find_unused_parameters=multi_head
        )
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.start_epoch, self.start_batch, self.step = 0, 0, 0
        self.epoch_loss = [0.0, 0]
        self.epoch_logs: dict[str, list[float]] = {}
        self.elapsed = 0.0
        self._build_validation()
        if resume_dir is not None:
            self._load_state(resume_dir)

    def _freeze(self) -> None:
        """Apply `frozen` and `train_only` (names checked against the model's parameters)."""
        params = dict(self.model.named_parameters())
        unknown = sorted({*self.frozen, *(self.train_only or ())} - set(params))
        if unknown:
            raise VitPoseError(f"no parameter named {unknown} in the model to train (frozen / train_only)")
        if self.train_only is not None:
            for name, param in params.items():
                param.requires_grad_(name in self.train_only)
        for name in self.frozen:
            params[name].requires_grad_(False)
        if not any(p.requires_grad for p in params.values()):
            raise VitPoseError("every parameter of the model is frozen: there is nothing to train")

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

    def _load_state(self, directory: Path) -> None:
        point = load_training_state(
            directory,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            device=self.device,
            rank=self.rank,
            world_size=self.world,
            batch_size=self.config.batch_size,
        )
        self.start_epoch, self.start_batch, self.step = point.epoch, point.batch_in_epoch, point.step
        self.history, self.best = point.history, point.best
        self.epoch_loss, self.elapsed, self.epoch_logs = point.epoch_loss, point.elapsed, point.epoch_logs
        self._say(f"resumed from {directory}: epoch {self.start_epoch + 1}, batch {self.start_batch}, step {self.step}")

    # ------------------------------------------------------------------ the run
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
            if self._owns_group and self.dist is not None and self.dist.is_initialized():
                self.dist.destroy_process_group()


def train(
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    model: str | os.PathLike[str] | VitPoseForPoseEstimation | None = None,
    evaluate_fn: Callable[..., Any] | None = None,
    callback: Callable[[TrainerState], None] | None = None,
    loss_fn: LossFn | None = None,
    **settings: Any,
) -> TrainResult:
    """Train or fine-tune a ViTPose / ViTPose++ model (see `TrainConfig` for the settings).

    Either a `TrainConfig`, a mapping of its fields, or the fields as keyword arguments::

        result = train(model="usyd-community/vitpose-base-simple", train_annotations="train.json",
                       train_images="images/", val_annotations="val.json", val_images="images/",
                       epochs=20, batch_size=32, lr=1e-4, out="runs/finetune")
        result.model, result.history, result.best

    `model` is a checkpoint or preset name (the `model` setting) or a `VitPoseForPoseEstimation` to train in place.
    `evaluate_fn` replaces `vitpose.evaluation.evaluate`; `callback(state)` runs after every step; `loss_fn(model,
    batch, outputs)` replaces the training loss (see `Trainer` and `vitpose.training.loop.heatmap_loss`).
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
    return Trainer(config, model=instance, evaluate_fn=evaluate_fn, callback=callback, loss_fn=loss_fn).run()
