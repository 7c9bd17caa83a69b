"""Moved to `vitpose.ops.geometry`; this module re-exports it for one release (0.2) and will then be removed."""

from vitpose.ops.geometry import *  # noqa: F403
from vitpose.ops.geometry import _to_numpy  # noqa: F401
