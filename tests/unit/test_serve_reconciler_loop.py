"""The Serve reconciler's loop (roles/ray_serve/files/rayforge_serve_reconciler.py,
``Reconciler.run()``), with step() scripted and no real sleep.

Proves: after each failed step the wait doubles from 2 x --interval up to --max-backoff and
stays there; a step that is ok or waiting waits --interval and starts the doubling again from
the beginning; a DashboardError, OSError or ValueError out of step() is logged as "cannot
reconcile now: <error>" and counts as a failed step (the loop goes on); any other exception
is not swallowed; with --once, run() returns after one step whatever it gave, without
sleeping. With the real step(): a config file that is not JSON and a dashboard that does not
answer back off the same way. With --metrics-file, every poll writes the counters (from 0),
the last poll's state and time, parsed back with prometheus_client's parser; a missing
textfile directory is said once and changes nothing else.

step() itself is proved in test_serve_reconciler.py; here it is replaced on the instance by a
script of outcomes ("ok", "waiting", "failed", or an exception to raise), and the module's
``time`` by a fake whose sleep() records each wait and ends the loop (with a private
exception that run() cannot catch) once every scripted step has had its wait.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from unit_support import read_textfile

OK, WAITING, FAILED = "ok", "waiting", "failed"


class EndOfScript(BaseException):
    """Raised by the fake sleep() to leave run()'s endless loop (a BaseException: no except
    clause of the product catches it)."""


def make_loop(reconciler, monkeypatch, tmp_path, script, *extra: str):
    """A Reconciler with EXTRA arguments whose step() answers SCRIPT in order (an exception
    instance is raised); returns (reconciler, waits, steps): the seconds of each sleep, and
    one entry per step taken. The fake sleep ends run() once there have been as many sleeps
    as SCRIPT has steps; a step more than scripted fails the test."""
    argv = [
        "--dashboard-url",
        "http://127.0.0.1:9",  # never asked: step() is scripted
        "--config",
        str(tmp_path / "serve_config.last_good.json"),
        "--lock",
        str(tmp_path / "serve-deploy.lock"),
        *extra,
    ]
    rec = reconciler.Reconciler(reconciler.parse_args(argv))
    outcomes = list(script)
    waits: list[float] = []
    steps: list[int] = []

    def step() -> str:
        assert len(steps) < len(outcomes), "a step more than scripted"
        outcome = outcomes[len(steps)]
        steps.append(1)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    class FakeTime:
        @staticmethod
        def sleep(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == len(outcomes):
                raise EndOfScript

    monkeypatch.setattr(rec, "step", step)
    monkeypatch.setattr(reconciler, "time", FakeTime)
    return rec, waits, steps


def run_script(reconciler, monkeypatch, tmp_path, script, *extra: str) -> list[float]:
    """run() through SCRIPT (one sleep after each step); the waits, in seconds."""
    rec, waits, steps = make_loop(reconciler, monkeypatch, tmp_path, script, *extra)
    with pytest.raises(EndOfScript):
        rec.run()
    assert len(steps) == len(script)
    return waits


# --- Back-off --------------------------------------------------------------------------------


def test_failed_steps_double_the_wait_up_to_max_backoff(reconciler, monkeypatch, tmp_path):
    """Interval 10, max-backoff 300: the waits after failed steps are 20, 40, 80, 160, then
    300 (not 320) and 300 again for as long as steps fail."""
    waits = run_script(
        reconciler,
        monkeypatch,
        tmp_path,
        [FAILED] * 7,
        "--interval",
        "10",
        "--max-backoff",
        "300",
    )
    assert waits == [20, 40, 80, 160, 300, 300, 300]


@pytest.mark.parametrize(
    ("interval", "max_backoff", "expected"),
    [
        ("10", "50", [20, 40, 50, 50]),
        ("10", "15", [15, 15, 15, 15]),
        ("0.5", "300", [1, 2, 4, 8]),
    ],
)
def test_max_backoff_caps_every_wait(
    reconciler, monkeypatch, tmp_path, interval, max_backoff, expected
):
    """--max-backoff is the longest wait, whatever the interval and the number of failures."""
    waits = run_script(
        reconciler,
        monkeypatch,
        tmp_path,
        [FAILED] * 4,
        "--interval",
        interval,
        "--max-backoff",
        max_backoff,
    )
    assert waits == expected


def test_a_success_waits_the_interval_and_resets_the_backoff(reconciler, monkeypatch, tmp_path):
    """Failed, failed, failed: 20, 40, 80; then ok: 10; the next failure starts again at 20,
    not where the doubling had got to."""
    waits = run_script(
        reconciler,
        monkeypatch,
        tmp_path,
        [FAILED, FAILED, FAILED, OK, FAILED, FAILED, OK, OK],
        "--interval",
        "10",
        "--max-backoff",
        "300",
    )
    assert waits == [20, 40, 80, 10, 20, 40, 10, 10]


def test_waiting_is_not_a_failure(reconciler, monkeypatch, tmp_path):
    """A waiting step (a difference not yet settled, or a deploy holding the lock) is a
    normal poll: --interval, and the doubling starts again after it."""
    waits = run_script(
        reconciler,
        monkeypatch,
        tmp_path,
        [WAITING, FAILED, FAILED, WAITING, FAILED],
        "--interval",
        "10",
        "--max-backoff",
        "300",
    )
    assert waits == [10, 20, 40, 10, 20]


def test_the_defaults_are_10_s_and_300_s(reconciler, monkeypatch, tmp_path):
    """Without --interval and --max-backoff (the systemd unit passes no --max-backoff)."""
    waits = run_script(reconciler, monkeypatch, tmp_path, [OK, *[FAILED] * 6, OK])
    assert waits == [10, 20, 40, 80, 160, 300, 300, 10]


# --- Errors ----------------------------------------------------------------------------------


def test_dashboard_os_and_value_errors_are_logged_and_back_off(
    reconciler, ray_dashboard, monkeypatch, tmp_path, capsys
):
    """Each of DashboardError, OSError and ValueError out of step() is logged as "cannot
    reconcile now: <error>" and counts as a failed step: the waits double as for "failed",
    the loop goes on, and a success afterwards resets them."""
    errors = [
        ray_dashboard.DashboardError(
            "GET /api/serve/applications/: HTTP 503 Service Unavailable: ", 503
        ),
        PermissionError(13, "Permission denied", "/var/lib/ray/serve-deploy.lock"),
        ValueError("Expecting value: line 1 column 1 (char 0)"),
    ]
    waits = run_script(
        reconciler,
        monkeypatch,
        tmp_path,
        [*errors, FAILED, OK, errors[0]],
        "--interval",
        "10",
        "--max-backoff",
        "300",
    )
    assert waits == [20, 40, 80, 160, 10, 20]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("watching Serve at http://127.0.0.1:9 against ")
    assert out[1:] == [
        "cannot reconcile now: GET /api/serve/applications/: HTTP 503 Service Unavailable: ",
        "cannot reconcile now: [Errno 13] Permission denied: '/var/lib/ray/serve-deploy.lock'",
        "cannot reconcile now: Expecting value: line 1 column 1 (char 0)",
        "cannot reconcile now: GET /api/serve/applications/: HTTP 503 Service Unavailable: ",
    ]


def test_other_exceptions_are_not_swallowed(reconciler, monkeypatch, tmp_path, capsys):
    """An error the loop does not expect (a bug) ends run() with its traceback, for systemd
    to restart the service, rather than being retried as "cannot reconcile now" forever."""
    rec, waits, _ = make_loop(reconciler, monkeypatch, tmp_path, [FAILED, KeyError("name")])
    with pytest.raises(KeyError):
        rec.run()
    assert waits == [20]
    assert "cannot reconcile now" not in capsys.readouterr().out


def test_real_step_errors_back_off(reconciler, monkeypatch, tmp_path, closed_port, capsys):
    """With the real step(): a config file that is not JSON (ValueError) and then a dashboard
    that does not answer (DashboardError) are each "cannot reconcile now", with the back-off
    of failed steps."""
    config = tmp_path / "serve_config.last_good.json"
    config.write_text("{", encoding="utf-8")
    waits: list[float] = []

    class FakeTime:
        @staticmethod
        def sleep(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 1:
                config.write_text(json.dumps({"applications": []}), encoding="utf-8")
            if len(waits) == 3:
                raise EndOfScript

    argv = [
        "--dashboard-url",
        f"http://127.0.0.1:{closed_port}",
        "--config",
        str(config),
        "--lock",
        str(tmp_path / "serve-deploy.lock"),
        "--interval",
        "10",
    ]
    rec = reconciler.Reconciler(reconciler.parse_args(argv))
    monkeypatch.setattr(reconciler, "time", FakeTime)
    with pytest.raises(EndOfScript):
        rec.run()
    assert waits == [20, 40, 80]
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("cannot reconcile now: Expecting ")
    no_answer = (
        "cannot reconcile now: GET /api/serve/applications/: "
        f"no answer from http://127.0.0.1:{closed_port}"
    )
    assert out[2].startswith(no_answer)
    assert out[3].startswith(no_answer)
    assert len(out) == 4


# --- --once ----------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [OK, WAITING, FAILED, "DashboardError", "OSError"])
def test_once_returns_after_one_step_without_sleeping(
    reconciler, ray_dashboard, monkeypatch, tmp_path, capsys, outcome
):
    """--once: one step, then run() returns (None), whatever the step gave, an error
    included (logged); it never sleeps."""
    error = {
        "DashboardError": ray_dashboard.DashboardError("GET /api/serve/applications/: down"),
        "OSError": OSError("disk gone"),
    }.get(outcome)
    script = [error or outcome, OK]  # a second step would be a step too many
    rec, waits, steps = make_loop(reconciler, monkeypatch, tmp_path, script, "--once")
    assert rec.run() is None
    assert len(steps) == 1
    assert waits == []
    if error is not None:
        assert f"cannot reconcile now: {error}" in capsys.readouterr().out


def test_a_long_run_of_failures_stays_at_the_cap(reconciler, ray_dashboard):
    """Failures counted past what the cap needs would overflow 2**n (a float) after about
    1,000 in a row and crash the loop: the count stops growing."""
    args = reconciler.parse_args(
        ["--dashboard-url=http://127.0.0.1:9", "--config=/nonexistent", "--lock=/tmp/x"]
    )
    rec = reconciler.Reconciler(args)
    rec.failures = 5000
    waits = []

    class Stop(Exception):
        pass

    def step():
        return "failed"

    def sleep(seconds):
        waits.append(seconds)
        raise Stop

    rec.step = step
    original = reconciler.time.sleep
    reconciler.time.sleep = sleep
    try:
        with pytest.raises(Stop):
            rec.run()
    finally:
        reconciler.time.sleep = original
    assert waits == [args.max_backoff]


@pytest.mark.parametrize("backoff", ["0", "-1", "5"])
def test_max_backoff_below_the_interval_is_refused(reconciler, backoff):
    argv = ["--dashboard-url=http://h:1", "--config=/c", "--lock=/l", "--interval=10"]
    with pytest.raises(SystemExit) as exit_info:
        reconciler.parse_args([*argv, f"--max-backoff={backoff}"])
    assert exit_info.value.code == 2


# --- Metrics ---------------------------------------------------------------------------------


def test_metrics_are_written_after_every_poll(reconciler, ray_dashboard, monkeypatch, tmp_path):
    """Every series from the first poll (the counters at 0); failed polls counted, an error
    out of step() included; the state of the last poll, and its time."""
    prom = tmp_path / "rayforge_serve_reconciler.prom"
    seen = []
    error = ray_dashboard.DashboardError("GET /api/serve/applications/: HTTP 503", 503)
    rec, _, steps = make_loop(
        reconciler, monkeypatch, tmp_path, [OK, FAILED, error, WAITING], "--metrics-file", str(prom)
    )
    monkeypatch.setattr(reconciler.time, "time", lambda: 1_700_000_000.0 + len(steps), False)
    real_write = reconciler.write_text_atomic

    def write(path, text, mode):
        real_write(path, text, mode)
        seen.append(read_textfile(prom))

    monkeypatch.setattr(reconciler, "write_text_atomic", write)
    old_umask = os.umask(0o027)  # the unit's (ray_systemd_hardening)
    try:
        with pytest.raises(EndOfScript):
            rec.run()
    finally:
        os.umask(old_umask)
    assert len(seen) == 4
    first, last = seen[0], seen[-1]
    actions = {(("action", "anchor"),): 0, (("action", "reapply"),): 0}
    assert first["rayforge_serve_reconciler_actions_total"] == actions
    assert first["rayforge_serve_reconciler_failures_total"] == {(): 0}
    assert first["rayforge_serve_reconciler_state"] == {
        (("state", "failed"),): 0,
        (("state", "ok"),): 1,
        (("state", "waiting"),): 0,
    }
    assert [s["rayforge_serve_reconciler_failures_total"][()] for s in seen] == [0, 1, 2, 2]
    assert last["rayforge_serve_reconciler_state"][(("state", "waiting"),)] == 1
    assert last["rayforge_serve_reconciler_last_poll_timestamp_seconds"] == {(): 1_700_000_004.0}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".prom"] == [prom.name]
    assert [p.name for p in tmp_path.iterdir() if prom.name in p.name] == [prom.name]
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644  # the node exporter is another user


def test_metrics_directory_missing_is_said_once(reconciler, monkeypatch, tmp_path, capsys):
    prom = tmp_path / "absent" / "rayforge_serve_reconciler.prom"
    rec, waits, _ = make_loop(
        reconciler, monkeypatch, tmp_path, [OK, FAILED, OK], "--metrics-file", str(prom)
    )
    monkeypatch.setattr(reconciler.time, "time", lambda: 1_700_000_000.0, False)
    with pytest.raises(EndOfScript):
        rec.run()
    assert waits == [10, 20, 10]  # the loop went on as without metrics
    out = capsys.readouterr().out.splitlines()
    problems = [line for line in out if line.startswith("cannot write metrics")]
    assert len(problems) == 1, out
    assert str(prom) in problems[0]
    assert not prom.parent.exists()
