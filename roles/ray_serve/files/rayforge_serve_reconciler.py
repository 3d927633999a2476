#!/usr/bin/env python3
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""Keeps Serve running the last config that became healthy, without a human.

Runs on the head under systemd (rayforge-serve-reconciler.service, the ray user). Every
--interval seconds it reads Serve's state from the dashboard and compares it with --config,
the config the last healthy deploy left (ray_serve_apply's last_good_path). When Serve is not
running it, for --settle polls in a row (so Serve's own recovery from a persisted GCS goes
first), it takes --lock without waiting (a deploy by the role holds it: never fight one) and
re-applies the config through the same client and the same definition of healthy as the role
(ray_dashboard.py, installed beside this file). Every action and its outcome goes to stdout,
which is the journal. Failures back off: the wait doubles up to --max-backoff seconds and
returns to --interval once Serve runs the config again.

Cases it covers: the head restarted without a persisted GCS (Serve's state was in memory), the
GCS store was lost or is new (a disk swap), someone shut Serve down or deployed another config
by hand.

The proxy anchor (--anchor-application: the route-less application with one replica per node,
which keeps a Serve proxy on every node) follows the nodes alive now, not those alive at the
last deploy: the config it holds Serve to has the anchor at proxy_anchor_replicas() (one per
ALIVE node). More nodes than anchor replicas is acted on at the first poll: a node that
rejoined after a deploy made without it gets its replica, and with it its proxy, with no
site.yml. Fewer waits --settle polls like any other difference: a node that restarts comes
back before that, and finds its replica still pending for it.

With --metrics-file (a ``*.prom`` file in the node exporter's textfile directory) it writes,
after every poll, replaced whole through a rename in the same directory:
``rayforge_serve_reconciler_actions_total{action}`` (re-applies it made: ``reapply`` after a
settled difference, ``anchor`` for a node back without its anchor replica),
``rayforge_serve_reconciler_failures_total`` (polls that failed),
``rayforge_serve_reconciler_last_poll_timestamp_seconds`` and
``rayforge_serve_reconciler_state{state}`` (1 for the outcome of the last poll, ok, waiting or
failed; 0 for the others). Every series is there from the first poll, at 0. The counters are
this process's and start again at 0 when it restarts, which Prometheus' rate() and increase()
take as a reset. It uses prometheus_client, which the Ray virtualenv it runs with has, for the
format, and the dashboard client's atomic write, which sets the file's mode. A
missing or read-only directory is said once in the journal and tried again at the next poll.
Exit status: 2 for bad arguments; otherwise it runs until stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ray_dashboard import (
    Dashboard,
    DashboardError,
    apply,
    deploy_lock,
    differences,
    proxy_anchor_replicas,
    serve_problems,
    wait_healthy,
    with_anchor_replicas,
    write_text_atomic,
)

OK, WAITING, FAILED = "ok", "waiting", "failed"
# The named checks (ray_verdict's ids) that Serve's state alone decides: exported each poll.
SERVE_CHECKS = ("serve_running", "applications_deployed", "applications_running")
# What a re-apply was for (the label of rayforge_serve_reconciler_actions_total).
REAPPLY, ANCHOR = "reapply", "anchor"


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dashboard-url", required=True, help="http://host:port of the dashboard")
    parser.add_argument("--config", required=True, type=Path, help="the last healthy Serve config")
    parser.add_argument("--token-file", type=Path, help="cluster token (token authentication)")
    parser.add_argument("--lock", required=True, help="lock file shared with ray_serve_apply")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    parser.add_argument("--settle", type=int, default=3, help="polls a difference must last")
    parser.add_argument("--deploy-timeout", type=float, default=300.0, help="seconds to health")
    parser.add_argument("--max-backoff", type=float, default=300.0, help="longest wait, seconds")
    parser.add_argument("--anchor-application", help="the proxy anchor application's name")
    parser.add_argument("--once", action="store_true", help="one poll (and action), then exit")
    parser.add_argument("--metrics-file", help="*.prom file of its counters and state (textfile)")
    args = parser.parse_args(argv)
    if args.interval <= 0 or args.settle < 1 or args.deploy_timeout <= 0:
        parser.error("--interval and --deploy-timeout must be positive, --settle at least 1")
    if args.max_backoff < args.interval:
        parser.error("--max-backoff must be at least --interval")
    return args


def headers(token_file: Path | None) -> dict:
    if token_file is None:
        return {}
    return {"Authorization": "Bearer " + token_file.read_text(encoding="utf-8").strip()}


class Reconciler:
    """One poll at a time (step); the loop around it is run()."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dashboard = Dashboard(args.dashboard_url, headers(args.token_file))
        self.seen = 0  # consecutive polls that found Serve off the config
        self.failures = 0  # failed polls in a row (the backoff)
        self.actions = {REAPPLY: 0, ANCHOR: 0}  # re-applies made by this process
        self.failed_polls = 0  # failed polls since this process started
        self.metrics = ReconcilerMetrics(args.metrics_file, self) if args.metrics_file else None
        # serve_problems() of the last poll that read Serve (the deploy gate's definition of
        # healthy, against the last healthy config); None when the last poll could not.
        self.problems: list[dict] | None = None
        self.applications: list[str] = []

    def desired(self) -> dict | None:
        try:
            return json.loads(self.args.config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def anchored(self, desired: dict, details: dict) -> tuple[dict, bool]:
        """DESIRED with the proxy anchor at the nodes alive now, and whether that is urgent:
        more nodes than the anchor has replicas (a node came back: nothing to wait for)."""
        name = self.args.anchor_application
        wanted = next((a for a in desired.get("applications", []) if a.get("name") == name), None)
        if not name or wanted is None:
            return desired, False
        replicas = proxy_anchor_replicas(self.dashboard.nodes())
        if replicas < 1:
            return desired, False  # no node answers as ALIVE: not the moment to change it
        anchored = with_anchor_replicas(desired, name, replicas)
        running = ((details.get("applications") or {}).get(name) or {}).get("deployed_app_config")
        if not running:
            # Serve does not run the anchor (yet): nothing is urgent, and Serve's own recovery
            # from a persisted GCS goes first (--settle).
            return anchored, False
        deployed = [int(d.get("num_replicas") or 0) for d in running.get("deployments") or []]
        return anchored, replicas > min(deployed, default=0)

    def step(self) -> str:
        """One poll: OK (Serve runs the config, or there is none yet), WAITING (a difference
        not yet settled, or a deploy under way) or FAILED (a re-apply did not become healthy)."""
        last_good = self.desired()
        if last_good is None:
            return OK  # no deploy has become healthy yet: nothing to restore
        self.problems = None
        details = self.dashboard.serve_details()
        desired, urgent = self.anchored(last_good, details)
        self.problems = serve_problems(details, desired, str(self.args.config))
        self.applications = sorted(
            {a["name"] for a in desired.get("applications", [])}
            | set(details.get("applications") or {})
        )
        diffs = differences(desired, details)
        if not diffs:
            if self.seen:
                log("Serve runs the last healthy config again")
            self.seen = 0
            return OK
        self.seen += 1
        if urgent:
            log(f"a node without a proxy anchor replica is ALIVE: acting now ({'; '.join(diffs)})")
        elif self.seen < self.args.settle:
            log(
                f"Serve differs from {self.args.config} ({'; '.join(diffs)}): "
                f"poll {self.seen} of {self.args.settle} before acting"
            )
            return WAITING
        with deploy_lock(self.args.lock, wait_s=0) as locked:
            if not locked:
                log("a deploy holds the lock: leaving Serve to it")
                self.seen = 0
                return WAITING
            details = self.dashboard.serve_details()
            desired, _ = self.anchored(last_good, details)
            diffs = apply(self.dashboard, desired, details, self.args.deploy_timeout)
            if not diffs:
                self.seen = 0
                return OK
            self.actions[ANCHOR if urgent else REAPPLY] += 1
            log(f"re-applying {self.args.config}: {'; '.join(diffs)}")
            ok, failure, _ = wait_healthy(self.dashboard, desired, self.args.deploy_timeout)
        if ok:
            log("re-applied: every application is healthy")
            self.seen = 0
            return OK
        log(f"re-applied, but not healthy: {failure}")
        return FAILED

    def run(self) -> None:
        log(f"watching Serve at {self.args.dashboard_url} against {self.args.config}")
        while True:
            try:
                state = self.step()
            except (DashboardError, OSError, ValueError) as err:
                log(f"cannot reconcile now: {err}")
                state = FAILED
            if state == FAILED:
                self.failed_polls += 1
            if self.metrics is not None:
                self.metrics.write(state)
            if self.args.once:
                return
            if state != FAILED:
                self.failures = 0
                wait = self.args.interval
            else:
                # Counted no further than the cap needs (2**1024 overflows a float).
                self.failures = min(self.failures + 1, 64)
                wait = min(self.args.max_backoff, self.args.interval * 2**self.failures)
            time.sleep(wait)


class ReconcilerMetrics:
    """The reconciler's counters and last poll as a textfile (see the module's docstring)."""

    def __init__(self, path: str, reconciler: Reconciler):
        self.path = path
        self.reconciler = reconciler
        self.state = ""
        self.polled_at = 0.0
        self.failing = False  # the last write failed (said once)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self):
        rec = self.reconciler
        actions = CounterMetricFamily(
            "rayforge_serve_reconciler_actions",
            "Re-applies of the last healthy Serve config by the reconciler, by what they were for.",
            labels=["action"],
        )
        for action, count in sorted(rec.actions.items()):
            actions.add_metric([action], count)
        yield actions
        yield CounterMetricFamily(
            "rayforge_serve_reconciler_failures",
            "Polls of the Serve reconciler that failed (a re-apply not healthy, an API error).",
            value=rec.failed_polls,
        )
        yield GaugeMetricFamily(
            "rayforge_serve_reconciler_last_poll_timestamp_seconds",
            "Unix time of the Serve reconciler's last poll.",
            value=self.polled_at,
        )
        state = GaugeMetricFamily(
            "rayforge_serve_reconciler_state",
            "Outcome of the Serve reconciler's last poll: 1 for it, 0 for the others.",
            labels=["state"],
        )
        for name in (OK, WAITING, FAILED):
            state.add_metric([name], int(name == self.state))
        yield state
        if rec.problems is None:
            return  # Serve was not read: the checks are not judged (their series vanish)
        checks = GaugeMetricFamily(
            "rayforge_check_passing",
            "1 when the named check passes on Serve's state, judged at the reconciler's last "
            "poll as the deploy gate judges it (against the last healthy config), else 0.",
            labels=["check"],
        )
        failing = {p["check"] for p in rec.problems}
        for check in SERVE_CHECKS:
            checks.add_metric([check], int(check not in failing))
        yield checks
        ready = GaugeMetricFamily(
            "rayforge_application_ready",
            "1 when the Serve application has no problem (deployed with the last healthy "
            "config, RUNNING, every deployment at its target), else 0.",
            labels=["application"],
        )
        troubled = {p["subject"] for p in rec.problems}
        serve_down = "serve_running" in failing
        for name in rec.applications:
            ready.add_metric([name], int(not serve_down and f"application/{name}" not in troubled))
        yield ready

    def write(self, state: str) -> None:
        self.state, self.polled_at = state, time.time()
        try:
            # Mode 0644 whatever the unit's UMask (0027 in ray_systemd_hardening): the node
            # exporter reads it as another user.
            write_text_atomic(self.path, generate_latest(self.registry).decode(), 0o644)
        except OSError as err:
            if not self.failing:
                log(f"cannot write metrics to {self.path} ({err}): trying again at each poll")
            self.failing = True
            return
        if self.failing:
            log(f"metrics written to {self.path} again")
        self.failing = False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    Reconciler(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
