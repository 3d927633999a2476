"""The dashboard client (roles/ray/module_utils/ray_dashboard.py) against recorded answers.

Proves that rayforge's one definition of a healthy Serve deployment reads real Ray 2.60
answers right: the recorded healthy cluster is healthy for the config it was deployed with,
the recorded unschedulable deploy is still waiting (never failed, never healthy), the recorded
failed import is a failure with Serve's own message, a shut-down Serve is "not running"; and
that the client sends exactly the requests it should (headers, JSON bodies, DELETE before PUT
only when HTTP options or proxy location change), retries a dashboard that is down or answers
5xx until its deadline but never retries a 4xx (a bad token), waits for health and gives up
on time, and that the deploy lock and the atomic JSON write do what the reconciler and the
role rely on.

An answer cut short (a dashboard dying mid-answer) is a DashboardError like any other failure.

Two answers are built, not recorded: each is serve_running_healthy.json with one application
edited, in the shape Ray 2.60 gives it, to prove one check of health() on its own.

* serve_deploying_app_not_built.json: seedcore-ml DEPLOYING with ``"deployments": {}``,
  ``deployment_topology`` and ``docs_path`` null (as Serve lists an application whose build
  task has not finished; the recorded serve_deploy_failed_import.json has the same empty
  shape), its ``deployed_app_config`` still the lab config's; the other application as
  recorded.
* serve_running_deployment_unhealthy.json: seedcore-ml RUNNING, its SalienceScorer UNHEALTHY
  (``status_trigger`` HEALTH_CHECK_FAILED, with Ray 2.60's message for it) while both of its
  target replicas are RUNNING. Ray 2.60 derives an application's status from its deployments'
  in the same control loop, so it should report that application UNHEALTHY too; the answer
  proves health() does not rely on that.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time

import pytest
from unit_support import (
    API,
    NODES,
    UNAUTHORIZED_BODY,
    Answer,
    RecordedDashboard,
    app_of,
    broken_import_config,
    healthy_running,
    lab_config,
    new_build_config,
    recorded,
    scaled_config,
)

SERVE_TRACEBACK_END = "ModuleNotFoundError: No module named 'salience.no_such_module'"


# --- differences and needs_restart ------------------------------------------------------------


def test_no_difference_when_serve_runs_the_deployed_config(ray_dashboard):
    # Ray reports num_cpus 1.0 where the config says 1: equal values, no difference.
    assert ray_dashboard.differences(lab_config(), recorded("serve_running_healthy")) == []


def test_shut_down_serve_is_one_difference(ray_dashboard):
    diffs = ray_dashboard.differences(lab_config(), recorded("serve_shut_down"))
    assert diffs == ["Serve is not running"]
    assert not ray_dashboard.needs_restart(diffs)


def test_changed_new_and_removed_applications(ray_dashboard):
    details = recorded("serve_running_healthy")
    assert ray_dashboard.differences(new_build_config(), details) == [
        "application rayforge-proxy-anchor changed",
        "application seedcore-ml changed",
    ]
    only_ml = lab_config()
    only_ml["applications"] = [app_of(only_ml, "seedcore-ml")]
    assert ray_dashboard.differences(only_ml, details) == [
        "application rayforge-proxy-anchor is to be removed"
    ]
    more = lab_config()
    extra = dict(app_of(more, "seedcore-ml"), name="extra", route_prefix="/extra")
    more["applications"].append(extra)
    assert ray_dashboard.differences(more, details) == ["application extra is new"]


def test_http_options_and_proxy_location_need_a_restart(ray_dashboard):
    details = recorded("serve_running_healthy")
    config = lab_config()
    config["http_options"]["port"] = 8001
    config["proxy_location"] = "HeadOnly"
    diffs = ray_dashboard.differences(config, details)
    assert diffs == ["proxy_location", "http_options.port"]
    assert ray_dashboard.needs_restart(diffs)
    assert ray_dashboard.needs_restart(["http_options.port"])
    assert not ray_dashboard.needs_restart(["application seedcore-ml changed"])


# --- health, unhealthy_reason, summarize --------------------------------------------------------


def test_recorded_healthy_cluster_is_healthy(ray_dashboard):
    assert ray_dashboard.health(lab_config(), recorded("serve_running_healthy")) == (True, None)
    assert ray_dashboard.serve_running(recorded("serve_running_healthy"))


@pytest.mark.parametrize(
    "answer", ["serve_deploying_unschedulable_early", "serve_unschedulable_after_25s"]
)
def test_unschedulable_deploy_is_waiting_not_failed(ray_dashboard, answer):
    assert ray_dashboard.health(scaled_config(64), recorded(answer)) == (False, None)


def test_old_config_is_not_healthy_for_the_new_one(ray_dashboard):
    # seedcore-ml runs healthy, but with the old config: not the desired one yet.
    assert ray_dashboard.health(new_build_config(), recorded("serve_running_healthy")) == (
        False,
        None,
    )
    assert ray_dashboard.health(lab_config(), recorded("serve_unschedulable_after_25s")) == (
        False,
        None,
    )
    assert ray_dashboard.health(lab_config(), recorded("serve_shut_down")) == (False, None)


def test_replica_not_running_is_not_healthy(ray_dashboard):
    details = recorded("serve_running_healthy")
    dep = details["applications"]["seedcore-ml"]["deployments"]["SalienceScorer"]
    dep["replicas"][0]["state"] = "STOPPING"  # 1 of its 2 target replicas runs
    assert ray_dashboard.health(lab_config(), details) == (False, None)


def test_application_deploying_before_its_deployments_exist_is_waiting(ray_dashboard):
    """An application Serve is still building (DEPLOYING, no deployment listed yet) is not
    healthy, although it is deployed with exactly the desired config and has no deployment
    that could fail the replica checks: its own status must be RUNNING."""
    details = recorded("serve_deploying_app_not_built")
    app = details["applications"]["seedcore-ml"]
    # What makes the answer unhealthy is the status alone: the config is the desired one.
    assert app["status"] == "DEPLOYING"
    assert app["deployments"] == {}
    assert app["deployed_app_config"] == app_of(lab_config(), "seedcore-ml")
    assert ray_dashboard.differences(lab_config(), details) == []
    assert ray_dashboard.health(lab_config(), details) == (False, None)
    assert ray_dashboard.unhealthy_reason(lab_config(), details).startswith(
        "seedcore-ml: DEPLOYING; rayforge-proxy-anchor: RUNNING"
    )


def test_unhealthy_deployment_with_its_replicas_running_is_not_healthy(ray_dashboard):
    """A deployment Serve calls UNHEALTHY (a replica failed its health check) is not healthy
    even when its application reads RUNNING and its target number of replicas is RUNNING:
    the deployment's own status counts, not only its replica count."""
    details = recorded("serve_running_deployment_unhealthy")
    app = details["applications"]["seedcore-ml"]
    dep = app["deployments"]["SalienceScorer"]
    # What makes the answer unhealthy is the deployment's status alone.
    assert app["status"] == "RUNNING"
    assert dep["status"] == "UNHEALTHY"
    assert ray_dashboard.running_replicas(dep) == dep["target_num_replicas"] == 2
    assert ray_dashboard.differences(lab_config(), details) == []
    assert ray_dashboard.health(lab_config(), details) == (False, None)
    assert not ray_dashboard.deployment_ready(dep)
    assert (
        "seedcore-ml: RUNNING; SalienceScorer UNHEALTHY 2/2 replicas running (A replica's "
        "health check failed."
    ) in ray_dashboard.unhealthy_reason(lab_config(), details)


def test_removed_application_still_deleting_is_not_healthy(ray_dashboard):
    """An application dropped from the config stays listed, DELETING, while Serve stops its
    replicas: the deploy is not done (its route may still answer) until it is gone."""
    details = recorded("serve_running_healthy")
    config = lab_config()
    removed = config["applications"].pop(0)
    details["applications"][removed["name"]]["status"] = "DELETING"
    assert ray_dashboard.health(config, details) == (False, None)
    assert ray_dashboard.unhealthy_reason(config, details).endswith(
        f"{removed['name']}: DELETING, removed from the config"
    )
    del details["applications"][removed["name"]]
    assert ray_dashboard.health(config, details) == (True, None)


def test_deploy_failed_is_a_failure_with_serves_message(ray_dashboard):
    ok, failure = ray_dashboard.health(
        broken_import_config(), recorded("serve_deploy_failed_import")
    )
    assert ok is False
    assert failure.startswith(
        "application seedcore-ml failed to deploy: Deploying app 'seedcore-ml' failed with"
    )
    assert SERVE_TRACEBACK_END in failure


def test_unhealthy_reason_in_serves_words(ray_dashboard):
    assert ray_dashboard.unhealthy_reason(
        scaled_config(64), recorded("serve_unschedulable_after_25s")
    ) == (
        "seedcore-ml: DEPLOYING; SalienceScorer UPSCALING 4/64 replicas running "
        "(Upscaling from 2 to 64 replicas.); "
        "rayforge-proxy-anchor: RUNNING; ProxyAnchor HEALTHY 3/3 replicas running"
    )
    assert ray_dashboard.unhealthy_reason(lab_config(), recorded("serve_shut_down")) == (
        "seedcore-ml: not deployed; rayforge-proxy-anchor: not deployed"
    )
    failed = ray_dashboard.unhealthy_reason(
        broken_import_config(), recorded("serve_deploy_failed_import")
    )
    assert failed.startswith("seedcore-ml: DEPLOY_FAILED (Deploying app 'seedcore-ml' failed")
    assert f"{SERVE_TRACEBACK_END}); rayforge-proxy-anchor: RUNNING" in failed
    assert ray_dashboard.unhealthy_reason({"applications": []}, {}) == "no application"


def test_summarize_recorded_answers(ray_dashboard):
    assert ray_dashboard.summarize(recorded("serve_running_healthy")) == {
        "seedcore-ml": {
            "status": "RUNNING",
            "message": "",
            "route_prefix": "/",
            "deployments": {
                "SalienceScorer": {
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
            },
        },
        "rayforge-proxy-anchor": {
            "status": "RUNNING",
            "message": "",
            "route_prefix": None,
            "deployments": {
                "ProxyAnchor": {
                    "status": "HEALTHY",
                    "message": "",
                    "target_replicas": 3,
                    "running_replicas": 3,
                    "nodes": ["172.19.0.2", "172.19.0.3", "172.19.0.4"],
                    "node_ids": [
                        "74a718a8394cd83c5e5c42e44582c9f75d18810ddcbcd9bd6602ee66",
                        "86c5634db56606201a2b7ea44dd60c0503535b846d1501ba8a9c71ba",
                        "ad48b5a9f6105db364585939488d8d3c955ad36e927ddc497eacf907",
                    ],
                }
            },
        },
    }
    # 64 replicas wanted, 4 running; the 60 never scheduled have no node and are not counted.
    scorer = ray_dashboard.summarize(recorded("serve_unschedulable_after_25s"))["seedcore-ml"]
    assert scorer["status"] == "DEPLOYING"
    assert scorer["deployments"]["SalienceScorer"] == {
        "status": "UPSCALING",
        "message": "Upscaling from 2 to 64 replicas.",
        "target_replicas": 64,
        "running_replicas": 4,
        "nodes": ["172.19.0.3", "172.19.0.4"],
        "node_ids": [
            "74a718a8394cd83c5e5c42e44582c9f75d18810ddcbcd9bd6602ee66",
            "ad48b5a9f6105db364585939488d8d3c955ad36e927ddc497eacf907",
        ],
    }
    assert ray_dashboard.summarize(recorded("serve_shut_down")) == {}
    assert not ray_dashboard.serve_running(recorded("serve_shut_down"))


def test_healthy_running_substitutes_the_put_config():
    """The stub's built answer is the recorded one with the PUT's applications deployed."""
    built = healthy_running(new_build_config())
    assert built["applications"]["seedcore-ml"]["deployed_app_config"]["runtime_env"] == {
        "env_vars": {"RAYFORGE_APP_BUILD": "0123456789abcdef"}
    }
    built["applications"]["seedcore-ml"]["deployed_app_config"] = recorded("serve_running_healthy")[
        "applications"
    ]["seedcore-ml"]["deployed_app_config"]
    built["applications"]["rayforge-proxy-anchor"]["deployed_app_config"] = recorded(
        "serve_running_healthy"
    )["applications"]["rayforge-proxy-anchor"]["deployed_app_config"]
    assert built == recorded("serve_running_healthy")


# --- Requests ------------------------------------------------------------------------------------


def test_get_sends_accept_and_the_given_headers(ray_dashboard, dashboard_stub):
    dashboard_stub.serve(recorded("serve_running_healthy"))
    api = ray_dashboard.Dashboard(dashboard_stub.url + "/", {"X-Probe": "1"})
    assert api.serve_details() == recorded("serve_running_healthy")
    [req] = dashboard_stub.requests
    assert (req.method, req.path, req.body) == ("GET", API, None)
    assert req.headers["accept"] == "application/json"
    assert req.headers["x-probe"] == "1"
    assert "content-type" not in req.headers


def test_put_sends_the_whole_config_as_json_and_delete_no_body(ray_dashboard, dashboard_stub):
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    api.deploy_serve(lab_config())
    api.shutdown_serve()
    put, delete = dashboard_stub.requests
    assert (put.method, put.path, put.body) == ("PUT", API, lab_config())
    assert put.headers["content-type"] == "application/json"
    assert (delete.method, delete.path, delete.body) == ("DELETE", API, None)
    assert "content-type" not in delete.headers


def test_shutdown_waits_as_long_as_the_caller_allows(ray_dashboard, dashboard_stub, monkeypatch):
    """Serve's DELETE answers after the replicas' graceful shutdown (about 30 s on the lab,
    as long as the per-request timeout): the caller's deadline applies, not that one."""
    monkeypatch.setattr(ray_dashboard, "REQUEST_TIMEOUT_S", 0.2)
    dashboard_stub.during_delete = lambda: time.sleep(0.6)
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    with pytest.raises(ray_dashboard.DashboardError, match="timed out"):
        api.shutdown_serve()
    api.shutdown_serve(timeout_s=5)
    assert dashboard_stub.methods() == ["DELETE", "DELETE"]


def test_answers_that_are_not_an_object(ray_dashboard, dashboard_stub):
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    dashboard_stub.serve(Answer(200, ""))
    assert api.request("GET", API) == {}
    dashboard_stub.serve(Answer(200, "[1, 2]"))
    assert api.request("GET", API) == {"result": [1, 2]}
    dashboard_stub.serve(Answer(200, "<html>proxy</html>"))
    with pytest.raises(ray_dashboard.DashboardError, match="not JSON") as err:
        api.request("GET", API)
    assert err.value.status is None


def test_answer_cut_short_is_a_dashboard_error(ray_dashboard, dashboard_stub):
    dashboard_stub.serve(Answer(200, recorded("serve_running_healthy"), truncated=True))
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    with pytest.raises(ray_dashboard.DashboardError) as err:
        api.serve_details()
    assert err.value.status is None


def test_missing_token_is_401_and_never_retried(ray_dashboard):
    stub = RecordedDashboard(token="s3cret").start()
    try:
        stub.serve(recorded("serve_running_healthy"))
        api = ray_dashboard.Dashboard(stub.url)
        started = time.monotonic()
        with pytest.raises(ray_dashboard.DashboardError) as err:
            api.serve_details(wait_s=5)
        assert time.monotonic() - started < 1
        assert err.value.status == 401
        assert str(err.value) == (
            f"GET {API}: HTTP 401 Unauthorized: Unauthorized: Missing authentication token"
        )
        assert UNAUTHORIZED_BODY in str(err.value)
        assert stub.calls() == [("GET", API)]  # one try: a 4xx is not retried

        with_token = ray_dashboard.Dashboard(stub.url, {"Authorization": "Bearer s3cret"})
        assert with_token.serve_details() == recorded("serve_running_healthy")
        assert stub.requests[-1].headers["authorization"] == "Bearer s3cret"
    finally:
        stub.close()


def test_5xx_is_retried_until_the_dashboard_answers(ray_dashboard, dashboard_stub):
    unavailable = Answer(503, "Service Unavailable")
    dashboard_stub.serve(unavailable, unavailable, recorded("serve_running_healthy"))
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    assert api.serve_details(wait_s=5) == recorded("serve_running_healthy")
    assert dashboard_stub.calls() == [("GET", API)] * 3


def test_5xx_is_raised_once_wait_s_is_over(ray_dashboard, dashboard_stub):
    dashboard_stub.serve(Answer(503, "Service Unavailable"))
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    with pytest.raises(ray_dashboard.DashboardError) as err:
        api.serve_details(wait_s=0)
    assert err.value.status == 503
    assert dashboard_stub.methods() == ["GET"]  # wait_s 0: one try

    started = time.monotonic()
    with pytest.raises(ray_dashboard.DashboardError) as err:
        api.serve_details(wait_s=0.3)
    assert time.monotonic() - started >= 0.3
    assert err.value.status == 503
    assert len(dashboard_stub.requests) > 3


def test_refused_connection_is_retried_until_the_dashboard_listens(ray_dashboard):
    stub = RecordedDashboard()  # bound, not listening: connections are refused
    stub.serve(recorded("serve_running_healthy"))
    timer = threading.Timer(0.3, stub.start)
    try:
        api = ray_dashboard.Dashboard(stub.url)
        with pytest.raises(ray_dashboard.DashboardError) as err:
            api.serve_details()
        assert err.value.status is None
        assert "no answer from" in str(err.value)

        started = time.monotonic()
        timer.start()
        assert api.serve_details(wait_s=5) == recorded("serve_running_healthy")
        assert time.monotonic() - started >= 0.3
        assert stub.methods() == ["GET"]  # the refused tries never reached it
    finally:
        timer.join()
        stub.close()


def test_refused_connection_is_raised_once_wait_s_is_over(ray_dashboard, closed_port):
    api = ray_dashboard.Dashboard(f"http://127.0.0.1:{closed_port}")
    started = time.monotonic()
    with pytest.raises(ray_dashboard.DashboardError) as err:
        api.serve_details(wait_s=0.3)
    assert 0.3 <= time.monotonic() - started < 3
    assert err.value.status is None
    assert f"GET {API}: no answer from http://127.0.0.1:{closed_port}" in str(err.value)


# --- apply ---------------------------------------------------------------------------------------


def test_apply_sends_nothing_when_nothing_differs(ray_dashboard, dashboard_stub):
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    assert ray_dashboard.apply(api, lab_config(), recorded("serve_running_healthy"), 5) == []
    assert dashboard_stub.requests == []


def test_apply_puts_a_changed_config_without_a_shutdown(ray_dashboard, dashboard_stub):
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    diffs = ray_dashboard.apply(api, new_build_config(), recorded("serve_running_healthy"), 5)
    assert diffs == ["application rayforge-proxy-anchor changed", "application seedcore-ml changed"]
    assert dashboard_stub.calls() == [("PUT", API)]
    assert dashboard_stub.bodies("PUT") == [new_build_config()]


def test_apply_starts_a_shut_down_serve_with_one_put(ray_dashboard, dashboard_stub):
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    config = lab_config()
    config["http_options"]["port"] = 8001
    assert ray_dashboard.apply(api, config, recorded("serve_shut_down"), 5) == [
        "Serve is not running"
    ]
    assert dashboard_stub.calls() == [("PUT", API)]


def test_apply_shuts_serve_down_before_changing_http_options(ray_dashboard, dashboard_stub):
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    config = lab_config()
    config["http_options"]["port"] = 8001
    diffs = ray_dashboard.apply(api, config, recorded("serve_running_healthy"), 5)
    assert diffs == ["http_options.port"]
    # DELETE, then polls until the controller is gone (recorded shut-down answer), then PUT.
    assert dashboard_stub.calls() == [("DELETE", API), ("GET", API), ("PUT", API)]
    assert dashboard_stub.bodies("PUT") == [config]


def test_apply_fails_when_serve_does_not_shut_down(ray_dashboard, dashboard_stub):
    dashboard_stub.after_delete = [recorded("serve_running_healthy")]  # the controller stays
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    config = lab_config()
    config["proxy_location"] = "HeadOnly"
    with pytest.raises(ray_dashboard.DashboardError, match=r"did not shut down within 0\.2 s"):
        ray_dashboard.apply(api, config, recorded("serve_running_healthy"), 0.2)
    assert "PUT" not in dashboard_stub.methods()
    assert dashboard_stub.methods()[0] == "DELETE"


# --- wait_healthy --------------------------------------------------------------------------------


def test_wait_healthy_polls_until_healthy(ray_dashboard, dashboard_stub):
    config = scaled_config(64)
    healthy = healthy_running(config)
    dashboard_stub.serve(
        recorded("serve_deploying_unschedulable_early"),
        recorded("serve_unschedulable_after_25s"),
        healthy,
    )
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    assert ray_dashboard.wait_healthy(api, config, 5) == (True, None, healthy)
    assert dashboard_stub.calls() == [("GET", API)] * 3


def test_wait_healthy_gives_up_after_timeout_with_the_reason(ray_dashboard, dashboard_stub):
    dashboard_stub.serve(
        recorded("serve_deploying_unschedulable_early"), recorded("serve_unschedulable_after_25s")
    )
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    started = time.monotonic()
    ok, failure, details = ray_dashboard.wait_healthy(api, scaled_config(64), 0.3)
    assert 0.3 <= time.monotonic() - started < 3
    assert ok is False
    assert failure == (
        "not healthy after 0.3 s: seedcore-ml: DEPLOYING; SalienceScorer UPSCALING 4/64 "
        "replicas running (Upscaling from 2 to 64 replicas.); rayforge-proxy-anchor: RUNNING; "
        "ProxyAnchor HEALTHY 3/3 replicas running"
    )
    assert details == recorded("serve_unschedulable_after_25s")


def test_wait_healthy_returns_at_once_when_the_deploy_failed(ray_dashboard, dashboard_stub):
    dashboard_stub.serve(recorded("serve_deploy_failed_import"))
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    started = time.monotonic()
    ok, failure, _ = ray_dashboard.wait_healthy(api, broken_import_config(), 30)
    assert time.monotonic() - started < 2
    assert ok is False
    assert SERVE_TRACEBACK_END in failure
    assert dashboard_stub.methods() == ["GET"]


# --- deploy_lock and write_json_atomic ---------------------------------------------------------


def test_deploy_lock_is_exclusive(ray_dashboard, tmp_path):
    path = str(tmp_path / "serve-deploy.lock")
    with ray_dashboard.deploy_lock(path, wait_s=0) as first:
        assert first is True
        assert os.path.exists(path)
        with ray_dashboard.deploy_lock(path, wait_s=0) as second:
            assert second is False
    with ray_dashboard.deploy_lock(path, wait_s=0) as again:
        assert again is True


def test_deploy_lock_waits_for_the_holder(ray_dashboard, tmp_path):
    path = str(tmp_path / "serve-deploy.lock")
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with ray_dashboard.deploy_lock(path, wait_s=0) as got:
            assert got
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        threading.Timer(0.2, release.set).start()
        started = time.monotonic()
        with ray_dashboard.deploy_lock(path, wait_s=5) as got:
            assert got is True
            assert time.monotonic() - started >= 0.2
    finally:
        release.set()
        thread.join(5)


def test_write_json_atomic(ray_dashboard, tmp_path):
    path = tmp_path / "last-good.json"
    assert ray_dashboard.write_json_atomic(str(path), lab_config(), 0o640, os.getgid()) is True
    assert path.read_text() == json.dumps(lab_config(), indent=2, sort_keys=True) + "\n"
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_gid == os.getgid()
    inode = info.st_ino

    assert ray_dashboard.write_json_atomic(str(path), lab_config()) is False
    assert path.stat().st_ino == inode  # not rewritten

    assert ray_dashboard.write_json_atomic(str(path), new_build_config()) is True
    assert json.loads(path.read_text()) == new_build_config()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last-good.json"]  # no temp file left


def test_node_list_is_retried_like_serves_state(ray_dashboard, dashboard_stub):
    unavailable = Answer(503, "Health check failed: RPC error: Deadline Exceeded")
    dashboard_stub.answer(NODES, unavailable, {"result": True, "data": {"summary": []}})
    api = ray_dashboard.Dashboard(dashboard_stub.url)
    assert api.nodes(wait_s=5) == {"summary": []}
    assert dashboard_stub.calls() == [("GET", NODES)] * 2

    dashboard_stub.answer(NODES, unavailable)
    with pytest.raises(ray_dashboard.DashboardError) as err:
        api.nodes()
    assert err.value.status == 503
