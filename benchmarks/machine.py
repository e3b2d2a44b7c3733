"""What every benchmark prints first: the machine its figures come from."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe() -> str:
    """``<CPU>, <n> cores, Python <version>``."""
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
