"""Renamed keyword arguments and attributes keep their old names for one release, with a `DeprecationWarning`.

    @renamed_kwargs(detector_threshold="det_thr")
    def __init__(self, ..., det_thr: float = 0.3): ...

    class HOGDetector:
        min_score = renamed_attribute("det_thr")

The old names go in the release `REMOVED_IN`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["REMOVED_IN", "renamed_attribute", "renamed_kwargs"]

REMOVED_IN = "0.3"

F = TypeVar("F", bound=Callable[..., Any])


def renamed_kwargs(**old_to_new: str) -> Callable[[F], F]:
    """Decorate a function whose keyword arguments `old` were renamed `new`: an old name still works (its value is
    passed as the new one) with a `DeprecationWarning`; giving both is a `TypeError`."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{func.__qualname__}() got both {old}= and {new}=; {old} is the old name")
                    warnings.warn(
                        f"{func.__qualname__}({old}=...) is deprecated: use {new}= (the old name goes in {REMOVED_IN})",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


class renamed_attribute:  # lower case: written like a function call in class bodies
    """A class attribute `old = renamed_attribute("new")`: reading or setting `obj.old` uses `obj.new`, with a
    `DeprecationWarning`."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.old = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = f"{owner.__name__}.{name}"

    def _warn(self) -> None:
        warnings.warn(
            f"{self.old} is deprecated: use .{self.new} (the old name goes in {REMOVED_IN})",
            DeprecationWarning,
            stacklevel=3,
        )

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        self._warn()
        return getattr(obj, self.new)

    def __set__(self, obj: Any, value: Any) -> None:
        self._warn()
        setattr(obj, self.new, value)
