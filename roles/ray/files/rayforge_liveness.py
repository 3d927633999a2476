#!/usr/bin/env python3
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""Restarts this node's Ray unit when its Ray is dead under a unit systemd thinks is running.

`ray start --block` (the main process of a Ray unit) treats every child that exits on SIGTERM
as a graceful exit: after Ray's own `ray stop` (or anything else that sends SIGTERM to the
raylet, the GCS and the dashboard agent) the unit stays active with no Ray in it, and
systemd's Restart= never fires. This watchdog (the unit <ray unit>-liveness.service, PartOf
the Ray unit, so it runs exactly while the Ray unit runs) asks the node's dashboard agent
every --interval seconds for GET /api/healthz: the local raylet (a GCS that does not answer
does not count against it, so a head restart never restarts the workers) and, on the head,
the GCS. After --failures answers in a row that are not 200 (no answer within --timeout
seconds counts), it kills the Ray unit's whole control group (`systemctl kill --kill-whom=all
--signal=SIGKILL`), so nothing of the old Ray survives, and the unit's Restart=always starts
it again after its RestartSec. Not a `systemctl restart`: its SIGTERM makes `ray start` drain
first, and a drain asks the GCS, which on a head whose Ray is dead waits out the whole
ray_drain_timeout for an answer that cannot come; a node whose Ray is dead has nothing left
to drain. Every action goes to stdout, which is the journal.

It never fights a deliberate stop: it acts only while the Ray unit is `active` and past its
start (its Ray has answered once since the unit became active, which --state keeps for
--check and for the next watchdog, or --start-grace seconds have passed: a unit stopping,
stopped or starting is left alone), and not while --hold exists and
is newer than the unit's start (the drain entry point writes it before it drains a node on
purpose; a hold older than the unit's last start is stale).

Worst case from Ray dying to the restart: --failures x (--interval + --timeout) seconds.

Other modes:
  --check          one verdict for a playbook: exit 0 alive (or the unit is not running, or
                   still within --start-grace: nothing to repair), 1 dead (every one of
                   --failures probes failed), with the reason on stdout.
  --clear-ports    the Ray unit's ExecStartPre (as root): a process outside the unit that
                   listens on one of the node's ports (a Serve HAProxy that outlived its Ray)
                   is stopped when it runs as --owner, else the start fails at once, naming
                   the process and the port.
Exit status: 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ray_dashboard import Dashboard, DashboardError

AGENT_HEALTH_API = "/api/healthz"
ALIVE, DEAD = 0, 1


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unit", help="the Ray unit, e.g. ray-worker.service")
    parser.add_argument("--agent-url", help="http://address:port of the node's dashboard agent")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between probes")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds a probe may take")
    parser.add_argument("--failures", type=int, default=3, help="failed probes in a row to act")
    parser.add_argument("--start-grace", type=float, default=120.0, help="seconds after a start")
    parser.add_argument("--hold", type=Path, help="while newer than the unit's start: no action")
    parser.add_argument("--state", type=Path, help="where the start Ray answered in is kept")
    parser.add_argument("--check", action="store_true", help="one verdict, then exit 0 or 1")
    parser.add_argument("--clear-ports", help="comma-separated ports to clear, then exit")
    parser.add_argument("--owner", default="ray", help="user whose leftovers --clear-ports stops")
    args = parser.parse_args(argv)
    if args.clear_ports is None:
        if not args.unit or not args.agent_url:
            parser.error("--unit and --agent-url are required (unless --clear-ports)")
        if args.interval <= 0 or args.timeout <= 0 or args.failures < 1 or args.start_grace < 0:
            parser.error("--interval and --timeout must be positive, --failures at least 1")
    return args


# --- systemd ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitState:
    active_state: str  # active, activating, deactivating, inactive, failed
    active_for: float  # seconds since the unit last became active (0 when not active)
    started: int = 0  # when it last became active (systemd's monotonic microseconds)


def parse_unit_state(text: str, now_monotonic: float) -> UnitState:
    """`systemctl show -p ActiveState -p ActiveEnterTimestampMonotonic` as a UnitState."""
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    state = props.get("ActiveState", "unknown")
    entered_us = int(props.get("ActiveEnterTimestampMonotonic") or 0)
    active = state == "active" and entered_us > 0
    active_for = max(0.0, now_monotonic - entered_us / 1e6) if active else 0.0
    return UnitState(state, active_for, entered_us if active else 0)


def unit_state(unit: str) -> UnitState:
    out = subprocess.run(
        ["systemctl", "show", unit, "-p", "ActiveState", "-p", "ActiveEnterTimestampMonotonic"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return parse_unit_state(out, time.monotonic())


def restart_unit(unit: str) -> None:
    """Kills every process of UNIT; systemd starts it again (Restart=always)."""
    subprocess.run(
        ["systemctl", "kill", "--kill-whom=all", "--signal=SIGKILL", unit], check=True, timeout=30
    )


def held(hold: Path | None, state: UnitState, now_wall: float) -> bool:
    """A hold written after the unit's last start (its age below the unit's time active)."""
    if hold is None:
        return False
    try:
        age = now_wall - hold.stat().st_mtime
    except FileNotFoundError:
        return False
    return age < state.active_for


# --- the probe -------------------------------------------------------------------------------


def probe(agent: Dashboard, timeout_s: float) -> str | None:
    """None when the agent answers 200 on /api/healthz, else why not."""
    try:
        agent.request_text("GET", AGENT_HEALTH_API, timeout_s=timeout_s)
    except DashboardError as err:
        return str(err)
    return None


class Watchdog:
    """One probe at a time (step); the loop around it is run()."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.agent = Dashboard(args.agent_url)
        self.failed = 0
        self.last_state = ""
        self.answered_in = self.recorded_start()  # the start in which Ray last answered

    def recorded_start(self) -> int:
        """The unit's start (UnitState.started) in which Ray answered, as --state keeps it
        (0: none), so that --check and a restarted watchdog know a start is over."""
        try:
            return int(self.args.state.read_text().strip()) if self.args.state else 0
        except (OSError, ValueError):
            return 0

    def record_start(self, started: int) -> None:
        if started == self.answered_in:
            return
        self.answered_in = started
        if self.args.state:
            tmp = self.args.state.with_name(self.args.state.name + ".tmp")
            tmp.write_text(f"{started}\n")
            tmp.replace(self.args.state)

    def starting(self, state: UnitState) -> bool:
        """Within --start-grace of the unit's start and Ray not yet answered in it."""
        answered = state.started != 0 and self.answered_in == state.started
        return not answered and state.active_for < self.args.start_grace

    def step(self) -> str:
        """One poll: 'idle' (the unit is not up, still starting, or held), 'alive', 'failing'
        (fewer than --failures in a row) or 'restarted'. A unit is starting until its Ray
        first answers, or --start-grace seconds have passed since it became active."""
        state = unit_state(self.args.unit)
        if state.active_state != self.last_state:
            log(f"{self.args.unit} is {state.active_state}")
            self.last_state = state.active_state
        if state.active_state != "active":
            self.failed = 0
            return "idle"
        if held(self.args.hold, state, time.time()):
            if self.failed:
                log(f"{self.args.hold} holds: a deliberate drain or stop, no action")
            self.failed = 0
            return "idle"
        starting = self.starting(state)
        why = probe(self.agent, self.args.timeout)
        if why is None:
            if self.failed:
                log("Ray answers again: no action")
            self.failed = 0
            self.record_start(state.started)
            return "alive"
        if starting:
            self.failed = 0
            return "idle"
        self.failed += 1
        log(f"Ray does not answer ({self.failed} of {self.args.failures}): {why}")
        if self.failed < self.args.failures:
            return "failing"
        log(
            f"restarting {self.args.unit}: its Ray did not answer {self.failed} probes in a "
            f"row while the unit was active (Ray's processes stopped or hung under it)"
        )
        restart_unit(self.args.unit)
        self.failed = 0
        return "restarted"

    def check(self) -> int:
        """The verdict of --check: ALIVE unless the unit is active past its start (--state
        says its Ray answered in it, or --start-grace has passed), not held, and every one of
        --failures probes fails."""
        state = unit_state(self.args.unit)
        if state.active_state != "active":
            log(f"{self.args.unit} is {state.active_state}: nothing to repair")
            return ALIVE
        if self.starting(state) or held(self.args.hold, state, time.time()):
            log(f"{self.args.unit} is starting or held: left alone")
            return ALIVE
        why = None
        for attempt in range(self.args.failures):
            if attempt:
                time.sleep(self.args.interval)
            why = probe(self.agent, self.args.timeout)
            if why is None:
                log("Ray answers")
                return ALIVE
        log(f"{self.args.unit} is active but its Ray does not answer: {why}")
        return DEAD

    def run(self) -> None:
        log(
            f"watching {self.args.unit} through {self.args.agent_url}{AGENT_HEALTH_API} every "
            f"{self.args.interval:g} s ({self.args.failures} failures in a row restart it)"
        )
        while True:
            try:
                self.step()
            except (OSError, subprocess.SubprocessError) as err:
                log(f"cannot check now: {err}")
            time.sleep(self.args.interval)


# --- leftovers on the node's ports -----------------------------------------------------------


def listening_inodes(ports: set[int], proc: Path = Path("/proc")) -> dict[int, int]:
    """Socket inode -> port, for the TCP sockets listening on one of PORTS (IPv4 and IPv6)."""
    out = {}
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port in ports:
                out[int(fields[9])] = port
    return out


def holders(ports: set[int], proc: Path = Path("/proc")) -> list[tuple[int, int, str, int]]:
    """(pid, uid, command name, port) of every process holding a listening socket on PORTS."""
    inodes = listening_inodes(ports, proc)
    found = []
    if not inodes:
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
            uid = (entry / "status").stat().st_uid
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue  # gone, or not ours to read
        for link in links:
            if link.startswith("socket:["):
                inode = int(link[len("socket:[") : -1])
                if inode in inodes:
                    found.append((int(entry.name), uid, name, inodes[inode]))
    return sorted(set(found))


def clear_ports(ports: set[int], owner: str, wait_s: float = 5.0) -> int:
    """Stops OWNER's processes that hold PORTS (SIGTERM, then SIGKILL after WAIT_S); 0 when the
    ports are free then, 1 naming whatever else holds one."""
    try:
        owner_uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        owner_uid = None
    found = holders(ports)
    mine = [h for h in found if h[1] == owner_uid]
    for pid, _, name, port in mine:
        log(f"port {port} is held by a leftover {name} (pid {pid}, {owner}): stopping it")
        with_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while mine and time.monotonic() < deadline:
        time.sleep(0.2)
        mine = [h for h in holders(ports) if h[1] == owner_uid]
    for pid, _, name, port in mine:
        log(f"{name} (pid {pid}) still holds port {port} after {wait_s:g} s: killing it")
        with_signal(pid, signal.SIGKILL)
    others = [h for h in holders(ports) if h[1] != owner_uid]
    for pid, uid, name, port in others:
        log(
            f"port {port} is held by {name} (pid {pid}, uid {uid}), which is not {owner}'s: "
            "stop it or move the port, then start the unit again"
        )
    return 1 if others else 0


def with_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.clear_ports is not None:
        ports = {int(p) for p in args.clear_ports.split(",") if p.strip()}
        return clear_ports(ports, args.owner)
    watchdog = Watchdog(args)
    if args.check:
        return watchdog.check()
    watchdog.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
