"""Device names to `torch.device`: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N", "mps", an int (a
CUDA index), and transformers' `device_map` ("cpu", "auto", {"": device}). The one place that checks a device is
available here.

Precision names to `torch.dtype` (`DTYPES`, `resolve_dtype`): "auto" (float16 on CUDA, float32 elsewhere),
"float32", "float16", "bfloat16", and their short names fp32, fp16, bf16."""

from __future__ import annotations

from typing import Any

import torch

from vitpose.errors import DeviceError, VitPoseError

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
        raise _unknown_device(choice) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {choice!r} was asked for but CUDA is not available here; use 'cpu' or 'auto'")
    if resolved.type == "mps" and not _mps_available():
        raise DeviceError(f"device {choice!r} was asked for but MPS is not available here; use 'cpu' or 'auto'")
    return resolved


DTYPES = ("auto", "float32", "float16", "bfloat16")
"""The precisions a model runs in, by name (`vitpose ... --dtype`); `DTYPE_ALIASES` are accepted too."""
DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
AUTO_DTYPE = {"cuda": torch.float16}
"""What "auto" is per device type, float32 where not listed: float16 on CUDA (the mixed-precision setting of
ViTPose's own configs, `fp16 = dict(loss_scale="dynamic")`, which mmpose's test script also applies; benchmarks/gpu.py
measures the fp16 and bf16 drift from float32); float32 on the CPU (float16 and bfloat16 run there, slowly) and on
MPS."""


def dtype_choices() -> str:
    """The names `resolve_dtype` takes, for messages and help texts: "auto, float32 (fp32), ..."."""
    short = {name: alias for alias, name in DTYPE_ALIASES.items()}
    return ", ".join(f"{name} ({short[name]})" if name in short else name for name in DTYPES)


def resolve_dtype(dtype: str | torch.dtype | None, device: DeviceLike | None = None) -> torch.dtype:
    """The `torch.dtype` a model runs in on `device`, from a name of `DTYPES` (or an alias), a floating-point
    `torch.dtype` (as it is) or None (float32: the weights as they load).

    "auto" depends on the device only (`AUTO_DTYPE`): float16 on CUDA, float32 on the CPU and MPS. `device` is a
    `torch.device`, a name or a CUDA index (None: the CPU); only its type is read, so `torch.device("cuda")` gives
    float16 without a GPU here (the string "auto" picks the device first, as `resolve_device`). Raises
    `VitPoseError` for any other name, listing the choices.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise VitPoseError(f"dtype {dtype} is not a floating-point type: use one of {dtype_choices()}")
        return dtype
    name = str(dtype).strip().lower().removeprefix("torch.")
    name = DTYPE_ALIASES.get(name, name)
    if name == "auto":
        return AUTO_DTYPE.get(_device_type(device), torch.float32)
    if name not in DTYPES:
        raise VitPoseError(f"unknown dtype {dtype!r}: use one of {dtype_choices()}")
    return getattr(torch, name)


def dtype_name(dtype: torch.dtype) -> str:
    """A dtype as `DTYPES` name it: "float32", "float16", "bfloat16" (no "torch." prefix)."""
    return str(dtype).removeprefix("torch.")


def _device_type(device: DeviceLike | None) -> str:
    """The type of a device ("cpu", "cuda", "mps", ...; None: "cpu"), without checking that it is available."""
    if device is None:
        return "cpu"
    if isinstance(device, torch.device):
        return device.type
    if isinstance(device, int):
        return "cuda"
    if device == "auto":
        return auto_device().type
    try:
        return torch.device(device).type
    except (RuntimeError, TypeError) as err:
        raise _unknown_device(device) from err


def _unknown_device(name: Any) -> DeviceError:
    return DeviceError(f"invalid device {name!r} (unknown name): use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'")


__all__ = [
    "AUTO_DTYPE",
    "DTYPES",
    "DTYPE_ALIASES",
    "DeviceLike",
    "auto_device",
    "dtype_choices",
    "dtype_name",
    "resolve_device",
    "resolve_dtype",
]
