"""What every benchmark result records about the machine it ran on, so that figures from different
hosts are never compared unawares."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import dexloop


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def host_metadata() -> dict:
    """Python, platform, CPU model, usable cores and dexloop's version; benchmarks add their own."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "dexloop": dexloop.__version__,
    }
