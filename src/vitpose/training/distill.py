"""Knowledge transfer from a large ViTPose to a small one: `distill(DistillConfig(...))` or `vitpose distill`.

The ViTPose paper (arXiv 2204.12484, its section on transferability) gives two ways, used alone or together:

- **output distillation**: the student's heatmaps are pulled towards the teacher's for the same input,
  ``L_od = MSE(K_s, K_t)``;
- **the knowledge token**: a learnable token ``t`` is appended to the teacher's visual tokens after the patch
  embedding; the well-trained teacher is frozen and only ``t`` is tuned for a few epochs on the pose loss,
  ``t* = argmin_t MSE(T({t; X}), K_gt)`` (stage 1). The student then trains with ``t*`` frozen and concatenated
  to its own tokens: ``L_td = MSE(S({t*; X}), K_gt)``, or with both, ``L_tod = MSE(S({t*; X}), K_t) +
  MSE(S({t*; X}), K_gt)`` (stage 2).

What this module decides where the paper says nothing (each said again in the README):

- **Widths.** The paper's experiment teaches ViTPose-B (width 768) from ViTPose-L (1024) but does not say how a
  1024-wide token enters a 768-wide network. Here a token of the student's width is copied in as it is; a token of
  another width is carried by the affine map that best sends the teacher's embedded patch tokens of the training
  crops to the student's embedded patch tokens of the same crops (least squares, `carry_token`). The token lives in
  that space (it is prepended after the position embedding), so the map carries it to where the student's patches
  of the same image are. The map is fitted once, before stage 2, and the token stays frozen afterwards.
- **Frozen teacher.** In stage 1 the teacher runs in evaluation mode (no stochastic depth or dropout, BatchNorm
  statistics untouched): only the token changes, bit for bit.
- **Teacher heatmaps** ``K_t`` are the teacher's own, without the token, for exactly the student's input: the same
  augmented crop, flipped when the sample is. With augmentation off each crop is the same in every epoch, so they
  are computed once per sample and kept (`DistillationLoss`, up to `TEACHER_CACHE_BYTES`).
- **The weights.** ``loss = gt_weight * L_gt + distill_weight * L_od``; the paper's sum is both weights 1.
  ``L_od`` is the weighted heatmap MSE of `heatmap_mse_loss` with every keypoint weighted 1 (the teacher speaks
  for keypoints the labels leave out); ``gt_weight=0`` trains from the teacher alone, without labels.

Stage 1 runs in ``OUT/token`` (a training run of its own: ``last/``, ``log.csv``, ``training.png``) and ends with
``OUT/knowledge_token.safetensors``; stage 2 writes ``OUT`` as `vitpose train` does. ``resume=True`` continues
whichever stage was interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vitpose.errors import VitPoseError
from vitpose.models.loss import heatmap_mse_loss
from vitpose.models.pose import VitPoseEstimatorOutput, VitPoseForPoseEstimation
from vitpose.models.surgery import set_knowledge_token
from vitpose.outputs import atomic_write_bytes
from vitpose.training.checkpointing import STATE_NAME, check_fresh_out
from vitpose.training.data import KeypointDataset
from vitpose.training.distributed import distributed_env, init_process_group, pick_device
from vitpose.training.trainer import TrainConfig, Trainer, TrainerState, TrainResult

__all__ = [
    "METHODS",
    "TEACHER_CACHE_BYTES",
    "TOKEN_FILE",
    "TOKEN_KEY",
    "DistillConfig",
    "DistillResult",
    "DistillationLoss",
    "carry_token",
    "distill",
    "load_token",
    "save_token",
]

METHODS = ("token", "output", "both")
TOKEN_FILE = "knowledge_token.safetensors"
TOKEN_KEY = "knowledge_token"
TOKEN_PARAMETER = "backbone.knowledge_token"
TOKEN_RUN = "token"  # stage 1's folder inside OUT
CONFIG_FILE = "distill_config.json"
TEACHER_CACHE_BYTES = 2 * 1024**3
"""The most memory the teacher heatmaps kept with augmentation off may take (per process); beyond it they are
computed on the fly, as with augmentation."""
CARRY_CROPS = 256  # training crops the width-changing map is fitted on


# ---------------------------------------------------------------------------------------------- the token file
def save_token(path: str | Path, token: torch.Tensor, **metadata: Any) -> None:
    """Write a knowledge token, (C,) or (1, 1, C), to a small safetensors file (key `TOKEN_KEY`, float32, shape
    (C,)); `metadata` values are kept as text (the teacher, its width, the stage-1 loss)."""
    from safetensors.torch import save

    value = token.detach().float().reshape(-1).contiguous().cpu()
    meta = {"width": str(value.numel()), **{k: str(v) for k, v in metadata.items()}}
    atomic_write_bytes(path, save({TOKEN_KEY: value}, metadata=meta))


def load_token(path: str | Path) -> tuple[torch.Tensor, dict[str, str]]:
    """(token (C,) float32, metadata) of a file `save_token` wrote; a `VitPoseError` naming the file otherwise."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise VitPoseError(f"knowledge token file not found: {path}")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise VitPoseError(f"{path} is not a knowledge token file ({err}); vitpose distill writes one") from None
    value = tensors.get(TOKEN_KEY)
    if value is None or value.ndim != 1 or len(tensors) != 1:
        raise VitPoseError(
            f"{path} is not a knowledge token file: it holds {sorted(tensors)} (expected one 1-D {TOKEN_KEY!r})"
        )
    if not torch.isfinite(value).all():
        raise VitPoseError(f"{path}: the knowledge token holds NaN or infinite values")
    return value.float(), metadata


# ---------------------------------------------------------------------------------------------- widths
@torch.no_grad()
def carry_token(
    token: torch.Tensor,
    teacher: VitPoseForPoseEstimation,
    student: VitPoseForPoseEstimation,
    pixel_values: torch.Tensor,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """The teacher's knowledge token, (C_t,), in the student's token space: (C_s,).

    Same width: the token itself (the paper). Other widths: ``token @ A + b``, where (A, b) is the affine map that
    best sends the teacher's embedded patch tokens (`embed_patches`: patch and position embedding, where the token
    is prepended) of `pixel_values` (N, 3, H, W) to the student's of the same crops, fitted by least squares in
    float64 with a ridge of `ridge` x the mean feature energy (which only matters when the crops do not span the
    teacher's width).
    """
    value = token.detach().reshape(-1).double().cpu()
    width_t = teacher.config.backbone_config.hidden_size
    width_s = student.config.backbone_config.hidden_size
    if value.numel() != width_t:
        raise VitPoseError(f"the knowledge token has {value.numel()} values but the teacher's width is {width_t}")
    if width_t == width_s:
        return value.float()

    def tokens(model: VitPoseForPoseEstimation) -> torch.Tensor:
        param = model.backbone.pos_embed
        out = model.backbone.embed_patches(pixel_values.to(device=param.device, dtype=param.dtype))
        return out.reshape(-1, out.shape[-1]).double().cpu()

    source, target = tokens(teacher), tokens(student)
    if source.shape[0] != target.shape[0]:
        raise VitPoseError(
            "the teacher and the student cut the crops into different token grids "
            f"({source.shape[0]} and {target.shape[0]} tokens): give the student the teacher's input size"
        )
    design = torch.cat([source, torch.ones(source.shape[0], 1, dtype=source.dtype)], dim=1)
    gram = design.T @ design
    gram += ridge * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
    solution = torch.linalg.solve(gram, design.T @ target)  # (C_t + 1, C_s)
    return (torch.cat([value, value.new_ones(1)]) @ solution).float()


def _training_crops(config: TrainConfig, model: VitPoseForPoseEstimation, count: int) -> torch.Tensor:
    """The first `count` plain (unaugmented) crops of the first training file, at the model's input size."""
    dataset = KeypointDataset(
        config.train_annotations[0],
        config.train_images[0],
        config.datasets[0] if config.datasets else None,
        input_size=model.config.input_size,
        augment=False,
        cache_images=False,
    )
    crops = []
    for index in range(min(count, len(dataset))):
        crops.append(dataset.sample(index, 0).pixel_values)
    return torch.stack(crops)


# ---------------------------------------------------------------------------------------------- the loss
class DistillationLoss:
    """``gt_weight * L_gt + distill_weight * L_od`` as a `Trainer` loss function, returning (loss, logs).

    ``L_gt`` is the default training loss (`heatmap_mse_loss` against the labels, with their target weights);
    ``L_od`` the same MSE against the teacher's heatmaps for the batch's own crops, every keypoint weighted 1 (the
    padded ones of a mixed ViTPose++ batch excluded). Logs: `gt_loss`, `distill_loss`.

    Args:
        teacher: the teacher (moved to the batch's device on first use, evaluation mode, frozen).
        gt_weight, distill_weight: the weights (>= 0, not both 0).
        cache: keep each sample's teacher heatmaps by its `sample_index` (only right when the crops do not change
            between epochs: augmentation off), in host memory, up to `cache_bytes` in all.
        flip_test: the teacher's heatmaps averaged with those of the mirrored crop, flipped back (the flip test of
            inference: better targets for twice the teacher's work); off in the paper's formulation.
    """

    def __init__(
        self,
        teacher: VitPoseForPoseEstimation,
        *,
        gt_weight: float = 1.0,
        distill_weight: float = 1.0,
        cache: bool = False,
        cache_bytes: int = TEACHER_CACHE_BYTES,
        flip_test: bool = False,
    ) -> None:
        if not (gt_weight >= 0 and distill_weight >= 0) or gt_weight + distill_weight <= 0:
            raise VitPoseError(
                f"gt_weight and distill_weight must be >= 0 and not both 0, got {gt_weight} and {distill_weight}"
            )
        self.teacher = teacher.eval().requires_grad_(False)
        self.gt_weight = float(gt_weight)
        self.distill_weight = float(distill_weight)
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None
        self.cache_bytes = int(cache_bytes)
        self.flip_test = bool(flip_test)
        self._cached_bytes = 0
        self.teacher_crops = 0  # crops the teacher has run on (the cache's saving shows here)

    def _teacher_heatmaps(self, batch: Mapping[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        pixels, index = batch["pixel_values"], batch["dataset_index"]
        check_same_input(self.teacher, tuple(pixels.shape[-2:]))
        keys = batch.get("sample_index")
        cache = self.cache if keys is not None else None
        if cache is not None:
            known = [int(k) for k in keys.tolist()]
            missing = [i for i, k in enumerate(known) if k not in cache]
        else:
            known, missing = [], list(range(pixels.shape[0]))
        fresh = None
        if missing:
            param = next(self.teacher.parameters())
            if param.device != pixels.device:
                self.teacher.to(pixels.device)
            rows = torch.tensor(missing, device=pixels.device)
            with torch.no_grad():
                fresh = self.teacher(pixels[rows], dataset_index=index[rows], flip_test=self.flip_test).heatmaps
            self.teacher_crops += len(missing)
        if cache is None:
            assert fresh is not None
            heatmaps = fresh
        else:
            computed = dict(zip(missing, fresh if fresh is not None else [], strict=True))
            for i, value in computed.items():
                size = value.numel() * value.element_size()
                if self._cached_bytes + size <= self.cache_bytes:  # in host memory: the GPU's is the network's
                    cache[known[i]] = value.detach().to("cpu", copy=True)
                    self._cached_bytes += size
            heatmaps = _stack_padded([computed[i] if i in computed else cache[k] for i, k in enumerate(known)], like)
        if heatmaps.shape != like.shape:
            raise VitPoseError(
                f"the teacher's heatmaps have shape {tuple(heatmaps.shape[1:])} but the student's "
                f"{tuple(like.shape[1:])}: teacher and student need the same input size and keypoints (give the "
                "student the teacher's --input-size and data sets)"
            )
        return heatmaps

    def __call__(
        self, model: VitPoseForPoseEstimation, batch: Mapping[str, torch.Tensor], outputs: VitPoseEstimatorOutput
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        heatmaps, counts = outputs.heatmaps, outputs.num_keypoints
        logs: dict[str, torch.Tensor] = {}
        loss = heatmaps.new_zeros((), dtype=torch.float32)
        if self.gt_weight > 0:
            gt = heatmap_mse_loss(heatmaps, batch["labels"], batch["label_weights"], counts)
            loss = loss + self.gt_weight * gt
            logs["gt_loss"] = gt.detach()
        if self.distill_weight > 0:
            target = self._teacher_heatmaps(batch, heatmaps)
            od = heatmap_mse_loss(heatmaps, target, None, counts)
            loss = loss + self.distill_weight * od
            logs["distill_loss"] = od.detach()
        return loss, logs


def check_same_input(teacher: VitPoseForPoseEstimation, size: tuple[int, int]) -> None:
    """Refuse a student whose crops, (height, width) `size`, are not the teacher's input (it has to see them)."""
    width, height = teacher.config.input_size
    if tuple(size) != (height, width):
        raise VitPoseError(
            f"the student's crops are {size[0]}x{size[1]} but the teacher takes {height}x{width}: teacher and "
            f"student need the same input size (give the student --input-size {height}x{width})"
        )


def _stack_padded(parts: Sequence[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Per-sample heatmaps (K_i, h, w) -> (B, K, h, w) zero-padded like the student's batch."""
    out = like.new_zeros((len(parts), max(like.shape[1], max(p.shape[0] for p in parts)), *parts[0].shape[1:]))
    for i, part in enumerate(parts):
        out[i, : part.shape[0]] = part.to(device=out.device, dtype=out.dtype)
    return out


# ---------------------------------------------------------------------------------------------- the settings
@dataclass
class DistillConfig(TrainConfig):
    """The settings of `distill`: those of `TrainConfig` (data, recipe, output, resume) for the student, and:

    Attributes:
        model: the student: a checkpoint or a preset (`tiny`, `small`, `base`, ...), as `TrainConfig.model`.
        teacher: the teacher checkpoint (hub id, hub-format directory, original `.pth`); its heads must fit the
            training data sets.
        method: "token" (stage 1, then the student with the frozen token on the labels), "output" (the student
            on the labels and the teacher's heatmaps, no token) or "both" (the token and the output loss).
        token: a knowledge token file of an earlier stage 1 (`knowledge_token.safetensors`): stage 1 is skipped.
        token_epochs: stage 1's epochs ("several" in the paper).
        token_lr: stage 1's learning rate (None: `lr`, or 5e-4; 1e-3 for a ViTPose++ teacher).
        gt_weight, distill_weight: ``gt_weight * L_gt + distill_weight * L_od`` in stage 2 (methods output and
            both; the paper's sum is 1 and 1; gt_weight 0 learns from the teacher alone).
        teacher_flip_test: the teacher's heatmaps with the flip test (`DistillationLoss(flip_test=True)`).
        unlabelled (of `TrainConfig`): stage 2 also learns from annotations with a box and no keypoint labels,
            from the teacher's heatmaps alone (methods output and both; stage 1 uses the labelled ones).
    """

    teacher: str | None = None
    method: str = "both"
    token: str | None = None
    token_epochs: int = 5
    token_lr: float | None = None
    gt_weight: float = 1.0
    distill_weight: float = 1.0
    teacher_flip_test: bool = False

    def validate(self) -> None:
        super().validate()
        if not self.teacher:
            raise VitPoseError("teacher is required: the checkpoint to distill from (--teacher)")
        if self.method not in METHODS:
            raise VitPoseError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.token_epochs < 1:
            raise VitPoseError(f"token_epochs must be >= 1, got {self.token_epochs}")
        if self.token_lr is not None and not self.token_lr > 0:
            raise VitPoseError(f"token_lr must be > 0, got {self.token_lr}")
        for name in ("gt_weight", "distill_weight"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise VitPoseError(f"{name} must be a number >= 0, got {value!r}")
        if self.method != "token" and self.gt_weight + self.distill_weight <= 0:
            raise VitPoseError("gt_weight and distill_weight are both 0: there is nothing to learn from")
        if self.unlabelled and self.method == "token":
            raise VitPoseError(
                "unlabelled annotations learn only from the teacher's heatmaps: use method output or both with them"
            )
        if self.method == "output" and self.token is not None:
            raise VitPoseError("method 'output' uses no knowledge token: leave out token (--token)")

    def train_config(self) -> TrainConfig:
        """The student's run: the `TrainConfig` fields of these settings."""
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})

    def token_config(self) -> TrainConfig:
        """Stage 1's run: the teacher (its input size and heads) on the same data, for `token_epochs`, in
        ``OUT/token``; no layer-wise decay (one parameter) and no weight decay (as the position embedding)."""
        return dataclasses.replace(
            self.train_config(),
            model=str(self.teacher),
            out=str(Path(self.out) / TOKEN_RUN),
            epochs=self.token_epochs,
            lr=self.token_lr if self.token_lr is not None else self.lr,
            layer_decay=1.0,
            weight_decay=0.0,
            lr_steps=None,
            input_size=None,
            decoder=None,
            drop_path=None,
            unlabelled=False,  # the token learns from the labels
        )


@dataclass
class DistillResult:
    """What `distill` returns: `student` (stage 2's `TrainResult`; None when stage 1 was interrupted), `token`
    ((C_t,) the teacher's knowledge token, None for method output), `token_run` (stage 1's `TrainResult`; None
    when skipped or done before a resume), `interrupted`, `out`."""

    student: TrainResult | None
    token: torch.Tensor | None
    token_run: TrainResult | None
    interrupted: bool
    out: Path


# ---------------------------------------------------------------------------------------------- the run
def _load_teacher(source: str) -> VitPoseForPoseEstimation:
    from vitpose.training.model_setup import is_preset

    if is_preset(source):
        raise VitPoseError(
            f"the teacher must be a trained checkpoint, not the preset {source!r} (random weights teach nothing)"
        )
    return VitPoseForPoseEstimation.from_pretrained(source)


def _say(config: TrainConfig, message: str) -> None:
    if config.progress and distributed_env()[0] == 0:
        print(f"vitpose distill: {message}", file=sys.stderr)


def _stage_one(
    config: DistillConfig, callback: Callable[[TrainerState], None] | None, evaluate_fn: Callable[..., Any] | None
) -> tuple[torch.Tensor | None, TrainResult | None]:
    """The teacher's token: from `config.token`, from an earlier stage 1 in OUT, or trained now (None when that
    run was interrupted)."""
    out = Path(config.out)
    if config.token is not None:
        return load_token(config.token)[0], None
    if (out / TOKEN_FILE).is_file():
        if not config.resume:
            raise VitPoseError(
                f"{out} already holds a distillation run ({TOKEN_FILE}): pass --resume to continue it, or choose "
                "another --out"
            )
        _say(config, f"stage 1 done before: {out / TOKEN_FILE}")
        return load_token(out / TOKEN_FILE)[0], None
    stage = config.token_config()
    resume = config.resume and (Path(stage.out) / "last" / STATE_NAME).is_file()
    stage = dataclasses.replace(stage, resume=resume)
    teacher = None
    if not resume:  # a resumed stage 1 reloads the teacher and its token from OUT/token/last
        teacher = _load_teacher(str(config.teacher))
        torch.manual_seed(config.seed)
        set_knowledge_token(teacher)  # a new token, even where the checkpoint has one
    _say(config, f"stage 1: the knowledge token of {config.teacher} ({config.token_epochs} epochs, teacher frozen)")
    result = Trainer(
        stage,
        model=teacher,
        evaluate_fn=evaluate_fn,
        callback=callback,
        train_only=[TOKEN_PARAMETER],
        keep_heads=True,
        command="distill",
    ).run()
    if result.interrupted:
        return None, result
    token = result.model.backbone.knowledge_token
    assert token is not None
    if distributed_env()[0] == 0:
        last = result.history[-1] if result.history else {}
        save_token(out / TOKEN_FILE, token, teacher=config.teacher, epochs=result.epoch, loss=last.get("loss"))
    _say(config, f"stage 1 done: {out / TOKEN_FILE}")
    return token.detach().reshape(-1).float().cpu(), result


def distill(
    config: DistillConfig | Mapping[str, Any] | None = None,
    *,
    callback: Callable[[TrainerState], None] | None = None,
    evaluate_fn: Callable[..., Any] | None = None,
    **settings: Any,
) -> DistillResult:
    """Distill `teacher` into the student `model` (see the module docstring and `DistillConfig`)::

        result = distill(teacher="runs/vitpose-l/best", model="small", method="both",
                         train_annotations="train.json", train_images="images/", out="runs/distill")
        result.student.model  # an ordinary checkpoint in runs/distill/last and best

    `callback(state)` runs after every optimiser step of both stages; `evaluate_fn` replaces the validation.
    """
    if config is None:
        config = DistillConfig(**settings)
    elif isinstance(config, Mapping):
        config = DistillConfig.from_dict({**config, **settings})
    elif settings:
        config = dataclasses.replace(config, **settings)
    _, world, local_rank = distributed_env()
    group = None
    if world > 1 and not torch.distributed.is_initialized():  # one process group for both stages (torchrun)
        group = init_process_group(pick_device(config.device, local_rank, world), world)
    try:
        return _distill(config, callback, evaluate_fn)
    finally:
        if group is not None and group.is_initialized():
            group.destroy_process_group()


def _distill(
    config: DistillConfig, callback: Callable[[TrainerState], None] | None, evaluate_fn: Callable[..., Any] | None
) -> DistillResult:
    out = Path(config.out)
    if not config.resume:
        check_fresh_out(out)
        check_fresh_out(out / TOKEN_RUN)
    elif not any((out / p).is_file() for p in (TOKEN_FILE, f"{TOKEN_RUN}/last/{STATE_NAME}", f"last/{STATE_NAME}")):
        raise VitPoseError(
            f"nothing to resume in {out}: no {TOKEN_FILE}, {TOKEN_RUN}/last or last/ of a distillation run (run "
            "without --resume first)"
        )
    if distributed_env()[0] == 0:
        out.mkdir(parents=True, exist_ok=True)
        saved = {**dataclasses.asdict(config), "resume": False}  # as train_config.json: add --resume to continue
        atomic_write_bytes(out / CONFIG_FILE, (json.dumps(saved, indent=2) + "\n").encode())
    token, token_run = None, None
    if config.method != "output":
        token, token_run = _stage_one(config, callback, evaluate_fn)
        if token is None:
            return DistillResult(student=None, token=None, token_run=token_run, interrupted=True, out=out)
    student_config = config.train_config()
    student_resume = config.resume and (out / "last" / STATE_NAME).is_file()
    student_config = dataclasses.replace(student_config, resume=student_resume)
    teachers: list[VitPoseForPoseEstimation] = []

    def teacher() -> VitPoseForPoseEstimation:  # loaded once, when first needed
        if not teachers:
            teachers.append(_load_teacher(str(config.teacher)))
        return teachers[0]

    def check(student: VitPoseForPoseEstimation) -> None:  # before any step: the teacher must see its crops
        width, height = student.config.input_size
        check_same_input(teacher(), (height, width))

    def add_token(student: VitPoseForPoseEstimation) -> None:
        assert token is not None
        if token.numel() != student.config.backbone_config.hidden_size:
            crops = _training_crops(config, student, CARRY_CROPS)
            carried = carry_token(token, teacher(), student, crops)
            _say(config, f"the token carried from width {token.numel()} to {carried.numel()} (least squares)")
        else:
            carried = token
        set_knowledge_token(student, carried)
        if config.method == "both":
            check(student)

    loss_fn = None
    if config.method != "token":
        loss_fn = DistillationLoss(
            teacher(),
            gt_weight=config.gt_weight,
            distill_weight=config.distill_weight,
            cache=not config.augment,
            flip_test=config.teacher_flip_test,
        )
    with_token = config.method != "output"
    _say(config, f"stage 2: the student {config.model} (method {config.method})")
    result = Trainer(
        student_config,
        evaluate_fn=evaluate_fn,
        callback=callback,
        loss_fn=loss_fn,
        frozen=[TOKEN_PARAMETER] if with_token else (),
        prepare=add_token if with_token else check,
        command="distill",
    ).run()
    return DistillResult(student=result, token=token, token_run=token_run, interrupted=result.interrupted, out=out)
