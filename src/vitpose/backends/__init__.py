"""Moved to `vitpose.inference.backends`; this package re-exports it for one release (0.2) and will then be removed."""

from vitpose.inference.backends import *  # noqa: F403
from vitpose.inference.backends import quantize_int8  # noqa: F401
