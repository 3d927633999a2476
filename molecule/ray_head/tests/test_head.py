"""The head runs under systemd and its GCS and dashboard answer."""

import json

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
    out = host.check_output(
        f"sudo -u {rayvars['ray_user']} {rayvars['ray_venv_dir']}/bin/ray status "
        f"--address 127.0.0.1:{rayvars['ray_gcs_port']}"
    )
    assert "1 node(s)" in out or "Active:" in out
    assert "CPU" in out


def test_dashboard_answers_from_outside(node_ip, rayvars):
    status, body = http(f"http://{node_ip}:{rayvars['ray_dashboard_port']}/api/gcs_healthz")
    assert status == 200, body


def test_dashboard_lists_one_alive_node(node_ip, rayvars):
    status, body = http(f"http://{node_ip}:{rayvars['ray_dashboard_port']}/nodes?view=summary")
    assert status == 200, body
    nodes = body["data"]["summary"]
    alive = [n for n in nodes if n["raylet"]["state"] == "ALIVE"]
    assert len(alive) == 1, json.dumps(nodes)[:2000]


def test_metrics_exported(host, rayvars):
    out = host.check_output(
        f"curl -sf http://127.0.0.1:{rayvars['ray_metrics_export_port']}/metrics"
    )
    assert "ray_" in out
