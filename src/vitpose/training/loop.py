"""The trainer's step and epoch loop: one optimiser step (through the replaceable loss), the epochs with their
progress bar, callback and clean stop, the validation schedule, and when `last/` and `best/` are written.

`TrainingLoop` is the running half of `vitpose.training.trainer.Trainer`; the set-up half (model, data, optimiser,
schedule, mixed precision, process group, resume) lives there and provides the attributes annotated below.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitpose.datasets import DatasetInfo
from vitpose.errors import VitPoseError
from vitpose.models.loss import heatmap_mse_loss
from vitpose.models.pose import VitPoseEstimatorOutput, VitPoseForPoseEstimation
from vitpose.training.checkpointing import rng_state, write_best, write_csv, write_last
from vitpose.training.data import MultiDataset, ResumableSampler
from vitpose.training.distributed import all_gather_objects, any_everywhere, broadcast_object, mean_everywhere
from vitpose.training.optim import clip_gradients
from vitpose.training.plot import plot_history

__all__ = ["LossFn", "LossOutput", "TrainerState", "TrainingLoop", "heatmap_loss"]

LossOutput = torch.Tensor | tuple[torch.Tensor, Mapping[str, Any]]
"""What a loss function returns: the scalar to minimise, or (that scalar, named values to log)."""

LossFn = Callable[[VitPoseForPoseEstimation, Mapping[str, torch.Tensor], VitPoseEstimatorOutput], LossOutput]
"""`loss_fn(model, batch, outputs)`; see `heatmap_loss` for the arguments."""


def heatmap_loss(
    model: VitPoseForPoseEstimation, batch: Mapping[str, torch.Tensor], outputs: VitPoseEstimatorOutput
) -> torch.Tensor:
    """The default training loss: the original's weighted heatmap MSE (`vitpose.models.loss.heatmap_mse_loss`,
    mmpose `JointsMSELoss(use_target_weight=True)`, summed over the heads of a mixed ViTPose++ batch), exactly what
    `model(pixel_values, dataset_index=..., labels=..., label_weights=...).loss` computes.

    This is also the signature of `Trainer(..., loss_fn=...)`. The trainer calls it once per step, inside the
    autocast region (so under `amp` the heatmaps may be fp16 / bf16), after the forward pass of the training model
    (DistributedDataParallel under torchrun) and before `backward`; what it returns is what is optimised.

    Args:
        model: the model being trained (the plain `VitPoseForPoseEstimation`, never the DDP wrapper; in train
            mode). A distillation loss keeps its teacher in a closure and runs it on `batch["pixel_values"]` under
            `torch.no_grad()`; for feature distillation, register a forward hook on `model.backbone` of the model
            passed as `Trainer(..., model=...)`.
        batch: on the training device, from `vitpose.training.collate_samples`, B = this process's share of the
            global batch, K = the largest keypoint count in the batch, (h, w) = the heatmap size:
            - `pixel_values` (B, 3, H, W) float32, normalised crops;
            - `labels` (B, K, h, w) float32, target heatmaps (zero beyond each sample's own keypoints);
            - `label_weights` (B, K) float32, target weights (0 for unlabelled or padded keypoints);
            - `dataset_index` (B,) int64, each sample's head / expert (0 = COCO; see `VitPoseConfig`);
            - `sample_index` (B,) int64, each sample's index in the training set (the same sample in every epoch:
              a key for caching what depends only on it, when augmentation is off).
        outputs: the student's `model(batch["pixel_values"], dataset_index=batch["dataset_index"])`:
            `heatmaps` (B, K, h, w) (padded like `labels` in a mixed batch) and `num_keypoints` (B,) int64 (None
            when the batch uses one head).

    Returns:
        A scalar tensor (0-d) with its graph; or `(loss, logs)`, where `logs` maps names to numbers (or 0-d
        tensors), shown to the per-step callback as `TrainerState.logs` (floats).
    """
    return heatmap_mse_loss(outputs.heatmaps, batch["labels"], batch["label_weights"], outputs.num_keypoints)


def unwrap_worker_error(err: BaseException) -> BaseException:
    """The error a DataLoader worker raised, as `--workers 0` raises it.

    PyTorch re-raises a worker's exception in the main process as the same type with the message "Caught X in
    DataLoader worker process N. Original Traceback (most recent call last): ..." (the whole worker traceback), which
    the command line would print as its one-line message. This gives a new exception of the same type with the
    original message only (the worker's traceback is kept as its `worker_traceback` attribute); `err` itself where
    it did not come from a worker or cannot be rebuilt.
    """
    text = str(err)
    if not (text.startswith("Caught ") and "DataLoader worker" in text and "Original Traceback" in text):
        return err
    kind = type(err)
    for prefix in (f"{kind.__module__}.{kind.__qualname__}: ", f"{kind.__qualname__}: "):
        at = text.rfind("\n" + prefix)
        if at >= 0:
            message = text[at + 1 + len(prefix) :].strip()
            break
    else:
        return err
    try:
        unwrapped = kind(message)
    except Exception:  # an exception type that takes other arguments: keep PyTorch's
        return err
    unwrapped.worker_traceback = text  # type: ignore[attr-defined]
    return unwrapped


def loader_batches(loader: Iterable[Any]) -> Iterator[Any]:
    """The batches of `loader`, with a worker's `VitPoseError` or `OSError` raised as `--workers 0` raises it
    (`unwrap_worker_error`): one line on the command line, not the worker's traceback."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (VitPoseError, OSError) as err:
            unwrapped = unwrap_worker_error(err)
            if unwrapped is err:
                raise
            raise unwrapped from None
        yield batch


@dataclass
class TrainerState:
    """Passed to the per-step callback: where training is, and a way to stop it cleanly.

    `logs`: the named values the loss function returned with the loss at this step (empty for the default loss).
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    loss: float = float("nan")
    lr: float = 0.0
    stop_requested: bool = False
    logs: dict[str, float] = field(default_factory=dict)

    def request_stop(self) -> None:
        """Finish the current step, write `last/` with the exact position, and return (as Ctrl-C does)."""
        self.stop_requested = True


class _LossModule(nn.Module):
    """Model + loss in one forward, so that DistributedDataParallel sees the loss as the output of its forward."""

    def __init__(self, model: VitPoseForPoseEstimation, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, Mapping[str, Any]]:
        outputs = self.model(batch["pixel_values"], dataset_index=batch["dataset_index"])
        result = self.loss_fn(self.model, batch, outputs)
        loss, logs = result if isinstance(result, tuple) else (result, {})
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise VitPoseError(
                f"loss_fn must return a scalar (0-d) tensor or (tensor, logs), got {type(loss).__name__}"
                + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else "")
            )
        return loss, logs


class TrainingLoop:
    """The epochs of a run; `Trainer` builds what it uses (see `vitpose.training.trainer`)."""

    # Provided by the set-up (`Trainer._build` and `Trainer._init_distributed`).
    config: Any  # TrainConfig
    command: str  # the command named in the messages ("train", "distill")
    out: Path
    state: TrainerState
    callback: Callable[[TrainerState], None] | None
    _evaluate_fn: Callable[..., Any] | None
    is_main: bool
    world: int
    dist: Any
    device: torch.device
    local_batch: int
    model: VitPoseForPoseEstimation
    train_only: tuple[str, ...] | None
    loss_module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    amp_dtype: torch.dtype | None
    lr: float
    dataset: MultiDataset
    sampler: ResumableSampler
    loader: torch.utils.data.DataLoader
    steps_per_epoch: int
    val_sets: list[tuple[str, str, DatasetInfo]]
    start_epoch: int
    start_batch: int
    step: int
    epoch_loss: list[float]
    epoch_logs: dict[str, list[float]]  # name -> [sum over samples, samples] of the loss function's logs
    elapsed: float
    history: list[dict[str, Any]]
    best: dict[str, Any] | None

    def training_mode(self) -> None:
        """The model's mode while it learns: train mode, or evaluation mode when only added parameters learn
        (`Trainer(..., train_only=...)`: a frozen network runs as at inference)."""
        self.model.train(self.train_only is None)

    def _say(self, message: str) -> None:
        if self.is_main and self.config.progress:
            from tqdm import tqdm

            tqdm.write(f"vitpose {self.command}: {message}", file=sys.stderr)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, epoch: int, batch_in_epoch: int) -> None:
        """Write `last/` (model + training state) atomically; `epoch` / `batch_in_epoch` say where to go on."""
        rng = all_gather_objects(self.dist, rng_state(self.device), self.world)  # every rank takes part
        if not self.is_main:
            return
        write_last(
            self.out,
            self.model,
            epoch=epoch,
            batch_in_epoch=batch_in_epoch,
            step=self.step,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            rng=rng,
            history=self.history,
            best=self.best,
            epoch_loss=self.epoch_loss,
            epoch_logs=self.epoch_logs,
            elapsed=self.elapsed,
            world_size=self.world,
            batch_size=self.config.batch_size,
            config=self.config.to_dict(),
        )

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
            self.training_mode()
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

    def _train_step(self, batch: Mapping[str, torch.Tensor]) -> float:
        dev = self.device
        batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        autocast = (
            torch.autocast(device_type=dev.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            loss, logs = self.loss_module(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip_gradients([p for g in self.optimizer.param_groups for p in g["params"]], self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        value = float(loss.detach())
        self.state.logs = {k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in logs.items()}
        if not math.isfinite(value) and self.amp_dtype is None:
            raise VitPoseError(
                f"the loss is {value} at step {self.step}: lower the lr (now {self.lr}) or check the data"
            )
        return value

    def _loop(self) -> bool:
        """Train from (start_epoch, start_batch) to `config.epochs`; True when stopped early."""
        from tqdm import tqdm

        cfg = self.config
        for epoch in range(self.start_epoch, cfg.epochs):
            start = self.start_batch if epoch == self.start_epoch else 0
            if start == 0:
                self.epoch_loss = [0.0, 0]
                self.epoch_logs = {}
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
            for batch in loader_batches(self.loader):
                loss = self._train_step(batch)
                self.step += 1
                batch_in_epoch += 1
                samples = int(batch["labels"].shape[0])
                self.epoch_loss[0] += loss * samples
                self.epoch_loss[1] += samples
                for name, value in self.state.logs.items():
                    total = self.epoch_logs.setdefault(name, [0.0, 0])
                    total[0] += value * samples
                    total[1] += samples
                lr = self.optimizer.param_groups[-1]["lr"]
                st = self.state
                st.step, st.epoch, st.batch_in_epoch, st.loss, st.lr = self.step, epoch, batch_in_epoch, loss, lr
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3g}", lr=f"{lr:.2g}")
                if self.callback is not None:
                    self.callback(self.state)
                if any_everywhere(self.dist, self.state.stop_requested, self.device):
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
        loss = mean_everywhere(self.dist, *self.epoch_loss, self.device)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": self.step,
            "lr": self.optimizer.param_groups[-1]["lr"],
            "loss": loss,
            "time_s": round(self.elapsed, 3),
        }
        for name in sorted(self.epoch_logs):  # the loss function's logs, as epoch means (every rank has the same)
            mean = mean_everywhere(self.dist, *self.epoch_logs[name], self.device)
            row.setdefault(name, mean)  # never in place of the row's own columns
        if evaluate and self.is_main:
            row.update(self.evaluate())
        row = broadcast_object(self.dist, row)
        self.history.append(row)
        key = "AP" if "AP" in row else ("PCKh" if "PCKh" in row else None)
        improved = key is not None and (self.best is None or row[key] > self.best.get(key, -math.inf))
        if improved:
            self.best = dict(row)
        if self.is_main:
            if improved:
                write_best(self.out, self.model, row)
            if write:
                write_csv(self.history, self.out / "log.csv")
                try:
                    plot_history(self.history, self.out / "training.png")
                except OSError as err:  # a plot is not worth stopping a run for
                    warnings.warn(f"could not write the training plot: {err}", stacklevel=2)
            if write:
                shown = f", {key} {row[key]:.4f} (best {self.best[key]:.4f})" if key else ""
                self._say(f"epoch {epoch + 1}/{self.config.epochs}: step {self.step}, loss {loss:.4g}{shown}")
