# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""A webhook receiver for Alertmanager's notifications, run by a test on the controller.

Alertmanager POSTs a JSON body per notification (its webhook schema, version 4): a group's
``status`` and its ``alerts``, each with ``status`` (firing or resolved), ``labels`` and
``annotations``. Every alert of every notification is recorded with the monotonic time it
arrived, so a test can ask when an alert first reached the receiver, firing or resolved.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Notified:
    at: float  # time.monotonic() when the notification arrived
    status: str  # firing or resolved
    labels: dict


class AlertReceiver:
    """Listens on ADDRESS:PORT (every address by default) until close(); records each alert
    of each notification posted to any path."""

    def __init__(self, port: int, address: str = "0.0.0.0"):
        self.seen: list[Notified] = []
        lock = threading.Lock()
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                now = time.monotonic()
                with lock:
                    for alert in body.get("alerts", []):
                        seen.append(Notified(now, alert.get("status", ""), alert.get("labels", {})))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()

    def __enter__(self) -> AlertReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def first(self, status: str, after: float = 0.0, **labels: str) -> float | None:
        """When an alert with STATUS and every one of LABELS first arrived after AFTER."""
        return next(
            (
                n.at
                for n in list(self.seen)
                if n.at > after
                and n.status == status
                and all(n.labels.get(k) == v for k, v in labels.items())
            ),
            None,
        )

    def wait(self, status: str, timeout: float, after: float = 0.0, **labels: str) -> float | None:
        """first(), waiting up to TIMEOUT seconds for it."""
        deadline = time.monotonic() + timeout
        while (found := self.first(status, after, **labels)) is None:
            if time.monotonic() > deadline:
                return None
            time.sleep(1)
        return found
