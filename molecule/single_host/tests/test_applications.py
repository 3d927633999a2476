"""Both applications are deployed by Serve on their own route prefixes and answer from outside
the host; the salience app's API behaves (scores, defaults, 4xx with a message)."""

import pytest

from conftest import http, smoke

SEED = {"features": [{"task_risk": 0.5, "failure_severity": 0.3}]}


@pytest.fixture
def app(rayvars):
    return rayvars["ray_serve_applications"][0]


def serve_url(node_ip, rayvars, app, path):
    prefix = app.get("route_prefix", "/").rstrip("/")
    return f"http://{node_ip}:{rayvars['ray_serve_http_port']}{prefix}{path}"


def test_serve_listens_on_all_interfaces(host, rayvars):
    assert host.socket(f"tcp://0.0.0.0:{rayvars['ray_serve_http_port']}").is_listening


def test_dashboard_lists_every_application_running(dashboard, rayvars):
    status, body = dashboard.get("/api/serve/applications/")
    assert status == 200, body
    for application in rayvars["ray_serve_applications"]:
        deployed = body["applications"][application["name"]]
        assert deployed["status"] == "RUNNING", deployed.get("message")
        assert deployed["route_prefix"] == application["route_prefix"]
        for want in application["deployments"]:
            dep = deployed["deployments"][want["name"]]
            running = [r for r in dep["replicas"] if r["state"] == "RUNNING"]
            assert dep["status"] == "HEALTHY"
            assert len(running) == dep["target_num_replicas"] == want["num_replicas"]


def test_every_application_answers_on_its_own_prefix(node_ip, rayvars):
    for application in rayvars["ray_serve_applications"]:
        status, body = smoke(node_ip, rayvars, application)
        assert status == application["smoke_test"].get("status", 200), (application["name"], body)
        for key, value in application["smoke_test"]["expect"].items():
            assert body[key] == value, (application["name"], body)


def test_seed_request_scores_0_15_from_outside(node_ip, rayvars, app):
    status, body = http(serve_url(node_ip, rayvars, app, "/score/salience"), "POST", SEED)
    assert status == 200, body
    assert body["status"] == "success"
    assert body["model"] == "salience_scorer"
    assert body["scores"] == [pytest.approx(0.15)]


def test_defaults_are_half(node_ip, rayvars, app):
    status, body = http(
        serve_url(node_ip, rayvars, app, "/score/salience"), "POST", {"features": [{}]}
    )
    assert status == 200, body
    assert body["scores"] == [pytest.approx(0.25)]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        {"features": []},
        {"features": [{"task_risk": 1.5}]},
        {"features": [{"task_risk": "high"}]},
        {"nothing": 1},
    ],
)
def test_bad_requests_get_4xx_with_a_message(node_ip, rayvars, app, payload):
    status, body = http(serve_url(node_ip, rayvars, app, "/score/salience"), "POST", payload)
    assert 400 <= status < 500, (status, body)
    assert body["status"] == "error", body
    assert body["error"], body


def test_health_route_answers(node_ip, rayvars, app):
    status, body = http(serve_url(node_ip, rayvars, app, "/healthz"))
    assert status == 200, body


def test_serve_config_on_disk_passes_rays_schema(host, rayvars):
    checker = f"{rayvars['ray_install_dir']}/bin/check_serve_config.py"
    config = f"{rayvars['ray_config_dir']}/serve-config.json"
    host.run_test(f"{rayvars['ray_venv_dir']}/bin/python {checker} {config}")
