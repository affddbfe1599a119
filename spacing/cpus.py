"""How many CPU threads a run can use: the CPUs it may run on, less those other processes keep busy.

torch's own default is one thread per core, whatever else runs there. On a machine where another
process keeps a core busy, its threads then wait on each other at every parallel op: ``python
run.py`` trained 11x slower at torch's two threads than at one on a busy 2-core machine. So when
nothing else sets the count (``trainer.threads``, a launcher's share, ``OMP_NUM_THREADS``), a run
takes the CPUs that are free when it starts. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
"""cgroup v2's CPU quota of this process's group: ``<quota> <period>`` in microseconds, or ``max <period>``."""
PROC_STAT = Path("/proc/stat")
SAMPLE_SECONDS = 0.1
"""How long the CPUs' busy time is sampled: long enough for a steady load, short beside any run."""


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, capped by a container's CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cpus, math.ceil(quota)) if quota else cpus)


def _cgroup_quota() -> float | None:
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def busy_cpus(seconds: float = SAMPLE_SECONDS) -> float:
    """How many CPUs other processes keep busy, from the machine's CPU times over `seconds` (0 where unknown).

    This process sleeps while it samples, so what is busy is someone else's.
    """
    first = _cpu_times()
    time.sleep(seconds)
    second = _cpu_times()
    if first is None or second is None:
        return max(0.0, os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0.0
    (busy_a, total_a, cpus), (busy_b, total_b, _) = first, second
    elapsed = total_b - total_a
    return cpus * (busy_b - busy_a) / elapsed if elapsed > 0 else 0.0


def _cpu_times() -> tuple[int, int, int] | None:
    """(busy, total) jiffies of all CPUs together, and how many CPUs /proc/stat lists; None without /proc."""
    try:
        lines = PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    fields = [int(value) for value in lines[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    cpus = sum(1 for line in lines[1:] if line.startswith("cpu"))
    return sum(fields[:8]) - idle, sum(fields[:8]), max(1, cpus)


def free_cpus() -> int:
    """The usable CPUs that no other process keeps busy now (at least 1): a run's default thread count."""
    return max(1, usable_cpus() - round(busy_cpus()))
