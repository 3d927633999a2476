#!/usr/bin/env python3
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""Refuses new connections to a node's Serve port while the node cannot route them.

Runs on every node under systemd (rayforge-serve-gate.service, root: it edits the nftables
table of rayforge-firewall). Every --interval seconds it asks the node's own Serve proxy, on
127.0.0.1 (the firewall lets loopback through):

* ``GET /-/healthz`` must answer 200: Serve answers 503 while the node drains (``ray start
  --block`` got SIGTERM, so the replicas are moving elsewhere) and nothing while Ray is down;
* ``GET /-/routes`` must answer 200 with at least one route: a proxy that has just started
  answers every request with 404 until the route table reaches it;
* to open a closed port, the routes must also include every route prefix of the last deploy
  that became healthy (``--routes-file``, a JSON list the ray_serve role writes on every node
  after each deploy). When the whole cluster restarts, Serve's controller deploys the
  applications again one by one, and a proxy holding the first application's route answers
  404 on the others' until theirs arrive. An application that does not come back must not
  keep the others offline: after ``--route-wait`` seconds with some routes but not all, the
  port opens anyway and the journal names the missing ones. An open port does not close for
  a missing route (an application removed by a deploy, before the file says so);
* no hold file (``--hold-file``): the ray_serve role creates it on every node before it shuts
  Serve down (stop, restart-serve, teardown, a token rotation) and removes it after the next
  deploy became healthy, so the port refuses new connections before the applications and
  proxies go away, instead of answering 404 or cutting requests in flight. It lives under
  /run: a reboot clears it.

When these hold, the port is open; otherwise the port's number is an element of the table's
set ``serve_gate``, and the firewall rejects new connections to it with a TCP reset (a client
sees "connection refused" and a load balancer tries another node), while connections already
open finish. So a draining node stops taking requests before its replicas exit, and a
starting node takes none before it can route them: its clients see refused connections, never
a 404 or a request cut in flight.

Every change of state goes to stdout (the journal). An nftables error (the firewall stopped
or reloading) is logged and retried at the next poll. Exit status 2: bad arguments.

With --metrics-file (a ``*.prom`` file in the node exporter's textfile directory) the gate
writes its state there at every change, replaced whole through a rename in the same
directory: ``rayforge_serve_gate_open`` (1 open, 0 closed), ``rayforge_serve_gate_closed_reason``
(one series per reason in REASONS, 1 for the reason the port is closed now, all 0 while it is
open) and ``rayforge_serve_gate_last_change_timestamp_seconds`` (when the port last opened or
closed). It uses prometheus_client, which the Ray virtualenv it runs with has (Ray's metrics
need it). A directory that is missing or not writable is said once in the journal and tried
again at each poll; the gate goes on gating.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import NamedTuple

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily

PROBE_TIMEOUT_S = 1.0
# Why a port is closed: the hold file; the proxy drains (healthz answers other than 200); the
# proxy has no route table yet (routes answer other than 200, or none); it routes some of the
# last deploy's routes, not all yet; nothing answers (Ray or the proxy is down).
HOLD, DRAINING, NO_ROUTES, MISSING_ROUTES, DOWN = (
    "hold",
    "draining",
    "no_routes",
    "missing_routes",
    "down",
)
REASONS = (HOLD, DRAINING, NO_ROUTES, MISSING_ROUTES, DOWN)


class Readiness(NamedTuple):
    ok: bool
    why: str  # in words, for the journal
    missing: list[str]  # the expected route prefixes the proxy lacks
    reason: str  # one of REASONS when not ok, "" when ok
    timed_out: bool = False  # the proxy took the connection but did not answer in time


def log(message: str) -> None:
    print(message, flush=True)


def expected_routes(path: str | None) -> tuple[list[str], str]:
    """(the route prefixes in the file at PATH, a problem with the file or "").

    No path, or no file (no deploy has finished on this node yet): no route is expected beyond
    the first. An unreadable file or one that is not a JSON list of strings expects none either,
    and says why (the journal shows it), so a damaged file cannot keep the port closed."""
    if not path:
        return [], ""
    try:
        with open(path, encoding="utf-8") as handle:
            routes = json.load(handle)
    except FileNotFoundError:
        return [], ""
    except (OSError, ValueError) as err:
        return [], f"{path} unreadable ({err}): not waiting for its routes"
    if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
        return [], f"{path} is not a JSON list of route prefixes: not waiting for its routes"
    return routes, ""


def held_by(path: str | None) -> str:
    """Why the port is held closed ("" when it is not): the hold file's first line, or its path."""
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline().strip()
    except FileNotFoundError:
        return ""
    except OSError as err:
        return f"held closed by {path} ({err})"
    return f"held closed: {first or path}"


def ready(port: int, expected: list[str] | tuple[str, ...] = ()) -> Readiness:
    """Whether the node can route requests, why (not), the EXPECTED route prefixes it lacks,
    and the reason (REASONS) when it cannot.

    Not ready with missing routes: the proxy is healthy and routes some prefixes, but not yet
    those."""
    base = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(base + "/-/healthz", timeout=PROBE_TIMEOUT_S) as resp:
            resp.read()
        with urllib.request.urlopen(base + "/-/routes", timeout=PROBE_TIMEOUT_S) as resp:
            routes = json.loads(resp.read().decode() or "{}")
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace").strip()
        path = err.url.removeprefix(base)
        reason = DRAINING if path == "/-/healthz" else NO_ROUTES
        return Readiness(False, f"{path} answers {err.code} {body[:80]}".strip(), [], reason)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
        cause = getattr(err, "reason", err)
        why = f"Serve's proxy does not answer ({cause})"
        return Readiness(False, why, [], DOWN, isinstance(cause, TimeoutError))
    if not isinstance(routes, dict) or not routes:
        return Readiness(False, "no route yet", [], NO_ROUTES)
    missing = sorted(set(expected) - set(routes))
    if missing:
        why = f"routes {', '.join(sorted(routes))}, waiting for {', '.join(missing)}"
        return Readiness(False, why, missing, MISSING_ROUTES)
    return Readiness(True, f"routes {', '.join(sorted(routes))}", [], "")


def nft_script(table: str, port: int, closed: bool) -> str:
    """One nftables transaction. Adding an element is idempotent; deleting one that is not
    there fails, so opening adds it first and deletes it in the same transaction."""
    add = f"add element inet {table} serve_gate {{ {port} }}\n"
    return add if closed else add + f"delete element inet {table} serve_gate {{ {port} }}\n"


def set_gate(table: str, port: int, closed: bool) -> None:
    subprocess.run(
        ["nft", "-f", "-"],
        input=nft_script(table, port, closed),
        text=True,
        capture_output=True,
        check=True,
        timeout=10,
    )


class GateMetrics:
    """The gate's state as a textfile for the node exporter (see the module's docstring)."""

    def __init__(self, path: str):
        self.path = path
        self.state: tuple[bool, str] | None = None  # (open, reason) last recorded
        self.changed_at = 0.0
        self.written: tuple[bool, str] | None = None  # what the file holds
        self.failing = False  # the last write failed (said once)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self):
        if self.state is None:
            return
        is_open, reason = self.state
        yield GaugeMetricFamily(
            "rayforge_serve_gate_open",
            "Whether the node's Serve port takes new connections (1) or refuses them (0).",
            value=int(is_open),
        )
        why = GaugeMetricFamily(
            "rayforge_serve_gate_closed_reason",
            "Why the node's Serve port is closed: 1 for the reason now, all 0 while it is open.",
            labels=["reason"],
        )
        for name in REASONS:
            why.add_metric([name], int(not is_open and reason == name))
        yield why
        yield GaugeMetricFamily(
            "rayforge_serve_gate_last_change_timestamp_seconds",
            "Unix time at which the node's Serve port last opened or closed.",
            value=self.changed_at,
        )

    def record(self, is_open: bool, reason: str) -> None:
        """Records the port's state (a change of open or closed stamps the time) and writes the
        file when it holds something else, or when the last write failed: at most one write
        per change, however often it is called."""
        if self.state is None or self.state[0] != is_open:
            self.changed_at = time.time()
        self.state = (is_open, "" if is_open else reason)
        if self.written == self.state:
            return
        try:
            write_to_textfile(self.path, self.registry)
        except OSError as err:
            if not self.failing:
                log(f"cannot write metrics to {self.path} ({err}): trying again at each poll")
            self.failing = True
            self.written = None
            return
        if self.failing:
            log(f"metrics written to {self.path} again")
        self.failing = False
        self.written = self.state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="Serve's HTTP port")
    parser.add_argument("--table", required=True, help="nftables table (family inet)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between probes")
    parser.add_argument("--routes-file", help="JSON list of the route prefixes to wait for")
    parser.add_argument("--hold-file", help="while this file exists, the port is closed")
    parser.add_argument(
        "--route-wait",
        type=float,
        default=30.0,
        help="seconds to wait for the routes of --routes-file once the proxy routes some",
    )
    parser.add_argument(
        "--slow-grace",
        type=float,
        default=5.0,
        help="seconds an open port stays open while the proxy's answers time out",
    )
    parser.add_argument("--metrics-file", help="*.prom file of the gate's state (textfile)")
    args = parser.parse_args(argv)
    if (
        not 0 < args.port < 65536
        or args.interval <= 0
        or args.route_wait < 0
        or args.slow_grace < 0
    ):
        parser.error(
            "--port must be a TCP port, --interval positive, --route-wait and --slow-grace "
            "not negative"
        )

    closed: bool | None = None  # unknown until the first change is made
    missing_since: float | None = None  # when the proxy first routed some routes but not all
    slow_since: float | None = None  # when the proxy's answers of an open port began to time out
    file_problem = ""
    metrics = GateMetrics(args.metrics_file) if args.metrics_file else None
    log(f"gating port {args.port} in table inet {args.table} on Serve's readiness")
    while True:
        expected: list[str] = []
        if closed is not False:  # only opening waits for the last deploy's routes
            expected, problem = expected_routes(args.routes_file)
            if problem and problem != file_problem:
                log(problem)
            file_problem = problem
        held = held_by(args.hold_file)
        ok, why, missing, reason, timed_out = (
            Readiness(False, held, [], HOLD) if held else ready(args.port, expected)
        )
        # A proxy that took the connection but answered late is busy, not gone (a loaded head
        # answers /-/healthz in over a second now and then): an open port stays open through
        # --slow-grace seconds of that. Refused connections and 503s close it at once.
        if not timed_out:
            slow_since = None
        elif closed is False:
            if slow_since is None:
                slow_since = time.monotonic()
            if time.monotonic() - slow_since < args.slow_grace:
                ok, reason = True, ""
        if not missing:
            missing_since = None
        elif missing_since is None:
            missing_since = time.monotonic()
        elif time.monotonic() - missing_since >= args.route_wait:
            ok, why = True, f"{why}: opened after {args.route_wait:g} s without them"
        # Closing is repeated at every poll while not ready: a firewall reload in between
        # recreates the set empty, which would open the port.
        if closed is None or closed == ok or not ok:
            changed = closed != (not ok)
            try:
                set_gate(args.table, args.port, closed=not ok)
                closed = not ok
                if changed:
                    log(f"port {args.port} {'open' if ok else 'closed'}: {why}")
            except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired) as err:
                detail = getattr(err, "stderr", "") or err
                log(f"cannot {'open' if ok else 'close'} port {args.port}: {str(detail).strip()}")
                closed = None
        if metrics is not None and closed is not None:  # None: the port's state is not known
            metrics.record(not closed, reason)
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
