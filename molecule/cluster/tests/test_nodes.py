"""Every node, head and workers, as site.yml left it and as the faults before left it: Ray at
the pinned version under systemd as the unprivileged user, the ports of the scenario's
inventory listening, the head's API refusing calls without the token.

Runs on every Ray host of the inventory (after test_faults.py: the nodes that were killed,
rebooted and upgraded there are checked here too).
"""

import re

import pytest

from conftest import IP_CMD, http

testinfra_hosts = ["ansible://ray_head", "ansible://ray_workers"]


@pytest.fixture
def role(host):
    return "head" if "ray_head" in host.ansible.get_variables()["group_names"] else "worker"


def test_ray_is_installed_at_pinned_version(host, rayvars):
    out = host.check_output(f"{rayvars['ray_venv_dir']}/bin/ray --version")
    assert re.search(rf"version {re.escape(rayvars['ray_version'])}\b", out), out


def test_own_unit_enabled_and_active_the_other_absent(host, rayvars, role):
    mine = rayvars[f"ray_{role}_service_name"]
    other = rayvars["ray_worker_service_name" if role == "head" else "ray_head_service_name"]
    assert host.service(mine).is_enabled
    assert host.service(mine).is_running
    assert not host.service(other).is_running


def test_raylet_runs_as_unprivileged_user(host, rayvars):
    raylet = host.process.filter(comm="raylet")
    assert raylet, "no raylet process"
    assert {p.user for p in raylet} == {rayvars["ray_user"]}


@pytest.mark.parametrize(
    ("port_var", "where"),
    [
        ("ray_gcs_port", "head"),
        ("ray_dashboard_port", "head"),
        ("ray_dashboard_metrics_port", "head"),
        ("ray_autoscaler_metrics_port", "head"),
        ("ray_client_server_port", "head"),
        ("ray_node_manager_port", "every"),
        ("ray_object_manager_port", "every"),
        ("ray_metrics_export_port", "every"),
        ("ray_dashboard_agent_listen_port", "every"),
        ("ray_serve_http_port", "every"),
    ],
)
def test_inventory_ports_listen(host, rayvars, role, port_var, where):
    """Each port on the number the scenario's inventory moved it to (none is a default)."""
    if where == "head" and role != "head":
        pytest.skip("head only")
    port = rayvars[port_var]
    ip = host.check_output(IP_CMD)
    assert any(host.socket(f"tcp://{addr}:{port}").is_listening for addr in ("0.0.0.0", ip)), (
        f"{port_var}: nothing listens on {port}"
    )


def test_ray_status_counts_every_inventory_host(host, rayvars, role):
    if role != "head":
        pytest.skip("asked on the head")
    groups = host.ansible.get_variables()["groups"]
    out = host.check_output("rayforge-ray status")
    active = out.split("Active:", 1)[1].split("Pending:", 1)[0]
    nodes = re.findall(r"^\s*\d+ node_[0-9a-f]+", active, re.M)
    assert len(nodes) == len(groups["ray_head"]) + len(groups["ray_workers"]), out


def test_metrics_exported(host, rayvars):
    out = host.check_output(
        f"curl -sf http://127.0.0.1:{rayvars['ray_metrics_export_port']}/metrics"
    )
    assert "ray_" in out


def test_dashboard_refuses_calls_without_the_token(host, rayvars, role):
    if role != "head":
        pytest.skip("the dashboard runs on the head")
    if rayvars["ray_auth_mode"] != "token":
        pytest.skip("token authentication is off")
    ip = host.check_output(IP_CMD)
    # /api/gcs_healthz stays open on purpose (load balancer health checks).
    status, _ = http(f"http://{ip}:{rayvars['ray_dashboard_port']}/api/gcs_healthz")
    assert status == 200
    for path in ("/api/jobs/", "/api/serve/applications/", "/nodes?view=summary"):
        status, _ = http(f"http://{ip}:{rayvars['ray_dashboard_port']}{path}")
        assert status in (401, 403), path


def test_token_is_readable_by_ray_only(host, rayvars):
    if rayvars["ray_auth_mode"] != "token":
        pytest.skip("token authentication is off")
    token = host.file(f"{rayvars['ray_config_dir']}/auth_token")
    assert token.user == rayvars["ray_user"]
    assert token.mode == 0o600


def test_gpu_devices_reach_the_unit_and_no_other_device(host, rayvars, role):
    """A node told to offer GPUs (the scenario's stand-in device nodes, made at boot by
    prepare.yml's tmpfiles rule as a driver would) finds them in its unit's private /dev; a
    node that offers none finds none there; and no unit sees the other device every node's
    /dev holds (the sandbox hides it)."""
    unit = rayvars[f"ray_{role}_service_name"]
    gpus = str(rayvars[f"ray_{role}_num_gpus"])
    pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
    # The unit's /dev, through its main process's root: readable by the process's own user
    # (root in a container may not trace another user's processes).
    seen = set(
        host.check_output(f"runuser -u {rayvars['ray_user']} -- ls /proc/{pid}/root/dev").split()
    )
    assert "rf-standin-other" in host.check_output("ls /dev").split()
    assert "rf-standin-other" not in seen, seen
    if gpus and float(gpus) > 0:
        assert {"nvidia0", "nvidiactl"} <= seen, seen
    else:
        assert not {d for d in seen if d.startswith("nvidia")}, seen
