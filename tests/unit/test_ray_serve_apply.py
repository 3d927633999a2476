"""The ray_serve_apply module (roles/ray_serve/library/ray_serve_apply.py), run as Ansible runs
it (its main() with module arguments), against the recorded dashboard.

Proves, from the requests the dashboard received and the files left on disk: nothing is sent
when Serve already runs the config; a changed config is PUT whole, waited for until healthy
and kept as the last good one; check mode never PUTs nor writes; a deploy that never becomes
healthy within ``timeout`` (the recorded unschedulable one) is replaced by the last good
config, which serves again, and the task fails saying so; a DEPLOY_FAILED deploy (the
recorded failed import) fails at once with Serve's message; without rollback or a last good
file nothing is rolled back; state=absent shuts Serve down only when it runs; the lock file
is held for the whole deploy, so the reconciler cannot act meanwhile. A healthy deploy
writes metrics_path (the time, and the SHA-256 of the last good file's text), parsed back with
prometheus_client's parser; a run that deploys nothing leaves it, or writes it with the time
the last good config was kept when it is missing; a deploy that fails writes nothing; a missing
textfile directory is a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

import pytest
from unit_support import (
    API,
    broken_import_config,
    lab_config,
    new_build_config,
    read_textfile,
    recorded,
    run_module,
    scaled_config,
)

SERVE_TRACEBACK_END = "ModuleNotFoundError: No module named 'salience.no_such_module'"


@pytest.fixture
def paths(tmp_path):
    """Where the config, the last good config and the lock live on the 'host'."""
    return {
        "config_path": tmp_path / "serve_config.json",
        "last_good_path": tmp_path / "serve_config.last_good.json",
        "lock_path": tmp_path / "serve-deploy.lock",
    }


def write_config(path, config: dict) -> None:
    path.write_text(json.dumps(config), encoding="utf-8")


def module_args(stub, paths, config: dict | None = None, **extra) -> dict:
    if config is not None:
        write_config(paths["config_path"], config)
    args = {"dashboard_url": stub.url, "config_path": str(paths["config_path"])}
    args.update({k: str(v) if k.endswith("_path") else v for k, v in extra.items()})
    return args


def test_no_change_when_serve_runs_the_config(serve_apply, dashboard_stub, paths, capsys):
    dashboard_stub.serve(recorded("serve_running_healthy"))
    result = run_module(serve_apply, module_args(dashboard_stub, paths, lab_config()), capsys)
    assert result["rc"] == 0, result
    assert result["changed"] is False
    assert result["differences"] == []
    assert result["rolled_back"] is False
    assert "PUT" not in dashboard_stub.methods()
    assert set(dashboard_stub.calls()) == {("GET", API)}
    assert result["applications"]["seedcore-ml"]["deployments"]["SalienceScorer"] == {
        "status": "HEALTHY",
        "message": "",
        "target_replicas": 2,
        "running_replicas": 2,
        "nodes": ["172.19.0.3", "172.19.0.4"],
        "node_ids": [
            "74a718a8394cd83c5e5c42e44582c9f75d18810ddcbcd9bd6602ee66",
            "ad48b5a9f6105db364585939488d8d3c955ad36e927ddc497eacf907",
        ],
    }


def test_first_run_on_a_healthy_serve_records_the_last_good_config(
    serve_apply, dashboard_stub, paths, capsys
):
    dashboard_stub.serve(recorded("serve_running_healthy"))
    args = module_args(dashboard_stub, paths, lab_config(), last_good_path=paths["last_good_path"])
    first = run_module(serve_apply, args, capsys)
    assert (first["rc"], first["changed"], first["differences"]) == (0, True, [])
    assert json.loads(paths["last_good_path"].read_text()) == lab_config()

    second = run_module(serve_apply, args, capsys)
    assert (second["rc"], second["changed"]) == (0, False)
    assert "PUT" not in dashboard_stub.methods()


def test_change_is_put_waited_for_and_kept_as_last_good(serve_apply, dashboard_stub, paths, capsys):
    dashboard_stub.token = "s3cret"
    dashboard_stub.serve(recorded("serve_running_healthy"))
    desired = new_build_config()
    args = module_args(
        dashboard_stub,
        paths,
        desired,
        headers={"Authorization": "Bearer s3cret"},
        last_good_path=paths["last_good_path"],
        _ansible_diff=True,
    )
    result = run_module(serve_apply, args, capsys)
    assert result["rc"] == 0, result
    assert result["changed"] is True
    assert result["rolled_back"] is False
    assert result["differences"] == [
        "application rayforge-proxy-anchor changed",
        "application seedcore-ml changed",
    ]
    # Read, PUT the whole config once, then poll until healthy (the first poll already is).
    assert dashboard_stub.calls() == [("GET", API), ("PUT", API), ("GET", API)]
    assert dashboard_stub.bodies("PUT") == [desired]
    assert all(r.headers["authorization"] == "Bearer s3cret" for r in dashboard_stub.requests)
    assert json.loads(paths["last_good_path"].read_text()) == desired
    assert stat.S_IMODE(paths["last_good_path"].stat().st_mode) == 0o640
    assert json.loads(result["diff"]["after"]) == {a["name"]: a for a in desired["applications"]}
    assert "7288943a0b02aef9" in result["diff"]["before"]


def test_wait_false_does_not_poll_for_health(serve_apply, dashboard_stub, paths, capsys):
    dashboard_stub.serve(recorded("serve_running_healthy"))
    args = module_args(
        dashboard_stub,
        paths,
        new_build_config(),
        wait=False,
        last_good_path=paths["last_good_path"],
    )
    result = run_module(serve_apply, args, capsys)
    assert (result["rc"], result["changed"]) == (0, True)
    assert dashboard_stub.calls() == [("GET", API), ("PUT", API)]
    assert not paths["last_good_path"].exists()


def test_check_mode_never_puts_nor_writes(serve_apply, dashboard_stub, paths, capsys):
    dashboard_stub.serve(recorded("serve_running_healthy"))
    args = module_args(
        dashboard_stub,
        paths,
        new_build_config(),
        last_good_path=paths["last_good_path"],
        lock_path=paths["lock_path"],
        _ansible_check_mode=True,
    )
    result = run_module(serve_apply, args, capsys)
    assert result["rc"] == 0, result
    assert result["changed"] is True
    assert result["differences"] == [
        "application rayforge-proxy-anchor changed",
        "application seedcore-ml changed",
    ]
    assert dashboard_stub.calls() == [("GET", API)]
    assert not paths["last_good_path"].exists()
    assert not paths["lock_path"].exists()


def test_timeout_rolls_back_to_the_last_good_config(
    serve_apply, ray_dashboard, dashboard_stub, paths, capsys
):
    last_good = lab_config()
    ray_dashboard.write_json_atomic(str(paths["last_good_path"]), last_good)
    bad = scaled_config(64)
    dashboard_stub.serve(recorded("serve_running_healthy"))
    dashboard_stub.after_put(
        bad,
        recorded("serve_deploying_unschedulable_early"),
        recorded("serve_unschedulable_after_25s"),
    )
    args = module_args(
        dashboard_stub, paths, bad, timeout=1, last_good_path=paths["last_good_path"]
    )
    started = time.monotonic()
    result = run_module(serve_apply, args, capsys)
    assert time.monotonic() - started < 10
    assert result["rc"] == 1
    assert result["failed"] is True
    assert result["rolled_back"] is True
    assert dashboard_stub.bodies("PUT") == [bad, last_good]
    msg = result["msg"]
    assert msg.startswith("Serve deploy failed: not healthy after 1 s: seedcore-ml: DEPLOYING")
    assert "SalienceScorer UPSCALING 4/64 replicas running" in msg
    assert "Rolled back to the last config that became healthy" in msg
    assert f"({paths['last_good_path']}: seedcore-ml, rayforge-proxy-anchor)" in msg
    assert "it serves again" in msg
    # What runs after the rollback: the last good config, healthy.
    assert (
        result["applications"]["seedcore-ml"]["deployments"]["SalienceScorer"]["target_replicas"]
        == 2
    )
    assert json.loads(paths["last_good_path"].read_text()) == last_good
    # The config file on the host names the restored config, not the failed one.
    assert f"{paths['config_path']} holds it again" in msg
    assert json.loads(paths["config_path"].read_text()) == last_good


def test_rollback_that_does_not_become_healthy_says_so(
    serve_apply, ray_dashboard, dashboard_stub, paths, capsys
):
    last_good = lab_config()
    ray_dashboard.write_json_atomic(str(paths["last_good_path"]), last_good)
    bad = scaled_config(64)
    dashboard_stub.serve(recorded("serve_running_healthy"))
    dashboard_stub.after_put(bad, recorded("serve_unschedulable_after_25s"))
    dashboard_stub.after_put(last_good, recorded("serve_shut_down"))
    args = module_args(
        dashboard_stub, paths, bad, timeout=1, last_good_path=paths["last_good_path"]
    )
    result = run_module(serve_apply, args, capsys)
    assert (result["rc"], result["rolled_back"]) == (1, True)
    assert dashboard_stub.bodies("PUT") == [bad, last_good]
    assert "it serves again" not in result["msg"]
    assert "the rollback did not become healthy either: not healthy after 1 s" in result["msg"]


def test_deploy_failed_fails_at_once_with_serves_message(
    serve_apply, dashboard_stub, paths, capsys
):
    bad = broken_import_config()
    dashboard_stub.serve(recorded("serve_running_healthy"))
    dashboard_stub.after_put(bad, recorded("serve_deploy_failed_import"))
    metrics = paths["config_path"].parent / "rayforge_serve_deploy.prom"
    args = module_args(dashboard_stub, paths, bad, timeout=60, metrics_path=metrics)
    started = time.monotonic()
    result = run_module(serve_apply, args, capsys)
    assert time.monotonic() - started < 5  # not the 60 s timeout
    assert result["rc"] == 1
    assert result["rolled_back"] is False
    assert result["msg"].startswith(
        "Serve deploy failed: application seedcore-ml failed to deploy: Deploying app "
        "'seedcore-ml' failed with exception"
    )
    assert SERVE_TRACEBACK_END in result["msg"]
    assert dashboard_stub.calls() == [("GET", API), ("PUT", API), ("GET", API)]
    assert result["applications"]["seedcore-ml"]["status"] == "DEPLOY_FAILED"
    assert not metrics.exists()  # not a healthy deploy


def test_deploy_failed_rolls_back_too(serve_apply, ray_dashboard, dashboard_stub, paths, capsys):
    ray_dashboard.write_json_atomic(str(paths["last_good_path"]), lab_config())
    bad = broken_import_config()
    dashboard_stub.serve(recorded("serve_running_healthy"))
    dashboard_stub.after_put(bad, recorded("serve_deploy_failed_import"))
    args = module_args(
        dashboard_stub, paths, bad, timeout=60, last_good_path=paths["last_good_path"]
    )
    result = run_module(serve_apply, args, capsys)
    assert (result["rc"], result["rolled_back"]) == (1, True)
    assert dashboard_stub.bodies("PUT") == [bad, lab_config()]
    assert SERVE_TRACEBACK_END in result["msg"]
    assert "Rolled back to the last config that became healthy" in result["msg"]
    assert "it serves again" in result["msg"]


@pytest.mark.parametrize("case", ["rollback false", "no last good file"])
def test_no_rollback(serve_apply, ray_dashboard, dashboard_stub, paths, capsys, case):
    if case == "rollback false":
        ray_dashboard.write_json_atomic(str(paths["last_good_path"]), lab_config())
    bad = scaled_config(64)
    dashboard_stub.serve(recorded("serve_running_healthy"))
    dashboard_stub.after_put(bad, recorded("serve_unschedulable_after_25s"))
    args = module_args(
        dashboard_stub,
        paths,
        bad,
        timeout=1,
        last_good_path=paths["last_good_path"],
        rollback=case != "rollback false",
    )
    result = run_module(serve_apply, args, capsys)
    assert (result["rc"], result["rolled_back"]) == (1, False)
    assert dashboard_stub.bodies("PUT") == [bad]
    assert result["msg"].startswith("Serve deploy failed: not healthy after 1 s: ")
    assert "Rolled back" not in result["msg"]
    if case == "no last good file":
        assert not paths["last_good_path"].exists()
    else:
        assert json.loads(paths["last_good_path"].read_text()) == lab_config()


def test_last_good_equal_to_the_failed_config_is_not_re_applied(
    serve_apply, ray_dashboard, dashboard_stub, paths, capsys
):
    bad = scaled_config(64)
    ray_dashboard.write_json_atomic(str(paths["last_good_path"]), bad)
    dashboard_stub.serve(recorded("serve_running_healthy"))
    dashboard_stub.after_put(bad, recorded("serve_unschedulable_after_25s"))
    args = module_args(
        dashboard_stub, paths, bad, timeout=1, last_good_path=paths["last_good_path"]
    )
    result = run_module(serve_apply, args, capsys)
    assert (result["rc"], result["rolled_back"]) == (1, False)
    assert dashboard_stub.bodies("PUT") == [bad]


@pytest.mark.parametrize(
    ("answer", "check_mode", "changed", "calls"),
    [
        ("serve_running_healthy", False, True, [("GET", API), ("DELETE", API)]),
        ("serve_running_healthy", True, True, [("GET", API)]),
        ("serve_shut_down", False, False, [("GET", API)]),
    ],
)
def test_state_absent(
    serve_apply, dashboard_stub, paths, capsys, answer, check_mode, changed, calls
):
    dashboard_stub.serve(recorded(answer))
    args = module_args(dashboard_stub, paths, state="absent", _ansible_check_mode=check_mode)
    result = run_module(serve_apply, args, capsys)
    assert result["rc"] == 0, result
    assert result["changed"] is changed
    assert result["applications"] == {}
    assert dashboard_stub.calls() == calls


def test_lock_is_held_for_the_whole_deploy(
    serve_apply, ray_dashboard, dashboard_stub, paths, capsys
):
    ray_dashboard.write_json_atomic(str(paths["last_good_path"]), lab_config())
    bad = scaled_config(64)
    dashboard_stub.serve(recorded("serve_running_healthy"))
    dashboard_stub.after_put(bad, recorded("serve_unschedulable_after_25s"))
    taken_during_put = []

    def try_lock(body) -> None:  # what the reconciler does, while the module deploys
        with ray_dashboard.deploy_lock(str(paths["lock_path"]), wait_s=0) as got:
            taken_during_put.append(got)

    dashboard_stub.during_put = try_lock
    args = module_args(
        dashboard_stub,
        paths,
        bad,
        timeout=1,
        last_good_path=paths["last_good_path"],
        lock_path=paths["lock_path"],
    )
    result = run_module(serve_apply, args, capsys)
    assert (result["rc"], result["rolled_back"]) == (1, True)
    # Neither the deploy's PUT nor the rollback's could take the lock meanwhile.
    assert taken_during_put == [False, False]
    with ray_dashboard.deploy_lock(str(paths["lock_path"]), wait_s=0) as got:
        assert got is True  # released when the module ended


def test_lock_held_by_another_deploy_fails_without_a_request(
    serve_apply, ray_dashboard, dashboard_stub, paths, capsys
):
    dashboard_stub.serve(recorded("serve_running_healthy"))
    args = module_args(
        dashboard_stub, paths, new_build_config(), timeout=1, lock_path=paths["lock_path"]
    )
    with ray_dashboard.deploy_lock(str(paths["lock_path"]), wait_s=0) as got:
        assert got
        result = run_module(serve_apply, args, capsys)
    assert result["rc"] == 1
    assert result["msg"] == f"another Serve deploy held {paths['lock_path']} for 1 s"
    assert dashboard_stub.requests == []


def test_bad_token_fails_with_the_dashboards_answer(serve_apply, dashboard_stub, paths, capsys):
    dashboard_stub.token = "s3cret"
    dashboard_stub.serve(recorded("serve_running_healthy"))
    args = module_args(dashboard_stub, paths, lab_config(), headers={"Authorization": "Bearer x"})
    result = run_module(serve_apply, args, capsys)
    assert result["rc"] == 1
    assert result["msg"] == (
        f"Serve API at {dashboard_stub.url}: GET {API}: HTTP 401 Unauthorized: "
        "Unauthorized: Missing authentication token"
    )
    assert dashboard_stub.calls() == [("GET", API)]


def test_missing_config_file_fails_before_any_change(serve_apply, dashboard_stub, paths, capsys):
    dashboard_stub.serve(recorded("serve_running_healthy"))
    result = run_module(serve_apply, module_args(dashboard_stub, paths), capsys)
    assert result["rc"] == 1
    assert result["msg"].startswith(f"cannot read Serve config {paths['config_path']}: ")
    assert dashboard_stub.methods() == ["GET"]


TIMESTAMP = "rayforge_serve_last_healthy_deploy_timestamp_seconds"
INFO = "rayforge_serve_last_healthy_deploy_info"


def test_healthy_deploy_writes_its_time_and_config_hash(serve_apply, dashboard_stub, paths, capsys):
    dashboard_stub.serve(recorded("serve_running_healthy"))
    metrics = paths["config_path"].parent / "rayforge_serve_deploy.prom"
    args = module_args(
        dashboard_stub,
        paths,
        lab_config(),
        last_good_path=paths["last_good_path"],
        metrics_path=metrics,
    )
    before = time.time()
    first = run_module(serve_apply, args, capsys)
    assert (first["rc"], first["changed"]) == (0, True)
    digest = hashlib.sha256(paths["last_good_path"].read_bytes()).hexdigest()  # sha256sum's
    written = read_textfile(metrics)
    assert written[INFO] == {(("config_hash", digest),): 1}
    assert before <= written[TIMESTAMP][()] <= time.time()
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o644
    assert sorted(p.name for p in metrics.parent.iterdir() if "prom" in p.name) == [metrics.name]

    # Nothing deployed, the file holds this config: left alone, nothing changed.
    text = metrics.read_text()
    second = run_module(serve_apply, args, capsys)
    assert (second["rc"], second["changed"]) == (0, False)
    assert metrics.read_text() == text

    # The file is gone (a textfile directory new since the deploy): written again, with the
    # time the last good config was kept, not now.
    metrics.unlink()
    os.utime(paths["last_good_path"], (1_700_000_000, 1_700_000_000))
    third = run_module(serve_apply, args, capsys)
    assert (third["rc"], third["changed"]) == (0, True)
    again = read_textfile(metrics)
    assert again[TIMESTAMP] == {(): 1_700_000_000}
    assert again[INFO] == {(("config_hash", digest),): 1}


def test_missing_metrics_directory_is_a_warning(
    serve_apply, dashboard_stub, paths, capsys, monkeypatch
):
    warned = []
    monkeypatch.setattr(serve_apply.AnsibleModule, "warn", lambda self, msg: warned.append(msg))
    dashboard_stub.serve(recorded("serve_running_healthy"))
    metrics = paths["config_path"].parent / "absent" / "rayforge_serve_deploy.prom"
    args = module_args(
        dashboard_stub,
        paths,
        lab_config(),
        last_good_path=paths["last_good_path"],
        metrics_path=metrics,
    )
    result = run_module(serve_apply, args, capsys)
    assert (result["rc"], result["changed"]) == (0, True)  # the last good file, not the metrics
    assert [w.split(": ")[0] for w in warned] == [
        f"the last healthy deploy's metrics were not written to {metrics}"
    ]
    assert not metrics.parent.exists()
