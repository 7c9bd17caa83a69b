"""Device names to `torch.device`: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N", "mps", an int (a
CUDA index), and transformers' `device_map` ("cpu", "auto", {"": device}). The one place that checks a device is
available here."""

from __future__ import annotations

from typing import Any

import torch

from vitpose.errors import DeviceError

DeviceLike = str | int | torch.device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def auto_device() -> torch.device:
    """CUDA where there is a GPU, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(
    device: DeviceLike | None, device_map: DeviceLike | dict[str, Any] | None = None
) -> torch.device | None:
    """One device from `device` and/or a transformers `device_map`; None when neither is given.

    Raises DeviceError for an unknown name, a device that is not available here, a map over several devices, or
    `device` and `device_map` naming different devices.
    """
    if device is not None and device_map is not None and resolve_device(device) != resolve_device(None, device_map):
        raise DeviceError(f"device={device!r} and device_map={device_map!r} disagree; pass one of them")
    choice: Any = device if device is not None else device_map
    if choice is None:
        return None
    if isinstance(choice, dict):
        targets = set(map(str, choice.values()))
        if len(targets) != 1:
            raise DeviceError(
                f"device_map={choice!r} splits the model over several devices; ViTPose fits on one: pass one device"
            )
        choice = targets.pop()
    if isinstance(choice, int):
        choice = f"cuda:{choice}"
    if choice == "auto":
        return auto_device()
    try:
        resolved = torch.device(choice)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(
            f"invalid device {choice!r} (unknown name): use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"
        ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {choice!r} was asked for but CUDA is not available here; use 'cpu' or 'auto'")
    if resolved.type == "mps" and not _mps_available():
        raise DeviceError(f"device {choice!r} was asked for but MPS is not available here; use 'cpu' or 'auto'")
    return resolved


__all__ = ["DeviceLike", "auto_device", "resolve_device"]
