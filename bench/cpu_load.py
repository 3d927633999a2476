"""The machine's CPU use, from /proc/stat: during a playbook run, and while the lab's cluster
is at rest."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .progress import log


def cpu_times() -> tuple[float, float]:
    """(busy, busy + idle) CPU seconds of the whole machine since boot, summed over its CPUs.

    Idle and iowait count as not busy. Returns (0.0, 0.0) when /proc/stat cannot be read.
    """
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / hz, total / hz


def idle_load(seconds: float = 10.0) -> float:
    """CPUs the machine keeps busy while nothing is run (the lab's cluster at rest): busy CPU
    seconds over the next ``seconds`` (default 10), divided by them. Blocks that long."""
    busy0, _ = cpu_times()
    time.sleep(seconds)
    busy1, _ = cpu_times()
    return (busy1 - busy0) / seconds


def settle(
    label: str, window_s: float = 10.0, tolerance: float = 0.05, limit_s: float = 180.0
) -> float:
    """Wait until the machine's busy CPUs hold steady, so a measurement does not start while
    the cluster still warms up after a rollout; return the CPUs busy in the last window (the
    cluster at rest).

    Steady: two consecutive windows of ``window_s`` seconds (default 10) within ``tolerance``
    CPUs (default 0.05). After ``limit_s`` seconds (default 180) it returns the last window's
    level anyway; ``label`` names the wait in the progress lines.
    """
    start = time.monotonic()
    last = idle_load(window_s)
    while time.monotonic() - start < limit_s:
        now = idle_load(window_s)
        if abs(now - last) <= tolerance:
            log(f"{label}: settled after {time.monotonic() - start:.0f}s, {now:.2f} CPUs busy")
            return now
        last = now
    log(f"{label}: not steady after {limit_s:.0f}s ({last:.2f} CPUs busy), measuring anyway")
    return last
