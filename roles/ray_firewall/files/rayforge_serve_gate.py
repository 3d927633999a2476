#!/usr/bin/env python3
# Copyright: rayforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refuses new connections to a node's Serve port while the node cannot route them.

Runs on every node under systemd (rayforge-serve-gate.service, root: it edits the nftables
table of rayforge-firewall). Every --interval seconds it asks the node's own Serve proxy, on
127.0.0.1 (the firewall lets loopback through):

* ``GET /-/healthz`` must answer 200: Serve answers 503 while the node drains (``ray start
  --block`` got SIGTERM, so the replicas are moving elsewhere) and nothing while Ray is down;
* ``GET /-/routes`` must answer 200 with at least one route: a proxy that has just started
  answers every request with 404 until the route table reaches it.

When both hold, the port is open; otherwise the port's number is an element of the table's
set ``serve_gate``, and the firewall rejects new connections to it with a TCP reset (a client
sees "connection refused" and a load balancer tries another node), while connections already
open finish. So a draining node stops taking requests before its replicas exit, and a
starting node takes none before it can route them: its clients see refused connections, never
a 404 or a request cut in flight.

Every change of state goes to stdout (the journal). An nftables error (the firewall stopped
or reloading) is logged and retried at the next poll. Exit status 2: bad arguments.
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

PROBE_TIMEOUT_S = 1.0


def log(message: str) -> None:
    print(message, flush=True)


def ready(port: int) -> tuple[bool, str]:
    """(the node can route requests, why not)."""
    base = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(base + "/-/healthz", timeout=PROBE_TIMEOUT_S) as resp:
            resp.read()
        with urllib.request.urlopen(base + "/-/routes", timeout=PROBE_TIMEOUT_S) as resp:
            routes = json.loads(resp.read().decode() or "{}")
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace").strip()
        return False, f"{err.url.removeprefix(base)} answers {err.code} {body[:80]}".strip()
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
        return False, f"Serve's proxy does not answer ({getattr(err, 'reason', err)})"
    if not isinstance(routes, dict) or not routes:
        return False, "no route yet"
    return True, f"routes {', '.join(sorted(routes))}"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="Serve's HTTP port")
    parser.add_argument("--table", required=True, help="nftables table (family inet)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between probes")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536 or args.interval <= 0:
        parser.error("--port must be a TCP port and --interval positive")

    closed: bool | None = None  # unknown until the first change is made
    log(f"gating port {args.port} in table inet {args.table} on Serve's readiness")
    while True:
        ok, why = ready(args.port)
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
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
