"""Measuring helpers shared by the benchmarks: timing with contention, machine facts, JSON."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


def machine_busy_s() -> float | None:
    """CPU seconds all processes on this machine have spent busy so far (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class Sample:
    """One timed run: wall time, this process's CPU time, other processes' CPU time."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    foreign_cpu_s: float | None = None


@contextmanager
def stopwatch() -> Iterator[Sample]:
    """Time the block; `foreign_cpu_s` is CPU other processes used meanwhile (contention)."""
    sample = Sample()
    busy0, cpu0, t0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
    try:
        yield sample
    finally:
        sample.wall_s = time.perf_counter() - t0
        sample.cpu_s = own_cpu_s() - cpu0
        busy1 = machine_busy_s()
        if busy0 is not None and busy1 is not None:
            sample.foreign_cpu_s = max(0.0, busy1 - busy0 - sample.cpu_s)


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    """Write JSON via a temporary file in the same directory and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
