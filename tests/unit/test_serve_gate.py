"""The Serve gate (roles/ray_firewall/files/rayforge_serve_gate.py) against a local HTTP server
standing in for a node's Serve proxy, and its nftables transactions.

Proves: ready() is true only when /-/healthz answers 200 and /-/routes lists a route, and every
expected route when some are expected (it names the missing ones); a
draining node (healthz 503 "This node is being drained.") is not ready, with Serve's words; a
proxy without routes yet is not ready; nothing listening is not ready. nft_script() closes
with one idempotent add and opens with an add then a delete in one transaction. The main loop
closes the port at once, repeats closing while not ready (a firewall reload empties the set),
opens once when ready, logs only changes, and retries after an nftables error. A closed port
waits for the routes of --routes-file (read at every poll while closed, never while open), for
--route-wait seconds at most once some routes are there; a missing, damaged or malformed file
expects nothing more than one route, and says why once. While the hold file exists the port
stays closed without asking the proxy, with the file's first line as the reason.

An answer cut short (a proxy dying mid-answer) is "not ready", not a crash.

With --metrics-file the gate writes its state (open, the reason it is closed, the time of the
last change) once per change, however many polls, each time a whole new file renamed over the
old one, parsed back here with prometheus_client's parser; without the textfile directory it
says so once and gates on, and writes the file once the directory appears.
"""

from __future__ import annotations

import json
import subprocess
import time
from http.server import BaseHTTPRequestHandler

import pytest
from unit_support import LocalHTTPServer, read_textfile

DRAINING = "This node is being drained."


class Proxy:
    """Answers /-/healthz and /-/routes with the (status, body) set in ``answers`` (cut short
    when ``truncated``)."""

    def __init__(self):
        self.answers = {"/-/healthz": (200, "success"), "/-/routes": (200, "{}")}
        self.paths: list[str] = []
        self.truncated = False  # send half of each body after announcing all of it
        self.delay_s = 0.0  # wait this long before answering
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.paths.append(self.path)
                time.sleep(proxy.delay_s)
                status, body = proxy.answers.get(self.path, (404, "Not Found"))
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2] if proxy.truncated else data)
                except BrokenPipeError:  # a probe that timed out has gone
                    pass

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
    assert serve_gate.ready(proxy.port)[:4] == (True, "routes /, /extra", [], "")
    assert proxy.paths == ["/-/healthz", "/-/routes"]


def test_draining_node_is_not_ready(serve_gate, proxy):
    proxy.answers["/-/healthz"] = (503, DRAINING)
    proxy.answers["/-/routes"] = (200, json.dumps({"/": "seedcore-ml"}))
    assert serve_gate.ready(proxy.port, ["/"])[:4] == (
        False,
        f"/-/healthz answers 503 {DRAINING}",
        [],
        "draining",
    )
    assert proxy.paths == ["/-/healthz"]


def test_no_route_yet_is_not_ready(serve_gate, proxy):
    proxy.answers["/-/routes"] = (200, "{}")
    assert serve_gate.ready(proxy.port, ["/"])[:4] == (False, "no route yet", [], "no_routes")


def test_routes_404_is_not_ready(serve_gate, proxy):
    proxy.answers["/-/routes"] = (404, "Path '/-/routes' not found.")
    assert serve_gate.ready(proxy.port)[:4] == (
        False,
        "/-/routes answers 404 Path '/-/routes' not found.",
        [],
        "no_routes",
    )


def test_nothing_listening_is_not_ready(serve_gate, closed_port):
    ok, why, missing, reason, _ = serve_gate.ready(closed_port)
    assert (ok, missing, reason) == (False, [], "down")
    assert why.startswith("Serve's proxy does not answer (")
    assert "Connection refused" in why


def test_a_late_answer_is_not_ready_and_says_it_timed_out(serve_gate, proxy, monkeypatch):
    monkeypatch.setattr(serve_gate, "PROBE_TIMEOUT_S", 0.2)
    proxy.delay_s = 0.5
    result = serve_gate.ready(proxy.port)
    assert (result.ok, result.reason, result.timed_out) == (False, "down", True), result
    assert "timed out" in result.why


def test_a_refused_connection_is_not_a_timeout(serve_gate, closed_port):
    assert serve_gate.ready(closed_port).timed_out is False


def test_answer_cut_short_is_not_ready(serve_gate, proxy):
    proxy.answers["/-/routes"] = (200, json.dumps({"/": "seedcore-ml"}))
    proxy.truncated = True
    ok, why, missing, reason, _ = serve_gate.ready(proxy.port)
    assert (ok, missing, reason) == (False, [], "down")
    assert why.startswith("Serve's proxy does not answer")


def test_expected_routes_that_are_there_are_ready(serve_gate, proxy):
    proxy.answers["/-/routes"] = (200, json.dumps({"/": "seedcore-ml", "/echo": "echo"}))
    assert serve_gate.ready(proxy.port, ["/echo", "/"])[:4] == (True, "routes /, /echo", [], "")


def test_an_expected_route_not_there_yet_is_named(serve_gate, proxy):
    """The first application's route reached the proxy, the other's not yet: a request for it
    would get Serve's 404."""
    proxy.answers["/-/routes"] = (200, json.dumps({"/echo": "rayforge-echo"}))
    assert serve_gate.ready(proxy.port, ["/", "/echo", "/ml"])[:4] == (
        False,
        "routes /echo, waiting for /, /ml",
        ["/", "/ml"],
        "missing_routes",
    )


def test_expected_routes_read_from_the_file(serve_gate, tmp_path):
    path = tmp_path / "serve-routes.json"
    path.write_text('["/", "/echo"]\n')
    assert serve_gate.expected_routes(str(path)) == (["/", "/echo"], "")


@pytest.mark.parametrize("path", [None, "", "absent"])
def test_no_path_or_no_file_expects_nothing_silently(serve_gate, tmp_path, path):
    """No file: no deploy has finished on this node yet."""
    given = str(tmp_path / "serve-routes.json") if path == "absent" else path
    assert serve_gate.expected_routes(given) == ([], "")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('["/"', "unreadable ("),
        ('{"/": "app"}', "is not a JSON list of route prefixes"),
        ('["/", 3]', "is not a JSON list of route prefixes"),
    ],
)
def test_a_damaged_file_expects_nothing_and_says_why(serve_gate, tmp_path, content, why):
    path = tmp_path / "serve-routes.json"
    path.write_text(content)
    routes, problem = serve_gate.expected_routes(str(path))
    assert routes == []
    assert problem.startswith(f"{path} ")
    assert why in problem
    assert problem.endswith("not waiting for its routes")


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


def run_main(serve_gate, monkeypatch, readiness, nft_errors=(), extra_args=()):
    """Runs main() for len(READINESS) polls, each True, False (draining) or a list of the
    expected routes still missing; the set_gate calls (closed or not) it made and the routes
    each poll expected. The clock advances by the interval at each sleep."""
    polls = iter(readiness)
    calls = []
    expected_seen = []
    errors = list(nft_errors)
    clock = [0.0]

    def ready(port, expected=()):
        assert port == 8000
        try:
            item = next(polls)
        except StopIteration:
            raise Stop from None
        expected_seen.append(list(expected))
        if isinstance(item, list):
            why = f"routes /echo, waiting for {', '.join(item)}"
            return serve_gate.Readiness(False, why, item, "missing_routes")
        if item == "slow":
            why = "Serve's proxy does not answer (timed out)"
            return serve_gate.Readiness(False, why, [], "down", True)
        if item:
            return serve_gate.Readiness(True, "routes /", [], "")
        return serve_gate.Readiness(False, DRAINING, [], "draining")

    def set_gate(table, port, closed):
        assert (table, port) == ("rayforge", 8000)
        calls.append(closed)
        if errors and errors.pop(0):
            raise subprocess.CalledProcessError(1, ["nft"], stderr="Error: No such file\n")

    class FakeTime:
        @staticmethod
        def sleep(seconds):
            assert seconds == 0.5
            clock[0] += seconds

        @staticmethod
        def monotonic():
            return clock[0]

        @staticmethod
        def time():
            return 1_700_000_000 + clock[0]

    monkeypatch.setattr(serve_gate, "ready", ready)
    monkeypatch.setattr(serve_gate, "set_gate", set_gate)
    monkeypatch.setattr(serve_gate, "time", FakeTime)
    with pytest.raises(Stop):
        serve_gate.main(["--port", "8000", "--table", "rayforge", "--interval", "0.5", *extra_args])
    return calls, expected_seen


def test_main_closes_repeatedly_opens_once_and_logs_changes(serve_gate, monkeypatch, capsys):
    calls, _ = run_main(serve_gate, monkeypatch, [False, False, True, True, False])
    assert calls == [True, True, False, True]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "gating port 8000 in table inet rayforge on Serve's readiness",
        f"port 8000 closed: {DRAINING}",
        "port 8000 open: routes /",
        f"port 8000 closed: {DRAINING}",
    ]


def test_main_retries_after_an_nft_error(serve_gate, monkeypatch, capsys):
    calls, _ = run_main(serve_gate, monkeypatch, [True, True, True], nft_errors=[True])
    assert calls == [False, False]  # the failed opening is tried again, then left alone
    out = capsys.readouterr().out
    assert "cannot open port 8000: Error: No such file" in out
    assert out.count("port 8000 open: routes /") == 1


def test_main_opens_only_with_every_route_of_the_file_then_stops_reading_it(
    serve_gate, monkeypatch, capsys, tmp_path
):
    """A full restart: the proxy routes /echo first, then / too; once open, a route missing
    (an application a deploy removed) does not close the port."""
    routes = tmp_path / "serve-routes.json"
    routes.write_text('["/", "/echo"]\n')
    calls, expected = run_main(
        serve_gate,
        monkeypatch,
        [False, ["/"], ["/"], True, True],
        extra_args=["--routes-file", str(routes), "--route-wait", "30"],
    )
    assert calls == [True, True, True, False]
    assert expected == [["/", "/echo"]] * 4 + [[]]
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [f"port 8000 closed: {DRAINING}", "port 8000 open: routes /"]


def test_main_opens_after_route_wait_without_the_missing_routes(
    serve_gate, monkeypatch, capsys, tmp_path
):
    """An application that does not come back keeps the others offline --route-wait s at most."""
    routes = tmp_path / "serve-routes.json"
    routes.write_text('["/", "/echo"]\n')
    calls, _ = run_main(
        serve_gate,
        monkeypatch,
        [["/"], ["/"], ["/"], ["/"]],
        extra_args=["--routes-file", str(routes), "--route-wait", "1"],
    )
    assert calls == [True, True, False]  # polls at 0, 0.5 s closed; at 1 s open; then left open
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "port 8000 closed: routes /echo, waiting for /",
        "port 8000 open: routes /echo, waiting for /: opened after 1 s without them",
    ]


def test_main_keeps_an_open_port_open_through_late_answers_for_the_grace(
    serve_gate, monkeypatch, capsys
):
    """A busy proxy (answers after the probe's timeout) leaves an open port open for
    --slow-grace seconds; late answers for longer close it; a port already closed opens only
    when the proxy answers in time; a draining proxy closes it at once, late answers or not."""
    polls = [True, "slow", "slow", True, "slow", "slow", "slow", "slow", True, "slow", False]
    calls, _ = run_main(serve_gate, monkeypatch, polls, extra_args=["--slow-grace", "1.5"])
    # open; two late answers (0.5 s) kept open; in time; late at 0, 0.5, 1.0 s kept open,
    # at 1.5 s closed; in time: open; late (kept open), then draining: closed.
    assert calls == [False, True, False, True]
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "port 8000 open: routes /",
        "port 8000 closed: Serve's proxy does not answer (timed out)",
        "port 8000 open: routes /",
        f"port 8000 closed: {DRAINING}",
    ]


def test_main_closes_at_the_first_late_answer_without_a_grace(serve_gate, monkeypatch):
    calls, _ = run_main(
        serve_gate, monkeypatch, [True, "slow", True], extra_args=["--slow-grace", "0"]
    )
    assert calls == [False, True, False]


def test_held_by_names_the_hold_or_nothing(serve_gate, tmp_path):
    hold = tmp_path / "serve-gate.hold"
    assert serve_gate.held_by(None) == ""
    assert serve_gate.held_by(str(hold)) == ""
    hold.write_text("Serve is shut down\nmore\n")
    assert serve_gate.held_by(str(hold)) == "held closed: Serve is shut down"
    hold.write_text("")
    assert serve_gate.held_by(str(hold)) == f"held closed: {hold}"


def test_main_keeps_the_port_closed_while_held(serve_gate, monkeypatch, capsys, tmp_path):
    """A shutdown holds the port closed before Serve goes away: the proxy, still healthy, is
    not asked, and the port opens again once the hold is lifted."""
    hold = tmp_path / "serve-gate.hold"
    hold.write_text("Serve is shut down\n")
    asked = []

    def healthy(port, expected=()):
        asked.append(port)
        return serve_gate.Readiness(True, "routes /", [], "")

    real_sleep = []

    class FakeTime:
        @staticmethod
        def sleep(seconds):
            real_sleep.append(seconds)
            if len(real_sleep) == 2:
                hold.unlink()
            if len(real_sleep) == 4:
                raise Stop

    calls = []
    monkeypatch.setattr(serve_gate, "ready", healthy)
    monkeypatch.setattr(serve_gate, "set_gate", lambda table, port, closed: calls.append(closed))
    monkeypatch.setattr(serve_gate, "time", FakeTime)
    with pytest.raises(Stop):
        serve_gate.main(["--port", "8000", "--table", "rayforge", "--hold-file", str(hold)])
    assert calls == [True, True, False]
    assert len(asked) == 2  # only once the hold was gone
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "port 8000 closed: held closed: Serve is shut down",
        "port 8000 open: routes /",
    ]


def test_main_says_once_that_the_file_is_damaged(serve_gate, monkeypatch, capsys, tmp_path):
    routes = tmp_path / "serve-routes.json"
    routes.write_text("not json")
    calls, expected = run_main(
        serve_gate, monkeypatch, [False, False, True], extra_args=["--routes-file", str(routes)]
    )
    assert calls == [True, True, False]
    assert expected == [[], [], []]
    out = capsys.readouterr().out
    assert out.count(f"{routes} unreadable (") == 1


@pytest.mark.parametrize(
    "bad",
    [
        ["--port", "0"],
        ["--port", "8000", "--interval", "0"],
        ["--port", "8000", "--route-wait", "-1"],
    ],
)
def test_bad_arguments_exit_2(serve_gate, bad):
    with pytest.raises(SystemExit) as exited:
        serve_gate.main([*bad, "--table", "rayforge"])
    assert exited.value.code == 2


def test_main_writes_the_gate_state_at_each_change(serve_gate, monkeypatch, capsys, tmp_path):
    """Closed (draining) at 0 s, open at 1 s, closed again at 2 s: three writes for five polls,
    the file replaced whole each time, the last change stamped."""
    prom = tmp_path / "rayforge_serve_gate.prom"
    writes = []  # (text, an open handle on the file written)
    real_write = serve_gate.write_to_textfile

    def counting_write(path, registry):
        real_write(path, registry)
        writes.append((prom.read_text(), prom.open(encoding="utf-8")))

    monkeypatch.setattr(serve_gate, "write_to_textfile", counting_write)
    run_main(
        serve_gate,
        monkeypatch,
        [False, False, True, True, False],
        extra_args=["--metrics-file", str(prom)],
    )
    assert len(writes) == 3
    assert "rayforge_serve_gate_open 1.0" in writes[1][0]
    # Each write is a new file renamed over the old one: a reader that opened the old one
    # reads it whole, never a mix; no temporary file is left beside it.
    for text, handle in writes:
        with handle:
            assert handle.read() == text
    assert writes[0][0] != writes[1][0] != writes[2][0]
    assert [p.name for p in tmp_path.iterdir()] == [prom.name]
    metrics = read_textfile(prom)
    assert metrics["rayforge_serve_gate_open"] == {(): 0}
    assert metrics["rayforge_serve_gate_closed_reason"] == {
        (("reason", r),): (1 if r == "draining" else 0) for r in serve_gate.REASONS
    }
    assert metrics["rayforge_serve_gate_last_change_timestamp_seconds"] == {(): 1_700_000_002.0}
    assert "metrics" not in capsys.readouterr().out


def test_main_open_writes_every_reason_zero(serve_gate, monkeypatch, tmp_path):
    prom = tmp_path / "rayforge_serve_gate.prom"
    run_main(serve_gate, monkeypatch, [True, True], extra_args=["--metrics-file", str(prom)])
    metrics = read_textfile(prom)
    assert metrics["rayforge_serve_gate_open"] == {(): 1}
    assert set(metrics["rayforge_serve_gate_closed_reason"].values()) == {0}
    assert metrics["rayforge_serve_gate_last_change_timestamp_seconds"] == {(): 1_700_000_000.0}


def test_main_gates_on_without_the_metrics_directory(serve_gate, monkeypatch, capsys, tmp_path):
    """No textfile directory (no node exporter on the node): said once, the gate gates on."""
    prom = tmp_path / "absent" / "rayforge_serve_gate.prom"
    calls, _ = run_main(
        serve_gate, monkeypatch, [False, False, True], extra_args=["--metrics-file", str(prom)]
    )
    assert calls == [True, True, False]
    out = capsys.readouterr().out.splitlines()
    problems = [line for line in out if line.startswith("cannot write metrics")]
    assert len(problems) == 1, out
    assert str(prom) in problems[0]
    assert not prom.parent.exists()


def test_gate_metrics_written_once_the_directory_appears(serve_gate, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(serve_gate.time, "time", lambda: 1_700_000_000.0)
    prom = tmp_path / "textfile" / "rayforge_serve_gate.prom"
    metrics = serve_gate.GateMetrics(str(prom))
    metrics.record(False, "hold")
    metrics.record(False, "hold")
    prom.parent.mkdir()
    metrics.record(False, "hold")  # the same state, written now that it can be
    assert read_textfile(prom)["rayforge_serve_gate_closed_reason"][(("reason", "hold"),)] == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith(f"cannot write metrics to {prom} (")
    assert out[1] == f"metrics written to {prom} again"
