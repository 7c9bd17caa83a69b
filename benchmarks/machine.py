"""What the benchmarks share (benchmarks/run.py, serve_load.py, ray_engine.py): what they report about the machine
they ran on, and `quiet` for the libraries' chatter."""

from __future__ import annotations

import contextlib
import io
import os
import platform
import warnings
from collections.abc import Iterator
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1 / 5 / 15-minute load averages, e.g. "0.87 / 1.16 / 1.42" ("n/a" where the system has none)."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def module_versions(modules: tuple[str, ...]) -> dict[str, str]:
    """{module: its __version__, "not installed", or "?"} for each module name."""
    versions = {}
    for module in modules:
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = "not installed"
        except AttributeError:
            versions[module] = "?"
    return versions


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the libraries' warnings and progress bars (transformers writes its loading and saving bars to
    stderr)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stderr(io.StringIO()):
            yield
