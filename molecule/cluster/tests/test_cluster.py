"""The cluster site.yml builds: every node alive, replicas on the workers, every :8000 serving.

Runs once, from the head's point of view; the other hosts are reached through the same
Ansible inventory Molecule made.
"""

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import IP_CMD, ROOT, http, peer

testinfra_hosts = ["ansible://ray_head"]

SEED = {"features": [{"task_risk": 0.5, "failure_severity": 0.3}]}


@pytest.fixture
def cluster(host):
    groups = host.ansible.get_variables()["groups"]
    ips = {}
    for name in groups["ray_head"] + groups["ray_workers"]:
        ips[name] = peer(host, name).check_output(IP_CMD)
    return {
        "head": ips[groups["ray_head"][0]],
        "workers": [ips[w] for w in groups["ray_workers"]],
        "hosts": {n: peer(host, n) for n in ips},
        "ips": ips,
    }


def alive_nodes(dashboard):
    status, body = dashboard.get("/nodes?view=summary")
    assert status == 200, body
    return {
        n["raylet"]["nodeManagerAddress"]
        for n in body["data"]["summary"]
        if n["raylet"]["state"] == "ALIVE"
    }


def app_state(dashboard, name):
    status, body = dashboard.get("/api/serve/applications/")
    assert status == 200, body
    return body["applications"].get(name, {})


def running_replicas(app):
    return [
        r
        for d in app.get("deployments", {}).values()
        for r in d["replicas"]
        if r["state"] == "RUNNING"
    ]


def wait_until(predicate, timeout=180, step=3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_every_host_is_an_alive_node(cluster, dashboard):
    assert alive_nodes(dashboard) == set(cluster["ips"].values())


def test_replicas_run_on_the_workers(cluster, dashboard, rayvars):
    app = rayvars["ray_serve_applications"][0]
    state = app_state(dashboard, app["name"])
    assert state["status"] == "RUNNING", state.get("message")
    replicas = running_replicas(state)
    assert len(replicas) == app["deployments"][0]["num_replicas"]
    assert {r["node_ip"] for r in replicas} <= set(cluster["workers"])


def test_every_node_serves_the_seed_request(cluster, rayvars):
    for name, ip in cluster["ips"].items():
        status, body = http(
            f"http://{ip}:{rayvars['ray_serve_http_port']}/score/salience", "POST", SEED
        )
        assert status == 200, (name, body)
        assert body["scores"] == [pytest.approx(0.15)], name


def test_every_node_proxy_is_healthy_for_a_load_balancer(cluster, rayvars):
    for name, ip in cluster["ips"].items():
        status, _ = http(f"http://{ip}:{rayvars['ray_serve_http_port']}/-/healthz")
        assert status == 200, name
        status, body = http(f"http://{ip}:{rayvars['ray_serve_http_port']}/healthz")
        assert status == 200, (name, body)


def test_restarted_worker_rejoins_and_its_replica_comes_back(cluster, dashboard, rayvars):
    app = rayvars["ray_serve_applications"][0]
    want = app["deployments"][0]["num_replicas"]
    worker = next(n for n, ip in cluster["ips"].items() if ip in cluster["workers"])
    cluster["hosts"][worker].run_test(f"systemctl restart {rayvars['ray_worker_service_name']}")

    assert wait_until(lambda: cluster["ips"][worker] in alive_nodes(dashboard)), (
        f"{worker} did not rejoin"
    )

    def serving():
        status, body = dashboard.get("/api/serve/applications/")
        apps = body.get("applications", {}) if status == 200 else {}
        return (
            all(a["status"] == "RUNNING" for a in apps.values())
            and len(running_replicas(apps.get(app["name"], {}))) == want
        )

    assert wait_until(serving), app_state(dashboard, app["name"])
    for ip in cluster["ips"].values():
        assert wait_until(
            lambda ip=ip: (
                http(f"http://{ip}:{rayvars['ray_serve_http_port']}/score/salience", "POST", SEED)[
                    0
                ]
                == 200
            ),
            timeout=120,
        )


def run_playbook(host, playbook, *extra):
    """Run one of the repository's playbooks against this scenario's inventory."""
    inventory = host.backend.ansible_inventory
    cmd = ["ansible-playbook", "-i", inventory, str(ROOT / "playbooks" / playbook), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_stop_then_start_comes_back_serving(host, cluster, dashboard, rayvars):
    run_playbook(host, "stop.yml")
    for ip in cluster["ips"].values():
        with pytest.raises(urllib.error.URLError, match=r"refused|timed out|reset"):
            urllib.request.urlopen(
                f"http://{ip}:{rayvars['ray_serve_http_port']}/-/healthz", timeout=5
            )
    run_playbook(host, "start.yml")
    assert alive_nodes(dashboard) >= set(cluster["ips"].values())
    for ip in cluster["ips"].values():
        status, body = http(
            f"http://{ip}:{rayvars['ray_serve_http_port']}/score/salience", "POST", SEED
        )
        assert status == 200, body
        assert body["scores"] == [pytest.approx(0.15)]


def test_upgrade_rolls_a_new_app_version_out(host, cluster, rayvars, tmp_path):
    # A copy of the app with a new version number stands in for the next release.
    shutil.copytree(ROOT / "app", tmp_path / "app")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    init = tmp_path / "app" / "src" / "salience" / "__init__.py"
    init.write_text(
        re.sub(r'(?m)^__version__ = "[^"]+"', '__version__ = "99.0.0"', init.read_text())
    )
    run_playbook(host, "upgrade.yml", "-e", json.dumps({"ray_node_app_projects": [str(tmp_path)]}))
    for ip in cluster["ips"].values():
        status, body = http(f"http://{ip}:{rayvars['ray_serve_http_port']}/healthz")
        assert status == 200, body
        assert body["version"] == "99.0.0", (ip, body)
        status, body = http(
            f"http://{ip}:{rayvars['ray_serve_http_port']}/score/salience", "POST", SEED
        )
        assert body["scores"] == [pytest.approx(0.15)]
