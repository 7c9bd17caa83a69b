"""Moved to `vitpose.inference.results`; this module re-exports it for one release (0.2) and will then be removed."""

from vitpose.inference.results import *  # noqa: F403
