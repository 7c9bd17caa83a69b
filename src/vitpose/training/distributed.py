"""torchrun / DistributedDataParallel for the trainer: rank and world size, the device of each rank, the process
group, and the few collectives the loop needs (stop flags, the epoch's mean loss, RNG states, the epoch's row).

Without torchrun (`WORLD_SIZE` unset or 1) nothing here starts a process group: `init_process_group` returns None
and every collective below is the one-process identity. The device names themselves are resolved by
`vitpose.device.resolve_device`; this module only pins a rank to its GPU.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from vitpose.device import resolve_device
from vitpose.errors import VitPoseError

__all__ = [
    "all_gather_objects",
    "any_everywhere",
    "broadcast_object",
    "comm_device",
    "distributed_env",
    "init_process_group",
    "local_batch_size",
    "mean_everywhere",
    "pick_device",
    "wrap_ddp",
]


def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, local


def pick_device(spec: str, local_rank: int, world: int) -> torch.device:
    """The device of this process: `vitpose.device.resolve_device`'s (names, "auto", availability checks), pinned
    to the local rank's GPU under torchrun (to the current GPU for one process on "auto"); "auto" with several
    processes does not pick MPS (one device per machine)."""
    device = resolve_device(spec)
    if device.type == "cuda" and (world > 1 or spec == "auto"):
        device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    elif device.type == "mps" and spec == "auto" and world > 1:
        device = torch.device("cpu")
    return device


def init_process_group(device: torch.device, world: int) -> Any:
    """`torch.distributed` with its process group started (NCCL on CUDA, gloo otherwise), or None for one process."""
    if world <= 1:
        return None
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return dist


def local_batch_size(batch_size: int, world: int) -> int:
    """This process's share of the global batch (which must split evenly)."""
    if batch_size % world:
        raise VitPoseError(
            f"batch_size {batch_size} is the global batch and must split evenly over the {world} processes"
        )
    return batch_size // world


def wrap_ddp(module: nn.Module, device: torch.device, world: int, find_unused_parameters: bool) -> nn.Module:
    """`module` in DistributedDataParallel under torchrun (itself for one process)."""
    if world <= 1:
        return module
    return nn.parallel.DistributedDataParallel(
        module,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
    )


def comm_device(device: torch.device) -> torch.device:
    """Where collective tensors live: the GPU for NCCL, the CPU for gloo."""
    return device if device.type == "cuda" else torch.device("cpu")


def any_everywhere(dist: Any, flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on any (e.g. a stop request seen by one process)."""
    if dist is None:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=comm_device(device))
    dist.all_reduce(t)
    return bool(t.item() > 0)


def mean_everywhere(dist: Any, total: float, count: int, device: torch.device) -> float:
    """sum(total) / sum(count) over the ranks (float64), e.g. the epoch's loss per instance."""
    if dist is None:
        return total / max(count, 1)
    t = torch.tensor([total, float(count)], dtype=torch.float64, device=comm_device(device))
    dist.all_reduce(t)
    return float(t[0] / max(t[1].item(), 1.0))


def all_gather_objects(dist: Any, obj: Any, world: int) -> list[Any]:
    """Every rank's `obj`, in rank order (every rank takes part)."""
    if dist is None:
        return [obj]
    objects: list[Any] = [None] * world
    dist.all_gather_object(objects, obj)
    return objects


def broadcast_object(dist: Any, obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if dist is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
