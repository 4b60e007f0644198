"""What machine a benchmark ran on, for the report next to its numbers.

Numbers from a 2-core VM and from a 32-core workstation are different facts;
a report without the machine (and its load average, on a shared host) cannot
be compared with anything.
"""

from __future__ import annotations

import os
import platform


def describe() -> dict:
    """Cores, CPU model, RAM, Python and kernel of this machine."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram_gib = float("nan")
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal"):
                    ram_gib = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_times() -> list[int]:
    """The aggregate CPU line of /proc/stat (empty where there is none)."""
    try:
        with open("/proc/stat") as stat:
            return [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return []


def steal_share(before: list[int], after: list[int]) -> float | None:
    """CPU time the hypervisor took from this machine between two ``cpu_times()``, as a share.

    On a shared VM the host's other tenants change the numbers; this says how much.
    """
    if len(before) < 8 or len(after) < 8:
        return None
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta)
    return delta[7] / total if total > 0 else None
