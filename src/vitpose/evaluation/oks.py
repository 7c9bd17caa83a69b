"""Moved to `vitpose.ops.oks`; this module re-exports it for one release (0.2) and will then be removed."""

from vitpose.ops.oks import *  # noqa: F403
