"""Moved to `vitpose.inference.backends.quantize`; re-exported here for one release (0.2)."""

from vitpose.inference.backends.quantize import *  # noqa: F403
from vitpose.inference.backends.quantize import quantize_int8  # noqa: F401
