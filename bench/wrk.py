"""Load generation: one wrk run against one target, and what wrk printed, read back."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from .files import LUA


@dataclass
class WrkRun:
    """One wrk run: what it was asked to do, and what it measured.

    ``target`` is "serve" (Ray Serve's HTTP endpoint) or "bare" (the same app under bare
    uvicorn); ``scenario`` the load's name; ``items`` per request; ``rep`` the measured run's
    number (0 for a warm-up). Measured: ``duration_s`` (seconds), ``requests`` completed,
    ``rps`` (requests per second), ``p50_ms``/``p99_ms`` (latency percentiles, milliseconds;
    None when wrk gave none), ``non_2xx`` answers, ``socket_errors`` (connect, read, write and
    timeout errors summed) and ``error`` ("" when the run counts).
    """

    target: str  # "serve" or "bare"
    scenario: str
    items: int
    connections: int
    rep: int
    duration_s: float = 0.0
    requests: int = 0
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    non_2xx: int = 0
    socket_errors: int = 0
    error: str = ""

    @property
    def items_per_s(self) -> float:
        """Items scored per second: ``rps`` times the items per request."""
        return self.rps * self.items


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def wrk_duration_ms(text: str) -> float:
    """A duration as wrk prints it (``"812.00us"``, ``"4.50ms"``, ``"10.01s"``, ``"1.5m"``,
    ``"2h"``; surrounding spaces allowed) in milliseconds.

    Raises ValueError when ``text`` is not such a duration.
    """
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str, run: WrkRun) -> WrkRun:
    """Fill ``run`` from wrk's text output and return it (the same object).

    Reads the requests and duration, Requests/sec, the 50 % and 99 % latencies (printed with
    ``--latency``), "Non-2xx or 3xx responses" and the socket errors (summed); a field wrk did
    not print keeps its value. A run without one completed request gets ``error`` "no request
    completed" unless it already had one. Raises ValueError on a malformed duration.
    """
    if m := re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.M):
        run.requests = int(m.group(1))
        run.duration_s = wrk_duration_ms(m.group(2)) / 1000
    if m := re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M):
        run.rps = float(m.group(1))
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+\w+)", output, re.M):
            setattr(run, attr, wrk_duration_ms(m.group(1)))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        run.non_2xx = int(m.group(1))
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        run.socket_errors = sum(int(x) for x in m.groups())
    if run.requests == 0:
        run.error = run.error or "no request completed"
    return run


def run_wrk(
    url: str,
    path: str,
    items: int,
    connections: int,
    duration: int,
    run: WrkRun,
    timeout_s: int = 10,
) -> WrkRun:
    """Run ``wrk --latency`` with bench/lua/salience.lua against ``url`` and fill ``run``.

    ``url`` is the target's base URL (``http://host:port``), ``path`` the route the script
    POSTs to, ``items`` the items per request, ``connections`` wrk's connections (threads:
    as many, at most this machine's CPUs), ``duration`` the seconds of load and ``timeout_s``
    wrk's per-request timeout (default 10 s). wrk must be on PATH. Never raises for a failed
    run: wrk's exit status, last error line or a run that outlives its bound (duration +
    timeout_s + 30 s) go into ``run.error``.
    """
    threads = max(1, min(connections, os.cpu_count() or 1))
    argv = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration}s",
        f"--timeout={timeout_s}s",
        "--latency",
        f"--script={LUA}",
        url,
        "--",
        str(items),
        path,
    ]
    try:
        # Bounded: wrk stops itself after `duration`; the margin covers its start and the
        # slowest request it waits for.
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + timeout_s + 30, check=False
        )
    except subprocess.TimeoutExpired:
        run.error = "wrk did not finish in time"
        return run
    if proc.returncode != 0:
        run.error = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["wrk failed"]
        run.error = str(run.error[0])
        return run
    return parse_wrk(proc.stdout, run)
