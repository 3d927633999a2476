#!/usr/bin/python
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""The head's side of the preflight's GCS reachability probe, as three read-only steps.

Run on the head (delegated there by roles/ray/tasks/preflight_gcs_probe.yml), with the
head's Python:

* ``mode: listeners`` lists the sockets listening on TCP ``port`` (IPv4 and IPv6), read from
  /proc/net/tcp and /proc/net/tcp6, as ``address:port`` strings: a running head answers the
  workers' probes itself.
* ``mode: stand_in`` (run with ``async``) listens on ``host``:``port`` for at most
  ``seconds`` seconds in place of a head that does not run yet, accepting and closing every
  connection, until a connection sends ``stop``. Failure (``msg``): the address could not be
  bound, e.g. ``OSError: [Errno 98] Address already in use``.
* ``mode: stop`` connects to ``host``:``port`` within ``timeout`` seconds and sends
  ``stop``, which ends a stand-in there. Failure (``msg``): the connection failed.

Needs Python 3.10 or later on the head (the preflight has checked it by then).
Nothing is written anywhere; ``changed`` is always false. Supports check mode (runs the
same). As a module, exit status 0 with a JSON result; a failure is ``failed: true`` and a
``msg`` (Ansible's fail_json, exit status 1).
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: ray_gcs_probe
short_description: The head's side of the preflight probe of its GCS port
description:
  - The preflight checks that every worker reaches the head's GCS address
    (C(ray_gcs_port)) before anything is installed. A head that runs answers for itself;
    on a new cluster a stand-in listens there while the workers connect.
  - O(mode=listeners) reads which sockets listen on O(port) (IPv4 and IPv6, from
    C(/proc/net/tcp) and C(/proc/net/tcp6)).
  - O(mode=stand_in), run with C(async), listens on O(host):O(port) for at most O(seconds)
    seconds, accepting and closing every connection, until a connection sends C(stop).
  - O(mode=stop) connects to O(host):O(port) and sends C(stop), which ends a stand-in.
  - Changes nothing; supports check mode (it runs the same).
options:
  mode:
    type: str
    required: true
    choices: [listeners, stand_in, stop]
    description: Which step to run (see the description).
  port:
    type: int
    required: true
    description: The TCP port, 1 to 65535 (the head's C(ray_gcs_port)).
  host:
    type: str
    description: >-
      The IPv4 or IPv6 address to listen on (O(mode=stand_in)) or connect to
      (O(mode=stop)); required by both.
  seconds:
    type: float
    default: 30
    description: >-
      O(mode=stand_in): seconds after which the stand-in stops listening even if nothing
      sent C(stop).
  timeout:
    type: float
    default: 5
    description: O(mode=stop) - seconds to wait for the connection.
"""

EXAMPLES = r"""
- name: Listeners on the head's GCS port are read
  ray_gcs_probe:
    mode: listeners
    port: 6379
  register: listeners  # listeners.listeners == ["10.0.0.1:6379"] when a head runs
"""

RETURN = r"""
listeners:
  description: O(mode=listeners) - C(address:port) of every socket listening on O(port).
  type: list
  elements: str
  returned: when O(mode=listeners)
  sample: ["10.0.0.1:6379", "::1:6379"]
accepted:
  description: O(mode=stand_in) - connections the stand-in accepted (the stop included).
  type: int
  returned: when O(mode=stand_in)
stopped:
  description: >-
    O(mode=stand_in) - true when a connection sent C(stop), false when O(seconds) ran out.
  type: bool
  returned: when O(mode=stand_in)
"""

import socket
import time

from ansible.module_utils.basic import AnsibleModule

# /proc/net/tcp's state of a listening socket (TCP_LISTEN).
TCP_LISTEN = "0A"
PROC_NET_TCP = (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6))
STOP = b"stop"


def parse_listeners(text: str, family: int, port: int) -> list[str]:
    """``address:port`` of each socket of the /proc/net/tcp (or tcp6) TEXT that listens on
    PORT. Addresses there are hex, in 32-bit words of host (little-endian) byte order."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        addr, hexport = fields[1].rsplit(":", 1)
        if fields[3] == TCP_LISTEN and int(hexport, 16) == port:
            raw = b"".join(bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, len(addr), 8))
            out.append(f"{socket.inet_ntop(family, raw)}:{port}")
    return out


def listeners(port: int, tables: tuple[tuple[str, int], ...] = PROC_NET_TCP) -> list[str]:
    """``address:port`` of every socket of this network namespace listening on TCP PORT;
    a table that cannot be read (no IPv6) is skipped."""
    out = []
    for path, family in tables:
        try:
            with open(path) as table:
                text = table.read()
        except OSError:
            continue
        out += parse_listeners(text, family, port)
    return out


def stand_in(host: str, port: int, seconds: float) -> tuple[int, bool]:
    """Listens on HOST:PORT (IPv6 when HOST has a colon) for at most SECONDS, accepting and
    closing each connection, until one sends ``stop``. Returns (connections accepted,
    whether ``stop`` ended it). Raises OSError when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    accepted = 0
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.listen(64)
        server.settimeout(0.5)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                conn, _ = server.accept()
            except TimeoutError:  # socket.timeout is this since Python 3.10
                continue
            accepted += 1
            with conn:
                conn.settimeout(1)
                try:
                    data = conn.recv(16)  # a probe just closes; stop() sends "stop"
                except OSError:
                    data = b""
            if data.startswith(STOP):
                return accepted, True
    return accepted, False


def stop(host: str, port: int, timeout: float) -> None:
    """Sends ``stop`` to the stand-in on HOST:PORT. Raises OSError when it cannot connect."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(STOP)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "mode": {"type": "str", "required": True, "choices": ["listeners", "stand_in", "stop"]},
            "port": {"type": "int", "required": True},
            "host": {"type": "str"},
            "seconds": {"type": "float", "default": 30},
            "timeout": {"type": "float", "default": 5},
        },
        required_if=[("mode", "stand_in", ["host"]), ("mode", "stop", ["host"])],
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["port"] <= 65535:
        module.fail_json(msg=f"port {p['port']} is not a TCP port (1 to 65535)")
    if p["mode"] == "listeners":
        module.exit_json(changed=False, listeners=listeners(p["port"]))
    try:
        if p["mode"] == "stand_in":
            accepted, stopped = stand_in(p["host"], p["port"], p["seconds"])
            module.exit_json(changed=False, accepted=accepted, stopped=stopped)
        stop(p["host"], p["port"], p["timeout"])
    except OSError as err:
        # What a traceback's last line would say: the error's type and text.
        module.fail_json(msg=f"{type(err).__name__}: {err}")
    module.exit_json(changed=False)


if __name__ == "__main__":
    main()
