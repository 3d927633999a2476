"""The webhook receiver of the alerting tests (tests/support/alert_receiver.py).

Proves: each alert of an Alertmanager webhook notification (schema version 4) is recorded
with its status and labels; first() finds the first one matching a status and labels after a
time, and nothing else; wait() returns it once it arrives, or None after its timeout; a body
that is not JSON is answered and recorded as nothing.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from alert_receiver import AlertReceiver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notify(port: int, status: str, *alerts: dict) -> int:
    body = {"version": "4", "status": status, "alerts": list(alerts)}
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/alerts",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


def alert(status: str, **labels: str) -> dict:
    return {"status": status, "labels": labels, "annotations": {}}


def test_records_each_alert_and_finds_the_first_match():
    port = free_port()
    with AlertReceiver(port, address="127.0.0.1") as receiver:
        start = time.monotonic()
        assert (
            notify(
                port,
                "firing",
                alert("firing", alertname="RayWorkerDown", node="w1"),
                alert("firing", alertname="RayWorkerDown", node="w2"),
            )
            == 200
        )
        assert notify(port, "resolved", alert("resolved", alertname="RayWorkerDown", node="w1"))
        assert len(receiver.seen) == 3
        fired = receiver.first("firing", alertname="RayWorkerDown", node="w1")
        assert fired is not None
        assert fired >= start
        resolved = receiver.first("resolved", after=fired, node="w1")
        assert resolved is not None
        assert resolved >= fired
        assert receiver.first("resolved", node="w2") is None
        assert receiver.first("firing", after=time.monotonic(), node="w1") is None


def test_wait_returns_once_the_alert_arrives_or_none_after_its_timeout():
    port = free_port()
    with AlertReceiver(port, address="127.0.0.1") as receiver:
        assert receiver.wait("firing", timeout=1.5, alertname="RayHeadDown") is None
        later = threading.Timer(1.0, notify, (port, "firing", alert("firing", alertname="X")))
        later.start()
        try:
            assert receiver.wait("firing", timeout=10, alertname="X") is not None
        finally:
            later.join()


def test_a_body_that_is_not_json_records_nothing():
    port = free_port()
    with AlertReceiver(port, address="127.0.0.1") as receiver:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"not json", method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        assert receiver.seen == []
