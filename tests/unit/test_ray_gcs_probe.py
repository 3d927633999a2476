"""The ray_gcs_probe module (roles/ray/library/ray_gcs_probe.py), on real sockets of
127.0.0.1 (and ::1 where this machine has IPv6) with ephemeral ports.

Proves: /proc/net/tcp lines decode to the listening address and port (IPv4 and IPv6, host
byte order words), other states and ports are left out; a socket that listens on this machine
is listed and one that is only bound is not; the stand-in accepts the workers' probes (connect
and close) and keeps listening, ends at once when a connection sends "stop" and otherwise
after its seconds; it fails with the error's type and text when the address is taken; stop()
to a port nobody listens on fails; main() returns each mode's result, and fails on a port out
of range.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from unit_support import run_module

HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n"
)


@pytest.fixture
def probe(gcs_probe):
    return gcs_probe


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A socket listening on 127.0.0.1 on an ephemeral port."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


@pytest.fixture
def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound and released: free for the test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StandIn:
    """probe.stand_in() in a thread: its result, and how long it ran, once joined."""

    def __init__(self, probe, host: str, port: int, seconds: float):
        self.result: tuple[int, bool] | None = None
        self.error: OSError | None = None
        self.seconds = 0.0

        def run() -> None:
            start = time.monotonic()
            try:
                self.result = probe.stand_in(host, port, seconds)
            except OSError as err:
                self.error = err
            self.seconds = time.monotonic() - start

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 10) -> StandIn:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stand-in did not end"
        return self


def wait_listening(host: str, port: int, timeout: float = 5) -> None:
    """Returns once HOST:PORT accepts a connection (which it closes at once)."""
    end = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.02)


def test_proc_net_tcp_lines_decode_to_the_listening_addresses(probe):
    text = HEADER + (
        # 127.0.0.1:6379 listening (state 0A), its words in host (little-endian) byte order.
        "   0: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 1\n"
        # 10.0.0.2:6379, an established connection (01): not a listener.
        "   1: 0200000A:18EB 0300000A:D431 01 00000000:00000000 00:00000000 00000000  0 0 2\n"
        # 0.0.0.0:8265 listening, another port.
        "   2: 00000000:2049 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 3\n"
        # 0.0.0.0:6379 listening.
        "   3: 00000000:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 4\n"
    )
    assert probe.parse_listeners(text, socket.AF_INET, 6379) == ["127.0.0.1:6379", "0.0.0.0:6379"]
    assert probe.parse_listeners(text, socket.AF_INET, 8265) == ["0.0.0.0:8265"]
    assert probe.parse_listeners(text, socket.AF_INET, 1) == []
    assert probe.parse_listeners(HEADER, socket.AF_INET, 6379) == []


def test_proc_net_tcp6_lines_decode_to_ipv6_addresses(probe):
    text = HEADER + (
        "   0: 00000000000000000000000001000000:18EB 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000  0 0 1\n"
        "   1: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000  0 0 2\n"
    )
    assert probe.parse_listeners(text, socket.AF_INET6, 6379) == ["::1:6379", ":::6379"]


def test_a_listening_socket_is_listed_a_bound_one_is_not(probe, listening):
    port = listening.getsockname()[1]
    assert f"127.0.0.1:{port}" in probe.listeners(port)
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        assert probe.listeners(bound.getsockname()[1]) == []


def test_unreadable_tables_are_skipped(probe, listening, tmp_path: Path):
    port = listening.getsockname()[1]
    tables = ((str(tmp_path / "missing"), socket.AF_INET6), ("/proc/net/tcp", socket.AF_INET))
    assert probe.listeners(port, tables) == [f"127.0.0.1:{port}"]


def test_stand_in_takes_probes_and_ends_on_stop(probe, free_port):
    stand_in = StandIn(probe, "127.0.0.1", free_port, seconds=30)
    wait_listening("127.0.0.1", free_port)  # a probe: connect and close
    assert f"127.0.0.1:{free_port}" in probe.listeners(free_port)
    with socket.create_connection(("127.0.0.1", free_port), timeout=5):
        pass  # a second probe; the stand-in keeps listening
    probe.stop("127.0.0.1", free_port, 5)
    stand_in.join()
    assert stand_in.error is None
    assert stand_in.result == (3, True)
    assert stand_in.seconds < 10, "stop did not end the stand-in"
    assert probe.listeners(free_port) == []


def test_stand_in_ends_after_its_seconds(probe, free_port):
    stand_in = StandIn(probe, "127.0.0.1", free_port, seconds=0.6).join()
    assert stand_in.result == (0, False)
    assert 0.6 <= stand_in.seconds < 3


def test_stand_in_fails_on_a_taken_address(probe, listening):
    port = listening.getsockname()[1]
    stand_in = StandIn(probe, "127.0.0.1", port, seconds=5).join()
    assert stand_in.result is None
    assert isinstance(stand_in.error, OSError)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 in this Python")
def test_stand_in_listens_on_ipv6(probe):
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
            port = sock.getsockname()[1]
    except OSError:
        pytest.skip("no ::1 on this machine")
    stand_in = StandIn(probe, "::1", port, seconds=30)
    wait_listening("::1", port)
    probe.stop("::1", port, 5)
    assert stand_in.join().result == (2, True)


def test_stop_fails_where_nothing_listens(probe, free_port):
    with pytest.raises(ConnectionRefusedError):
        probe.stop("127.0.0.1", free_port, 5)


def test_main_listeners(probe, listening, capsys):
    port = listening.getsockname()[1]
    result = run_module(probe, {"mode": "listeners", "port": port}, capsys)
    assert result["rc"] == 0
    assert result["changed"] is False
    assert f"127.0.0.1:{port}" in result["listeners"]


def test_main_stand_in_and_stop(probe, free_port, capsys):
    done: dict = {}

    def stop_when_up() -> None:
        wait_listening("127.0.0.1", free_port)
        probe.stop("127.0.0.1", free_port, 5)
        done["stopped"] = True

    stopper = threading.Thread(target=stop_when_up, daemon=True)
    stopper.start()
    args = {"mode": "stand_in", "host": "127.0.0.1", "port": free_port, "seconds": 30}
    result = run_module(probe, args, capsys)
    stopper.join(10)
    assert done == {"stopped": True}
    assert result["rc"] == 0
    assert (result["accepted"], result["stopped"], result["changed"]) == (2, True, False)


def test_main_fails_with_the_error(probe, listening, free_port, capsys):
    port = listening.getsockname()[1]
    args = {"mode": "stand_in", "host": "127.0.0.1", "port": port, "seconds": 1}
    result = run_module(probe, args, capsys)
    assert result["rc"] == 1
    assert result["msg"].startswith("OSError: [Errno ")
    assert "in use" in result["msg"]
    result = run_module(probe, {"mode": "stop", "host": "127.0.0.1", "port": free_port}, capsys)
    assert result["rc"] == 1
    assert result["msg"].startswith("ConnectionRefusedError: ")
    result = run_module(probe, {"mode": "listeners", "port": 70000}, capsys)
    assert result["rc"] == 1
    assert result["msg"] == "port 70000 is not a TCP port (1 to 65535)"
