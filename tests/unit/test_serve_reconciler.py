"""The Serve reconciler (roles/ray_serve/files/rayforge_serve_reconciler.py), one step() at a
time, against the recorded dashboard.

Proves: when Serve does not run the last good config for --settle polls in a row (the recorded
shut-down Serve, or a config deployed by hand), the reconciler PUTs the last good config and
reports ok once it is healthy; before --settle polls it only waits and sends no PUT; a
difference that goes away resets the count; while someone else holds the deploy lock it never
acts; with no last good config it sends no request at all; a re-apply that does not become
healthy reports failed; it sends the cluster token of --token-file. Each re-apply it makes is
counted once, by what it was for (rayforge_serve_reconciler_actions_total).
"""

from __future__ import annotations

import pytest
from unit_support import (
    API,
    lab_config,
    new_build_config,
    read_textfile,
    recorded,
    scaled_config,
)


@pytest.fixture
def make_reconciler(reconciler, ray_dashboard, dashboard_stub, tmp_path):
    config = tmp_path / "serve_config.last_good.json"
    lock = tmp_path / "serve-deploy.lock"

    def make(*extra: str, last_good: dict | None = None):
        if last_good is not None:
            ray_dashboard.write_json_atomic(str(config), last_good)
        argv = [
            "--dashboard-url",
            dashboard_stub.url,
            "--config",
            str(config),
            "--lock",
            str(lock),
            "--settle",
            "3",
            "--deploy-timeout",
            "5",
            *extra,
        ]
        return reconciler.Reconciler(reconciler.parse_args(argv))

    make.lock = str(lock)
    return make


@pytest.mark.parametrize("found", ["serve_shut_down", "another config by hand"])
def test_re_applies_the_last_good_config_after_settle_polls(
    make_reconciler, dashboard_stub, capsys, found
):
    answer = recorded(found) if found == "serve_shut_down" else recorded("serve_running_healthy")
    last_good = new_build_config() if found != "serve_shut_down" else lab_config()
    dashboard_stub.serve(answer)
    rec = make_reconciler(last_good=last_good)

    assert rec.step() == "waiting"
    assert rec.step() == "waiting"
    assert dashboard_stub.calls() == [("GET", API)] * 2  # fewer than --settle polls: no PUT

    assert rec.step() == "ok"
    assert dashboard_stub.bodies("PUT") == [last_good]
    # The third poll, a fresh read under the lock, the PUT, then polls until healthy.
    assert dashboard_stub.calls() == [("GET", API)] * 4 + [("PUT", API), ("GET", API)]
    out = capsys.readouterr().out
    assert "poll 1 of 3 before acting" in out
    assert "poll 2 of 3 before acting" in out
    assert "re-applying" in out
    assert "re-applied: every application is healthy" in out

    # Serve runs it now: the next poll is ok and sends nothing but a GET.
    assert rec.step() == "ok"
    assert dashboard_stub.methods()[-1] == "GET"
    assert dashboard_stub.bodies("PUT") == [last_good]
    assert rec.actions == {"reapply": 1, "anchor": 0}  # one re-apply, counted once


def test_difference_must_last_settle_polls_in_a_row(make_reconciler, dashboard_stub):
    rec = make_reconciler(last_good=lab_config())
    dashboard_stub.serve(recorded("serve_shut_down"))
    assert [rec.step(), rec.step()] == ["waiting", "waiting"]
    dashboard_stub.serve(recorded("serve_running_healthy"))  # Serve recovered by itself
    assert rec.step() == "ok"
    dashboard_stub.serve(recorded("serve_shut_down"))
    assert [rec.step(), rec.step()] == ["waiting", "waiting"]
    assert "PUT" not in dashboard_stub.methods()


def test_lock_held_by_a_deploy_means_waiting_and_no_put(
    make_reconciler, ray_dashboard, dashboard_stub, capsys
):
    rec = make_reconciler(last_good=lab_config())
    dashboard_stub.serve(recorded("serve_shut_down"))
    assert [rec.step(), rec.step()] == ["waiting", "waiting"]
    with ray_dashboard.deploy_lock(make_reconciler.lock, wait_s=0) as held:
        assert held
        assert rec.step() == "waiting"
        assert rec.step() == "waiting"  # the count started again: poll 1 of 3
    assert "PUT" not in dashboard_stub.methods()
    out = capsys.readouterr().out
    assert out.count("a deploy holds the lock: leaving Serve to it") == 1
    assert out.count("poll 1 of 3 before acting") == 2


def test_no_config_file_is_ok_without_a_request(make_reconciler, dashboard_stub):
    dashboard_stub.serve(recorded("serve_shut_down"))
    rec = make_reconciler()
    assert [rec.step() for _ in range(4)] == ["ok"] * 4
    assert dashboard_stub.requests == []


def test_re_apply_that_does_not_become_healthy_fails(make_reconciler, dashboard_stub, capsys):
    last_good = scaled_config(64)  # healthy once, unschedulable now (a node is gone)
    dashboard_stub.serve(recorded("serve_shut_down"))
    dashboard_stub.after_put(last_good, recorded("serve_unschedulable_after_25s"))
    rec = make_reconciler("--settle", "1", "--deploy-timeout", "0.3", last_good=last_good)
    assert rec.step() == "failed"
    assert dashboard_stub.bodies("PUT") == [last_good]
    assert "re-applied, but not healthy: not healthy after 0.3 s" in capsys.readouterr().out


def test_token_file_is_sent(make_reconciler, dashboard_stub, tmp_path):
    token = tmp_path / "auth_token"
    token.write_text("s3cret\n")
    dashboard_stub.token = "s3cret"
    dashboard_stub.serve(recorded("serve_running_healthy"))
    rec = make_reconciler("--token-file", str(token), last_good=lab_config())
    assert rec.step() == "ok"
    assert [r.headers["authorization"] for r in dashboard_stub.requests] == ["Bearer s3cret"]


@pytest.mark.parametrize(
    "bad", [["--interval", "0"], ["--settle", "0"], ["--deploy-timeout", "-1"]]
)
def test_bad_arguments_exit_2(reconciler, bad):
    argv = ["--dashboard-url", "http://x", "--config", "c", "--lock", "l", *bad]
    with pytest.raises(SystemExit) as exited:
        reconciler.parse_args(argv)
    assert exited.value.code == 2


def test_checks_are_exported_as_the_deploy_gate_judges_them(
    make_reconciler, dashboard_stub, tmp_path
):
    """rayforge_check_passing and rayforge_application_ready follow serve_problems(), the
    deploy gate's own definition, on Serve's state at each poll; not judged, no series."""
    prom = tmp_path / "reconciler.prom"
    dashboard_stub.serve(recorded("serve_running_healthy"))
    rec = make_reconciler("--metrics-file", str(prom), last_good=lab_config())
    assert rec.step() == "ok"
    rec.metrics.write("ok")
    got = read_textfile(prom)
    assert got["rayforge_check_passing"] == {
        (("check", "applications_deployed"),): 1.0,
        (("check", "applications_running"),): 1.0,
        (("check", "serve_running"),): 1.0,
    }
    apps = [a["name"] for a in lab_config()["applications"]]
    assert {k[0][1]: v for k, v in got["rayforge_application_ready"].items()} == dict.fromkeys(
        apps, 1.0
    )

    dashboard_stub.serve(recorded("serve_shut_down"))
    assert rec.step() == "waiting"
    rec.metrics.write("waiting")
    got = read_textfile(prom)
    assert got["rayforge_check_passing"][(("check", "serve_running"),)] == 0.0
    assert set(got["rayforge_application_ready"].values()) == {0.0}

    rec.problems = None  # a poll that could not read Serve
    rec.metrics.write("failed")
    assert "rayforge_check_passing" not in read_textfile(prom)
