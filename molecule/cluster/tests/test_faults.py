"""Faults under load: what the cluster loses when something breaks, and how fast it serves again.

Each test starts a bounded load client (tests/support/load_client.py) that posts the first
application's smoke-test request to every node's Serve port, on the addresses the running
containers have now; lets it run a few seconds; makes the fault; waits until every node has
answered 2xx for a while or the recovery limit passes; and asserts on what the client saw:
failed requests per node and seconds until each node served for good. Expected values (ports,
unit names, applications, timeouts) come from the scenario's inventory over the role defaults.

These run after test_cluster.py (file order) and leave the cluster serving.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from load_client import LoadClient, describe, report

from conftest import IP_CMD, ROOT, peer

testinfra_hosts = ["ansible://ray_head"]

BASELINE_S = 5  # load before the fault, to see that every node served
STEADY_S = 10  # every node answering 2xx this long counts as serving again
LOAD_LIMIT_S = 420  # the load client stops by itself after this, whatever happens


@pytest.fixture
def nodes(host):
    groups = host.ansible.get_variables()["groups"]
    head = groups["ray_head"][0]
    hosts = {name: peer(host, name) for name in [head, *groups["ray_workers"]]}
    balancers = {name: peer(host, name) for name in groups.get("lab_load_balancer", [])}
    return {
        "head": head,
        "workers": list(groups["ray_workers"]),
        "hosts": hosts,
        "ips": {name: h.check_output(IP_CMD) for name, h in hosts.items()},
        "balancers": {name: h.check_output(IP_CMD) for name, h in balancers.items()},
    }


@pytest.fixture
def app(rayvars):
    """The first application with a smoke test: its request is the load."""
    return next(a for a in rayvars["ray_serve_applications"] if "smoke_test" in a)


@pytest.fixture
def targets(nodes, rayvars, app):
    """Every node's Serve port and the load balancer's (which listens on the same port)."""
    prefix = (app.get("route_prefix") or "/").rstrip("/")
    path = prefix + app["smoke_test"]["path"]
    ips = {**nodes["ips"], **nodes["balancers"]}
    return {name: f"http://{ip}:{rayvars['ray_serve_http_port']}{path}" for name, ip in ips.items()}


def serving_steadily(client: LoadClient, names, since: float) -> bool:
    """Every named target answered only 2xx during the last STEADY_S seconds (after SINCE)."""
    now = client.now()
    if now - since < STEADY_S:
        return False
    window = [s for s in list(client.samples) if s.sent >= max(since, now - STEADY_S)]
    for name in names:
        mine = [s for s in window if s.target == name]
        if not mine or any(s.outcome != "ok" for s in mine):
            return False
    return True


def under_load(targets, app, fault, limit_s: float):
    """Runs FAULT (a callable taking the client, returning a dict of facts) under load; returns
    (reports since the fault, facts, the client). Waits until every node serves steadily or
    LIMIT_S passes. facts["fault_at"] is when the fault started, on the client's clock."""
    body = json.dumps(app["smoke_test"]["body"]).encode()
    with LoadClient(targets, body, max_seconds=LOAD_LIMIT_S) as client:
        time.sleep(BASELINE_S)
        base = report(list(client.samples))
        assert all(r.failed == 0 and r.total > 0 for r in base.values()), describe(base)
        t_fault = client.now()
        facts = {"fault_at": t_fault, **(fault(client) or {})}
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not serving_steadily(client, targets, t_fault):
            time.sleep(1)
    return report(client.samples, since=t_fault), facts, client


def unit_active_at(node_host, unit: str, client: LoadClient) -> float | None:
    """When UNIT last became active, in seconds on the load client's clock (containers share
    the kernel's monotonic clock with this process)."""
    out = node_host.check_output(f"systemctl show {unit} -p ActiveEnterTimestampMonotonic")
    usec = int(out.split("=", 1)[1] or 0)
    return usec / 1e6 - client._t0 if usec else None


def wait_active(node_host, unit: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while node_host.run(f"systemctl is-active {unit}").stdout.strip() != "active":
        assert time.monotonic() < deadline, f"{unit} not active after {timeout} s"
        time.sleep(1)


def test_head_killed_workers_lose_nothing_and_head_serves_again(nodes, targets, app, rayvars):
    head = nodes["hosts"][nodes["head"]]
    unit = rayvars["ray_head_service_name"]

    def kill_head(client):
        before = unit_active_at(head, unit, client)
        head.run_test(f"systemctl kill --signal=KILL {unit}")
        time.sleep(rayvars["ray_head_restart_sec"] + 2)
        wait_active(head, unit)
        return {"before": before}

    reports, facts, client = under_load(targets, app, kill_head, limit_s=240)
    print(describe(reports))
    for name in [*nodes["workers"], *nodes["balancers"]]:
        assert reports[name].failed == 0, describe(reports)
    active = unit_active_at(head, unit, client)
    assert active is not None
    assert active != facts["before"], "the head unit did not restart"
    served = reports[nodes["head"]].recovered_after
    assert served is not None, describe(reports)
    # The head's port serves again within 60 s of its unit being active again.
    after_active = facts["fault_at"] + served - active
    print(
        f"head unit active {active - facts['fault_at']:.1f} s after the kill; "
        f"its port serving {after_active:.1f} s after that"
    )
    assert after_active <= 60, describe(reports)


def test_failed_deploy_rolls_back_without_losing_a_request(
    host, nodes, targets, app, rayvars, dashboard
):
    """A deploy that cannot fit (more replicas than the cluster has CPUs for) fails after
    ray_serve_deploy_timeout and is replaced by the last healthy config."""
    timeout_s = 40
    too_big = json.loads(json.dumps(rayvars["ray_serve_applications"]))
    for application in too_big:
        for deployment in application.get("deployments", []):
            deployment["num_replicas"] = 64
    extra = {"ray_serve_applications": too_big, "ray_serve_deploy_timeout": timeout_s}
    inventory = host.backend.ansible_inventory
    run = {}

    def bad_deploy(client):
        run["done"] = subprocess.run(
            [
                "ansible-playbook",
                "-i",
                inventory,
                str(ROOT / "site.yml"),
                "--tags",
                "serve",
                "-e",
                json.dumps(extra),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        return {"finished": client.now()}

    reports, facts, _ = under_load(targets, app, bad_deploy, limit_s=timeout_s + 60)
    done = run["done"]
    print(describe(reports))
    assert done.returncode != 0, done.stdout[-4000:]
    assert "Rolled back to the last config that became healthy" in done.stdout, done.stdout[-6000:]
    assert "it serves again" in done.stdout, done.stdout[-6000:]
    assert all(r.failed == 0 for r in reports.values()), describe(reports)
    # The previous config serves again within ray_serve_deploy_timeout + 60 s of the deploy.
    assert facts["finished"] - facts["fault_at"] <= timeout_s * 2 + 60, facts
    status, body = dashboard.get("/api/serve/applications/")
    assert status == 200, body
    deployment = body["applications"][app["name"]]["deployments"][app["deployments"][0]["name"]]
    assert deployment["target_num_replicas"] == app["deployments"][0]["num_replicas"], deployment


def test_worker_restart_drains_first_and_only_refuses_while_down(nodes, targets, app, rayvars):
    """A restarted worker drains (its gate refuses new connections), is down, and takes
    requests again only once it routes them: its clients see refused connections and nothing
    else; the other nodes and the load balancer lose nothing."""
    worker = nodes["workers"][0]
    unit = rayvars["ray_worker_service_name"]

    def restart_worker(client):
        nodes["hosts"][worker].run_test(f"systemctl restart {unit}")

    reports, _, _ = under_load(targets, app, restart_worker, limit_s=180)
    print(describe(reports))
    for name, r in reports.items():
        if name != worker:
            assert r.failed == 0, describe(reports)
    mine = reports[worker]
    assert set(mine.outcomes) <= {"ok", "refused"}, describe(reports)
    assert mine.recovered_after is not None, describe(reports)
    assert mine.recovered_after <= 90, describe(reports)
