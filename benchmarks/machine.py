"""What the benchmarks report about the machine they ran on (shared by benchmarks/run.py and serve_load.py)."""

from __future__ import annotations

import os
import platform
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
