"""Moved to `vitpose.ops.codec`; this module re-exports it for one release (0.2) and will then be removed."""

from vitpose.ops.codec import *  # noqa: F403
from vitpose.ops.codec import _flatten_heatmaps, _refine_flat  # noqa: F401
