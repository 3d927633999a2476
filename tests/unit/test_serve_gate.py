"""The Serve gate (roles/ray_firewall/files/rayforge_serve_gate.py) against a local HTTP server
standing in for a node's Serve proxy, and its nftables transactions.

Proves: ready() is true only when /-/healthz answers 200 and /-/routes lists a route; a
draining node (healthz 503 "This node is being drained.") is not ready, with Serve's words; a
proxy without routes yet is not ready; nothing listening is not ready. nft_script() closes
with one idempotent add and opens with an add then a delete in one transaction. The main loop
closes the port at once, repeats closing while not ready (a firewall reload empties the set),
opens once when ready, logs only changes, and retries after an nftables error.

An answer cut short (a proxy dying mid-answer) is "not ready", not a crash.
"""

from __future__ import annotations

import json
import subprocess
from http.server import BaseHTTPRequestHandler

import pytest
from unit_support import LocalHTTPServer

DRAINING = "This node is being drained."


class Proxy:
    """Answers /-/healthz and /-/routes with the (status, body) set in ``answers`` (cut short
    when ``truncated``)."""

    def __init__(self):
        self.answers = {"/-/healthz": (200, "success"), "/-/routes": (200, "{}")}
        self.paths: list[str] = []
        self.truncated = False  # send half of each body after announcing all of it
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.paths.append(self.path)
                status, body = proxy.answers.get(self.path, (404, "Not Found"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if proxy.truncated else data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = LocalHTTPServer(Handler)
        self.port = self.http.port

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def proxy():
    server = Proxy()
    yield server
    server.close()


def test_ready_when_healthy_with_routes(serve_gate, proxy):
    proxy.answers["/-/routes"] = (200, json.dumps({"/": "seedcore-ml", "/extra": "extra"}))
    assert serve_gate.ready(proxy.port) == (True, "routes /, /extra")
    assert proxy.paths == ["/-/healthz", "/-/routes"]


def test_draining_node_is_not_ready(serve_gate, proxy):
    proxy.answers["/-/healthz"] = (503, DRAINING)
    proxy.answers["/-/routes"] = (200, json.dumps({"/": "seedcore-ml"}))
    assert serve_gate.ready(proxy.port) == (False, f"/-/healthz answers 503 {DRAINING}")
    assert proxy.paths == ["/-/healthz"]


def test_no_route_yet_is_not_ready(serve_gate, proxy):
    proxy.answers["/-/routes"] = (200, "{}")
    assert serve_gate.ready(proxy.port) == (False, "no route yet")


def test_routes_404_is_not_ready(serve_gate, proxy):
    proxy.answers["/-/routes"] = (404, "Path '/-/routes' not found.")
    assert serve_gate.ready(proxy.port) == (
        False,
        "/-/routes answers 404 Path '/-/routes' not found.",
    )


def test_nothing_listening_is_not_ready(serve_gate, closed_port):
    ok, why = serve_gate.ready(closed_port)
    assert ok is False
    assert why.startswith("Serve's proxy does not answer (")
    assert "Connection refused" in why


def test_answer_cut_short_is_not_ready(serve_gate, proxy):
    proxy.answers["/-/routes"] = (200, json.dumps({"/": "seedcore-ml"}))
    proxy.truncated = True
    ok, why = serve_gate.ready(proxy.port)
    assert ok is False
    assert why.startswith("Serve's proxy does not answer")


def test_nft_script_close_adds_the_element(serve_gate):
    assert serve_gate.nft_script("rayforge", 8000, closed=True) == (
        "add element inet rayforge serve_gate { 8000 }\n"
    )


def test_nft_script_open_adds_then_deletes_in_one_transaction(serve_gate):
    assert serve_gate.nft_script("rayforge", 8000, closed=False) == (
        "add element inet rayforge serve_gate { 8000 }\n"
        "delete element inet rayforge serve_gate { 8000 }\n"
    )


class Stop(Exception):
    pass


def run_main(serve_gate, monkeypatch, readiness, nft_errors=()):
    """Runs main() for len(READINESS) polls; the set_gate calls (closed or not) it made."""
    polls = iter(readiness)
    calls = []
    errors = list(nft_errors)

    def ready(port):
        assert port == 8000
        try:
            ok = next(polls)
        except StopIteration:
            raise Stop from None
        return ok, "routes /" if ok else DRAINING

    def set_gate(table, port, closed):
        assert (table, port) == ("rayforge", 8000)
        calls.append(closed)
        if errors and errors.pop(0):
            raise subprocess.CalledProcessError(1, ["nft"], stderr="Error: No such file\n")

    class FakeTime:
        @staticmethod
        def sleep(seconds):
            assert seconds == 0.5

    monkeypatch.setattr(serve_gate, "ready", ready)
    monkeypatch.setattr(serve_gate, "set_gate", set_gate)
    monkeypatch.setattr(serve_gate, "time", FakeTime)
    with pytest.raises(Stop):
        serve_gate.main(["--port", "8000", "--table", "rayforge", "--interval", "0.5"])
    return calls


def test_main_closes_repeatedly_opens_once_and_logs_changes(serve_gate, monkeypatch, capsys):
    calls = run_main(serve_gate, monkeypatch, [False, False, True, True, False])
    assert calls == [True, True, False, True]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "gating port 8000 in table inet rayforge on Serve's readiness",
        f"port 8000 closed: {DRAINING}",
        "port 8000 open: routes /",
        f"port 8000 closed: {DRAINING}",
    ]


def test_main_retries_after_an_nft_error(serve_gate, monkeypatch, capsys):
    calls = run_main(serve_gate, monkeypatch, [True, True, True], nft_errors=[True])
    assert calls == [False, False]  # the failed opening is tried again, then left alone
    out = capsys.readouterr().out
    assert "cannot open port 8000: Error: No such file" in out
    assert out.count("port 8000 open: routes /") == 1


@pytest.mark.parametrize("bad", [["--port", "0"], ["--port", "8000", "--interval", "0"]])
def test_bad_arguments_exit_2(serve_gate, bad):
    with pytest.raises(SystemExit) as exited:
        serve_gate.main([*bad, "--table", "rayforge"])
    assert exited.value.code == 2
