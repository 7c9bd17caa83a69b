"""Moved to `vitpose.models.loss`; this module re-exports it for one release (0.2) and will then be removed."""

from vitpose.models.loss import *  # noqa: F403
