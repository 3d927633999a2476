"""The liveness watchdog (roles/ray/files/rayforge_liveness.py), without systemd or Ray.

Proves: the unit's state is read from `systemctl show`; the watchdog restarts the Ray unit only
after --failures probes in a row fail (a refused or 503 agent), and never while the unit is not
active, within --start-grace of its start, or while a hold newer than that start exists (a
stale hold counts for nothing); an answer in between resets the count; --check gives the
playbook the same verdict; --clear-ports stops the owner's leftover on a node port and fails,
naming the process and the port, for anyone else's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from unit_support import Answer

HEALTHZ = "/api/healthz"


def test_unit_state_is_read_from_systemctl_show(liveness):
    text = "ActiveState=active\nActiveEnterTimestampMonotonic=5000000\n"
    assert liveness.parse_unit_state(text, now_monotonic=65.0) == liveness.UnitState(
        "active", 60.0, 5000000
    )
    stopped = "ActiveState=deactivating\nActiveEnterTimestampMonotonic=5000000\n"
    assert liveness.parse_unit_state(stopped, 65.0) == liveness.UnitState("deactivating", 0.0)
    assert liveness.parse_unit_state("ActiveState=inactive\n", 65.0).active_for == 0.0


@pytest.fixture
def watchdog(liveness, dashboard_stub, monkeypatch, tmp_path):
    """A Watchdog on the stub's agent; the unit's state is STATE["unit"], restarts are recorded."""
    state = {"unit": liveness.UnitState("active", 600.0, 1), "restarts": []}
    monkeypatch.setattr(liveness, "unit_state", lambda unit: state["unit"])
    monkeypatch.setattr(liveness, "restart_unit", lambda unit: state["restarts"].append(unit))

    def make(*extra: str):
        argv = [
            "--unit=ray-worker.service",
            f"--agent-url={dashboard_stub.url}",
            "--failures=3",
            "--timeout=2",
            "--interval=0.01",
            "--start-grace=60",
            f"--hold={tmp_path / 'hold'}",
            f"--state={tmp_path / 'state'}",
            *extra,
        ]
        return liveness.Watchdog(liveness.parse_args(argv))

    make.state = state
    make.hold = tmp_path / "hold"
    return make


def test_restarts_the_unit_after_failures_in_a_row_only(watchdog, dashboard_stub, capsys):
    dashboard_stub.answer(HEALTHZ, Answer(503, "raylet: Local Raylet failed"))
    dog = watchdog()
    assert [dog.step(), dog.step()] == ["failing", "failing"]
    assert watchdog.state["restarts"] == []
    assert dog.step() == "restarted"
    assert watchdog.state["restarts"] == ["ray-worker.service"]
    out = capsys.readouterr().out
    assert "Ray does not answer (1 of 3)" in out
    assert "restarting ray-worker.service" in out
    # The count starts again after a restart.
    assert dog.step() == "failing"


def test_an_answer_in_between_resets_the_count(watchdog, dashboard_stub):
    dog = watchdog()
    dashboard_stub.answer(HEALTHZ, Answer(503, "down"), Answer(503, "down"), Answer(200, "ok"))
    assert [dog.step(), dog.step(), dog.step()] == ["failing", "failing", "alive"]
    dashboard_stub.answer(HEALTHZ, Answer(503, "down"))
    assert [dog.step(), dog.step()] == ["failing", "failing"]
    assert watchdog.state["restarts"] == []


def test_a_refused_agent_counts_as_a_failure(liveness, watchdog, closed_port):
    dog = liveness.Watchdog(
        liveness.parse_args(
            [
                "--unit=ray-head.service",
                f"--agent-url=http://127.0.0.1:{closed_port}",
                "--failures=1",
                "--timeout=2",
            ]
        )
    )
    assert dog.step() == "restarted"
    assert watchdog.state["restarts"] == ["ray-head.service"]


@pytest.mark.parametrize(
    "unit",
    [("deactivating", 0.0), ("inactive", 0.0), ("activating", 0.0), ("failed", 0.0)],
    ids=["stopping", "stopped", "starting", "failed"],
)
def test_never_acts_on_a_unit_that_is_not_active(liveness, watchdog, dashboard_stub, unit):
    dashboard_stub.answer(HEALTHZ, Answer(503, "down"))
    watchdog.state["unit"] = liveness.UnitState(*unit)
    dog = watchdog()
    assert {dog.step() for _ in range(5)} == {"idle"}
    assert watchdog.state["restarts"] == []
    assert not [c for c in dashboard_stub.calls() if c[1] == HEALTHZ]  # not even asked


def test_a_starting_unit_is_left_alone_until_its_ray_first_answers(
    liveness, watchdog, dashboard_stub
):
    """Within --start-grace of the unit's start, failures count only once Ray has answered
    in this start: a node whose Ray dies right after a restart is not left for the grace."""
    watchdog.state["unit"] = liveness.UnitState("active", 10.0, 111)
    dashboard_stub.answer(HEALTHZ, Answer(503, "starting"))
    dog = watchdog()
    assert {dog.step() for _ in range(5)} == {"idle"}  # Ray still starting
    dashboard_stub.answer(HEALTHZ, Answer(200, "success"))
    assert dog.step() == "alive"
    dashboard_stub.answer(HEALTHZ, Answer(503, "raylet: Local Raylet failed"))
    assert [dog.step(), dog.step(), dog.step()] == ["failing", "failing", "restarted"]
    # The next start is starting again: what answered in the last one counts for nothing.
    watchdog.state["unit"] = liveness.UnitState("active", 5.0, 222)
    assert {dog.step() for _ in range(5)} == {"idle"}
    assert watchdog.state["restarts"] == ["ray-worker.service"]


def test_check_knows_a_start_is_over_from_what_the_watchdog_kept(
    liveness, watchdog, dashboard_stub
):
    """--check has no memory of its own: within --start-grace, a failing Ray counts as dead
    only when the watchdog (--state) saw it answer in this same start."""
    watchdog.state["unit"] = liveness.UnitState("active", 20.0, 333)
    dashboard_stub.answer(HEALTHZ, Answer(503, "down"))
    assert watchdog().check() == liveness.ALIVE  # starting, as far as anyone knows
    dashboard_stub.answer(HEALTHZ, Answer(200, "success"))
    assert watchdog().step() == "alive"  # the watchdog sees it answer, and keeps the start
    dashboard_stub.answer(HEALTHZ, Answer(503, "down"))
    assert watchdog().check() == liveness.DEAD
    watchdog.state["unit"] = liveness.UnitState("active", 20.0, 444)  # restarted since
    assert watchdog().check() == liveness.ALIVE


def test_a_hold_newer_than_the_start_stops_it_and_a_stale_one_does_not(
    liveness, watchdog, dashboard_stub
):
    dashboard_stub.answer(HEALTHZ, Answer(503, "drained: the raylet exited"))
    watchdog.hold.touch()  # written now: the unit started 600 s ago
    dog = watchdog("--failures=1")
    assert dog.step() == "idle"
    assert watchdog.state["restarts"] == []
    stale = time.time() - 3600  # written before the unit's last start
    os.utime(watchdog.hold, (stale, stale))
    assert dog.step() == "restarted"


def test_check_gives_the_playbook_the_same_verdict(liveness, watchdog, dashboard_stub, capsys):
    dashboard_stub.answer(HEALTHZ, Answer(503, "raylet: Local Raylet failed"))
    assert watchdog().check() == liveness.DEAD
    assert "is active but its Ray does not answer" in capsys.readouterr().out
    assert len([c for c in dashboard_stub.calls() if c[1] == HEALTHZ]) == 3
    dashboard_stub.answer(HEALTHZ, Answer(503, "slow"), Answer(200, "ok"))
    assert watchdog().check() == liveness.ALIVE
    dashboard_stub.answer(HEALTHZ, Answer(503, "down"))
    watchdog.state["unit"] = liveness.UnitState("active", 10.0, 555)
    assert watchdog().check() == liveness.ALIVE  # just (re)started: left alone
    assert watchdog.state["restarts"] == []  # --check never restarts by itself


def test_bad_arguments_exit_2(liveness):
    with pytest.raises(SystemExit) as exit_info:
        liveness.parse_args(["--unit=x.service"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        liveness.parse_args(["--unit=x", "--agent-url=http://h:1", "--failures=0"])


@pytest.fixture
def listener():
    """A child process listening on a free port of 127.0.0.1 (as this test's user), killed
    after the test if it is still there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import socket,time\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1',{port})); s.listen(); print('up', flush=True); time.sleep(120)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "up"
    yield port, child
    child.kill()
    child.wait(5)


def test_clear_ports_names_a_stranger_and_stops_the_owners_leftover(liveness, listener, capsys):
    port, child = listener
    me = __import__("pwd").getpwuid(os.getuid()).pw_name
    held = liveness.holders({port})
    assert [(pid, p) for pid, _, _, p in held] == [(child.pid, port)]
    # Held by someone who is not the owner: the start must fail, naming both.
    assert liveness.clear_ports({port}, owner="nobody", wait_s=1) == 1
    out = capsys.readouterr().out
    assert f"port {port} is held by python" in out
    assert f"pid {child.pid}" in out
    assert child.poll() is None  # left alone
    # The owner's leftover is stopped and the port is free again.
    assert liveness.clear_ports({port}, owner=me, wait_s=5) == 0
    assert child.wait(5) is not None
    assert "a leftover python" in capsys.readouterr().out
    assert liveness.holders({port}) == []
