"""The cluster site.yml builds: every node alive, replicas on the workers, every :8000 serving.

Runs once, from the head's point of view; the other hosts are reached through the same
Ansible inventory Molecule made.
"""

import re
import urllib.error
import urllib.request

import pytest

from conftest import (
    IP_CMD,
    agree,
    diagnose,
    http,
    peer,
    ready,
    run_playbook,
    status_json,
    wait_until,
)

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


def test_status_and_diagnose_pass_a_healthy_cluster(host, cluster):
    done, document = status_json(host, strict=True)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Problems: none, the cluster is healthy" in done.stdout, done.stdout[-4000:]
    assert document["healthy"], document["checks"]
    assert ready(document)["status"] == "True", document["conditions"]
    assert {n["name"]: ready(n)["status"] for n in document["nodes"]} == dict.fromkeys(
        cluster["ips"], "True"
    )
    assert {a["name"]: ready(a)["status"] for a in document["applications"]} == dict.fromkeys(
        [a["name"] for a in document["applications"]], "True"
    )
    done, checks = diagnose(host, "-e", "diagnose_strict=true")
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(c["ok"] for c in checks.values()), checks
    agree(document, checks)


def test_status_and_diagnose_name_a_stopped_worker(host, cluster, dashboard, rayvars):
    """With one worker's unit stopped, status_strict fails and names it, diagnose fails the
    checks that see it; once it runs again, it is an alive Ray node (the next test shows
    status.yml passing the whole cluster after start.yml)."""
    worker = next(n for n, ip in cluster["ips"].items() if ip in cluster["workers"])
    unit = rayvars["ray_worker_service_name"]
    cluster["hosts"][worker].run_test(f"systemctl stop {unit}")
    try:
        done, document = status_json(host, strict=True)
        assert done.returncode != 0, done.stdout[-4000:]
        assert f"{worker}: unit {unit} is inactive" in done.stdout, done.stdout[-4000:]
        nodes = {n["name"]: n for n in document["nodes"]}
        assert (ready(nodes[worker])["status"], ready(nodes[worker])["reason"]) == (
            "False",
            "UnitNotActive",
        ), nodes[worker]
        assert nodes[worker]["ray_state"] in ("DEAD", "MISSING"), nodes[worker]
        assert ready(document)["status"] == "False", document["conditions"]
        done, checks = diagnose(host, "-e", "diagnose_strict=true")
        assert done.returncode != 0, checks
        assert not checks[1]["ok"], checks[1]
        assert f"{worker}: unit {unit} is inactive" in checks[1]["detail"], checks[1]
        assert f"journalctl -n 100 -u {unit} on {worker}" in checks[1]["fix"], checks[1]
        # Serve may still be replacing the worker's replicas: the checks of units and nodes
        # stay put while the unit is stopped, the applications' may not.
        agree(document, checks, ids=("units_active", "dashboard", "nodes_alive"))
    finally:
        cluster["hosts"][worker].run_test(f"systemctl start {unit}")
    # Back as a Ray node; that status.yml passes the whole cluster again is shown after
    # start.yml, next (one wait for Serve to settle instead of two).
    assert wait_until(lambda: cluster["ips"][worker] in alive_nodes(dashboard))


def test_stop_then_start_comes_back_serving(host, cluster, dashboard, rayvars):
    """stop.yml closes every node's Serve port; start.yml brings every node back serving, and
    status.yml then passes the cluster (strict), the worker stopped before included."""
    run_playbook(host, "playbooks/stop.yml")
    for ip in cluster["ips"].values():
        with pytest.raises(urllib.error.URLError, match=r"refused|timed out|reset"):
            urllib.request.urlopen(
                f"http://{ip}:{rayvars['ray_serve_http_port']}/-/healthz", timeout=5
            )
    run_playbook(host, "playbooks/start.yml")
    assert alive_nodes(dashboard) >= set(cluster["ips"].values())
    for ip in cluster["ips"].values():
        status, body = http(
            f"http://{ip}:{rayvars['ray_serve_http_port']}/score/salience", "POST", SEED
        )
        assert status == 200, body
        assert body["scores"] == [pytest.approx(0.15)]
    runs = []
    assert wait_until(
        lambda: (
            runs.append(
                run_playbook(host, "playbooks/status.yml", "-e", "status_strict=true", check=False)
            )
            or runs[-1].returncode == 0
        ),
        timeout=240,
        step=5,
    )
    # The report links Prometheus' console pages, the cluster's and each application's, on
    # the monitoring host at the inventory's Prometheus port; each link answers.
    links = re.findall(r"(http://[^\s']+/consoles/rayforge-[^\s']+)", runs[-1].stdout)
    port = rayvars["prometheus_port"]
    assert any(link.endswith("/rayforge-cluster.html") for link in links), runs[-1].stdout[-3000:]
    for app in rayvars["ray_serve_applications"]:
        page = f"rayforge-serve.html?application={app['name']}"
        assert any(link.endswith(page) for link in links), links
    for link in links:
        assert f":{port}/consoles/" in link, link
        status, body = http(link)
        assert status == 200, f"{link}: {status} {str(body)[:500]}"
        assert "<html" in body, body
