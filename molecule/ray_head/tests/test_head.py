"""The head runs under systemd and its GCS and dashboard answer."""

import json

import pytest

from conftest import http


def test_ray_is_installed_at_pinned_version(host, rayvars):
    out = host.check_output(f"{rayvars['ray_venv_dir']}/bin/ray --version")
    assert rayvars["ray_version"] in out


def test_head_unit_enabled_and_active(host, rayvars):
    unit = host.service(rayvars["ray_head_service_name"])
    assert unit.is_enabled
    assert unit.is_running


def test_head_runs_as_unprivileged_user(host, rayvars):
    raylet = host.process.filter(comm="raylet")
    assert raylet, "no raylet process"
    assert {p.user for p in raylet} == {rayvars["ray_user"]}


def test_ports_listen(host, rayvars):
    for name in ("ray_gcs_port", "ray_dashboard_port", "ray_metrics_export_port"):
        port = rayvars[name]
        assert (
            host.socket(f"tcp://0.0.0.0:{port}").is_listening
            or host.socket(
                f"tcp://{host.check_output('hostname -I').split()[0]}:{port}"
            ).is_listening
        ), name


def test_ray_status_reports_a_healthy_node(host, rayvars):
    out = host.check_output("rayforge-ray status")
    assert "1 node(s)" in out or "Active:" in out
    assert "CPU" in out


def test_dashboard_answers_from_outside(dashboard):
    status, body = dashboard.get("/api/gcs_healthz")
    assert status == 200, body


def test_dashboard_lists_one_alive_node(dashboard):
    status, body = dashboard.get("/nodes?view=summary")
    assert status == 200, body
    nodes = body["data"]["summary"]
    alive = [n for n in nodes if n["raylet"]["state"] == "ALIVE"]
    assert len(alive) == 1, json.dumps(nodes)[:2000]


def test_metrics_exported(host, rayvars):
    out = host.check_output(
        f"curl -sf http://127.0.0.1:{rayvars['ray_metrics_export_port']}/metrics"
    )
    assert "ray_" in out


def test_dashboard_refuses_calls_without_the_token(node_ip, rayvars):
    if rayvars["ray_auth_mode"] != "token":
        pytest.skip("token authentication is off")
    # /api/gcs_healthz stays open on purpose (load balancer health checks).
    for path in ("/api/jobs/", "/api/serve/applications/", "/nodes?view=summary"):
        status, _ = http(f"http://{node_ip}:{rayvars['ray_dashboard_port']}{path}")
        assert status in (401, 403), path


def test_token_is_readable_by_ray_only(host, rayvars):
    if rayvars["ray_auth_mode"] != "token":
        pytest.skip("token authentication is off")
    token = host.file(f"{rayvars['ray_config_dir']}/auth_token")
    assert token.user == rayvars["ray_user"]
    assert token.mode == 0o600
