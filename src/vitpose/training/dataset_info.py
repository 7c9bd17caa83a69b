"""Moved to `vitpose.datasets.custom`; this module re-exports it for one release (0.2) and will then be removed."""

from vitpose.datasets.custom import *  # noqa: F403
