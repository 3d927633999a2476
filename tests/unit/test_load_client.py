"""The bounded load client of the fault tests (tests/support/load_client.py).

Proves: report() counts, per target and within [since, until], the requests, the failures and
each outcome, and finds the last failure and the moment a target served for good (none when
it failed last, 0 when it never failed), whatever the order of the samples; describe() says
so in one line per target. LoadClient, against a local HTTP server that answers 200 and then
503, posts the body, records each outcome in order, and stops by itself at max_requests and
at max_seconds (a test cannot leave it running); a closed port is recorded as "refused". Each
sample says how long its request took; a report gives the slowest of its window.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from unit_support import LocalHTTPServer


@pytest.fixture(autouse=True)
def short_pause(load_client, monkeypatch):
    monkeypatch.setattr(load_client, "PAUSE_S", 0.002)


def samples(load_client, spec):
    return [load_client.Sample(target, sent, outcome) for target, sent, outcome in spec]


@pytest.fixture
def mixed(load_client):
    # Deliberately out of order: report() sorts by send time.
    return samples(
        load_client,
        [
            ("head", 3.0, "ok"),
            ("head", 0.0, "ok"),
            ("head", 2.0, "refused"),
            ("head", 1.0, "http 503"),
            ("head", 4.0, "ok"),
            ("worker1", 0.5, "ok"),
            ("worker1", 1.5, "ok"),
            ("worker2", 0.5, "ok"),
            ("worker2", 2.5, "reset"),
        ],
    )


def test_report_counts_and_recovery(load_client, mixed):
    reports = load_client.report(mixed)
    assert list(reports) == ["head", "worker1", "worker2"]
    head = reports["head"]
    assert (head.total, head.failed, head.non_2xx) == (5, 2, 1)
    assert head.outcomes == {"ok": 3, "http 503": 1, "refused": 1}
    assert head.last_failure == 2.0
    assert head.recovered_after == 3.0
    worker1 = reports["worker1"]
    assert (worker1.total, worker1.failed, worker1.last_failure) == (2, 0, None)
    assert worker1.recovered_after == 0.0  # never failed
    worker2 = reports["worker2"]
    assert (worker2.failed, worker2.last_failure, worker2.recovered_after) == (1, 2.5, None)


def test_report_window_is_relative_to_since(load_client, mixed):
    head = load_client.report(mixed, since=1.5)["head"]
    assert (head.total, head.failed) == (3, 1)
    assert head.outcomes == {"refused": 1, "ok": 2}
    assert head.last_failure == 0.5
    assert head.recovered_after == 1.5

    head = load_client.report(mixed, until=2.0)["head"]
    assert (head.total, head.failed, head.recovered_after) == (3, 2, None)

    late = load_client.report(mixed, since=10.0)
    assert (late["head"].total, late["head"].recovered_after) == (0, None)


def test_describe(load_client, mixed):
    assert load_client.describe(load_client.report(mixed)) == (
        "head: 5 requests, 2 failed {'ok': 3, 'http 503': 1, 'refused': 1}, "
        "serving for good after 3.0 s, slowest 0.0 s\n"
        "worker1: 2 requests, 0 failed {'ok': 2}, serving for good after 0.0 s, slowest 0.0 s\n"
        "worker2: 2 requests, 1 failed {'ok': 1, 'reset': 1}, serving for good after never, "
        "slowest 0.0 s"
    )


class OkThenUnavailable:
    """Answers the first OK_COUNT posts with 200, every later one with 503."""

    def __init__(self, ok_count: int):
        self.posts: list[tuple[str, bytes, str]] = []
        lock = threading.Lock()
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    server_self.posts.append((self.path, body, self.headers["Content-Type"]))
                    status = 200 if len(server_self.posts) <= ok_count else 503
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = LocalHTTPServer(Handler)
        self.url = f"http://127.0.0.1:{self.http.port}/score"

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def server():
    srv = OkThenUnavailable(ok_count=5)
    yield srv
    srv.close()


def ends_by_itself(client, within: float) -> bool:
    """Whether every thread of CLIENT ended within WITHIN seconds, without stop()."""
    for thread in client._threads:
        thread.join(within)
    return not any(thread.is_alive() for thread in client._threads)


def test_stops_by_itself_at_max_requests(load_client, server):
    client = load_client.LoadClient({"head": server.url}, b'{"items": []}', max_requests=12)
    client.start()
    assert ends_by_itself(client, 10)
    assert [s.outcome for s in client.samples] == ["ok"] * 5 + ["http 503"] * 7
    assert [s.target for s in client.samples] == ["head"] * 12
    sent = [s.sent for s in client.samples]
    assert sent == sorted(sent)
    assert server.posts == [("/score", b'{"items": []}', "application/json")] * 12
    assert load_client.report(client.stop())["head"].failed == 7
    assert client.exhausted == "12 requests sent"
    with pytest.raises(AssertionError, match="stopped sending at its limit"):
        client.covered()


def test_stops_by_itself_at_max_seconds(load_client, server):
    client = load_client.LoadClient({"head": server.url}, b"{}", max_seconds=0.4)
    started = time.monotonic()
    client.start()
    assert ends_by_itself(client, 10)
    assert time.monotonic() - started < 2
    assert len(client.samples) > 5  # it did run, and was not stopped by the count
    # Checked after each answer: the last request may leave one pause (PAUSE_S) after 0.4 s.
    assert max(s.sent for s in client.samples) < 0.4 + 0.1
    assert len(server.posts) == len(client.samples)
    assert client.exhausted == "0.4 s gone by"
    with pytest.raises(AssertionError, match="before the test was done"):
        client.covered()


def test_closed_port_is_refused(load_client, closed_port):
    url = f"http://127.0.0.1:{closed_port}/score"
    with load_client.LoadClient({"worker1": url}, b"{}", max_requests=3) as client:
        assert ends_by_itself(client, 10)
    assert [s.outcome for s in client.samples] == ["refused"] * 3


def test_an_answer_cut_short_is_a_reset(load_client):
    """A peer that closes the connection in the middle of its answer (a node whose Ray dies
    with the request in flight) is a reset, as one that closes before answering."""

    class CutShort(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"scores"')
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    http = LocalHTTPServer(CutShort)
    try:
        url = f"http://127.0.0.1:{http.port}/score"
        with load_client.LoadClient({"head": url}, b"{}", max_requests=2) as client:
            assert ends_by_itself(client, 10)
    finally:
        http.close()
    assert [s.outcome for s in client.samples] == ["reset"] * 2


def test_stop_ends_a_running_client(load_client, server):
    client = load_client.LoadClient({"head": server.url}, b"{}").start()
    time.sleep(0.1)
    got = client.stop()
    assert not any(thread.is_alive() for thread in client._threads)
    count = len(server.posts)
    time.sleep(0.1)
    assert len(server.posts) == count == len(got)
    client.covered()  # stopped by the test, not by a limit: it saw all it was asked to


def test_report_gives_the_slowest_request_within_the_window(load_client):
    spec = [("head", 0.0, "ok", 0.1), ("head", 1.0, "ok", 12.5), ("head", 2.0, "timeout", 30.0)]
    mine = [load_client.Sample(*item) for item in spec]
    assert load_client.report(mine, until=1.5)["head"].slowest == 12.5
    assert load_client.report(mine)["head"].slowest == 30.0
    assert "slowest 30.0 s" in load_client.describe(load_client.report(mine))


def test_client_records_how_long_each_request_took(load_client):
    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(0.2)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    http = LocalHTTPServer(Slow)
    try:
        url = f"http://127.0.0.1:{http.port}/score"
        client = load_client.LoadClient({"slow": url}, b"{}", max_requests=2).start()
        assert ends_by_itself(client, within=10)
    finally:
        http.close()
    assert [s.outcome for s in client.samples] == ["ok", "ok"]
    assert all(0.2 <= s.took < 5 for s in client.samples), client.samples


def test_https_target_is_verified_against_the_given_ca(load_client, tmp_path):
    """An https:// target answers over TLS when its certificate is in CAFILE (a self-signed
    certificate for 127.0.0.1, made by openssl here); without it every request is "tls"."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    class Ok(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    http = LocalHTTPServer(Ok)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    http.server.socket = context.wrap_socket(http.server.socket, server_side=True)
    try:
        url = f"https://127.0.0.1:{http.port}/score"
        trusted = load_client.LoadClient({"lb": url}, b"{}", max_requests=2, cafile=str(cert))
        trusted.start()
        assert ends_by_itself(trusted, within=10)
        stranger = load_client.LoadClient({"lb": url}, b"{}", max_requests=2).start()
        assert ends_by_itself(stranger, within=10)
    finally:
        http.close()
    assert [s.outcome for s in trusted.samples] == ["ok", "ok"]
    assert [s.outcome for s in stranger.samples] == ["tls", "tls"]
