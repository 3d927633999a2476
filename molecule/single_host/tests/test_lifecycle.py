"""What an operator does to a cluster over its life, in order, each effect asserted: a
check-mode run of site.yml on the converged host, an application removed from the inventory,
restart-serve, teardown keeping the install, a full teardown and a second one, and site.yml
building it all again.

The tests run in file order and each starts from where the one before left the host (after
test_applications.py). Paths, names and applications come from the scenario's inventory over the
role defaults; the playbooks run with this scenario's inventory, as an operator runs them.
"""

from __future__ import annotations

import json
import re
import time

from load_client import LoadClient, describe, report
from test_install import KEPT_BY_TEARDOWN, ray_processes

from conftest import head_api_headers, head_dashboard, http, run_playbook, smoke

testinfra_hosts = ["ansible://ray_head"]


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    out = {}
    for name, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", stdout, re.M):
        out[name] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counters)}
    assert out, stdout[-3000:]
    return out


def serve_applications(dashboard) -> dict:
    status, body = dashboard.get("/api/serve/applications/")
    assert status == 200, body
    return body["applications"]


def replica_ids(dashboard, application) -> set[str]:
    deployed = serve_applications(dashboard)[application["name"]]
    return {r["replica_id"] for d in deployed["deployments"].values() for r in d["replicas"]}


def project_leftovers(host, rayvars) -> list[str]:
    """Everything of the project still on the host: its directories, units, user, table."""
    left = [
        path
        for path in (
            rayvars["ray_venv_dir"],
            rayvars["ray_install_dir"],
            rayvars["ray_config_dir"],
            rayvars["ray_data_dir"],
        )
        if host.file(path).exists
    ]
    found = host.run(
        "find /etc /opt /srv /usr/local /var/lib /run/systemd -xdev "
        "\\( -name '*rayforge*' -o -name 'ray-head*' -o -name 'ray-worker*' \\) 2>/dev/null"
    ).stdout.split()
    left += found
    if host.user(rayvars["ray_user"]).exists:
        left.append(f"user {rayvars['ray_user']}")
    if host.run(f"nft list table inet {rayvars['ray_firewall_table']}").rc == 0:
        left.append(f"nftables table inet {rayvars['ray_firewall_table']}")
    # Nothing the project started keeps a port open (Prometheus', Alertmanager's and the node
    # exporter's packages stay, stopped). The find above also sees rayforge's metrics files.
    for name in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"):
        service = host.service(name)
        if service.is_running or service.is_enabled:
            left.append(f"{name}.service running or enabled")
    return left


def test_check_mode_on_the_converged_host_changes_nothing(host):
    done = run_playbook(host, "site.yml", "--check", "--diff")
    for name, counters in recap(done.stdout).items():
        assert counters["failed"] == 0, (name, counters)
        assert counters["changed"] == 0, (name, counters, done.stdout[-6000:])


def test_an_application_removed_from_the_inventory_is_gone_from_serve(
    host, rayvars, dashboard, node_ip
):
    kept, removed = rayvars["ray_serve_applications"][0], rayvars["ray_serve_applications"][1]
    run_playbook(host, "site.yml", "-e", json.dumps({"ray_serve_applications": [kept]}))
    # The deploy waits until Serve has deleted it (it is DELETING for a while before).
    apps = serve_applications(dashboard)
    assert removed["name"] not in apps, apps[removed["name"]]
    status, _ = smoke(node_ip, rayvars, removed)
    assert status == 404, f"{removed['name']} still routed after its removal"
    status, body = smoke(node_ip, rayvars, kept)
    assert status == 200, body


def test_restart_serve_brings_fresh_replicas_that_answer(host, rayvars, dashboard, node_ip):
    # The inventory as the test before left it: the first application only.
    application = rayvars["ray_serve_applications"][0]
    before = replica_ids(dashboard, application)
    run_playbook(
        host,
        "playbooks/restart-serve.yml",
        "-e",
        json.dumps({"ray_serve_applications": [application]}),
    )
    after = replica_ids(dashboard, application)
    assert after, serve_applications(dashboard)
    assert not before & after, f"replicas survived the restart: {before & after}"
    status, body = smoke(node_ip, rayvars, application)
    assert status == 200, body


def test_rotating_to_the_running_token_is_refused_before_anything_stops(host, rayvars, node_ip):
    """A vaulted ray_auth_token that is still the installed one: the run fails naming the fix,
    and the cluster was not stopped."""
    token = head_api_headers(host, rayvars)["Authorization"].split(" ", 1)[1]
    done = run_playbook(
        host,
        "playbooks/rotate-token.yml",
        "-e",
        json.dumps({"ray_auth_token": token}),
        check=False,
    )
    assert done.returncode != 0
    assert "is the token the cluster already runs with" in done.stdout, done.stdout[-3000:]
    assert token not in done.stdout + done.stderr
    assert host.service(rayvars["ray_head_service_name"]).is_running
    application = next(a for a in rayvars["ray_serve_applications"] if "smoke_test" in a)
    status, body = smoke(node_ip, rayvars, application)
    assert status == 200, body


ROTATION_LIMIT_S = 300  # the load client stops by itself after this, whatever happens
ROTATION_STEADY_S = 6  # answering 2xx this long after the run counts as serving again


def test_rotate_token_restarts_the_cluster_with_a_new_token_only(host, rayvars, node_ip):
    """rotate-token.yml under load: the cluster runs with a new token and refuses the old
    one; serving stops for the restart (Serve's port refuses connections: the node is
    stopped or not routing yet; nothing else), and serves again after the run."""
    old = head_api_headers(host, rayvars)
    assert old, "token authentication is off in this scenario: nothing to rotate"
    application = next(a for a in rayvars["ray_serve_applications"] if "smoke_test" in a)
    test = application["smoke_test"]
    prefix = application.get("route_prefix", "/").rstrip("/")
    url = f"http://{node_ip}:{rayvars['ray_serve_http_port']}{prefix}{test['path']}"
    body = json.dumps(test["body"]).encode()
    with LoadClient({"head": url}, body, max_seconds=ROTATION_LIMIT_S) as client:
        time.sleep(3)
        start = client.now()
        done = run_playbook(host, "playbooks/rotate-token.yml", check=False)
        ran = client.now() - start
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            last = [s for s in list(client.samples) if s.sent >= client.now() - ROTATION_STEADY_S]
            if last and all(s.outcome == "ok" for s in last):
                break
            time.sleep(1)
        client.covered()
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    seen = report(client.samples, since=start)["head"]
    failures: dict[str, list[float]] = {}  # outcome: when, in seconds from the run's start
    for s in client.samples:
        if s.sent >= start and s.outcome != "ok":
            failures.setdefault(s.outcome, []).append(s.sent - start)
    failed_at = [t for times in failures.values() for t in times]
    print(
        f"rotate-token.yml ran {ran:.1f} s; {describe({'head': seen})}; "
        f"first failure {min(failed_at, default=0):.1f} s after the start; "
        + "; ".join(
            f"{k} from {min(t):.1f} s to {max(t):.1f} s" for k, t in sorted(failures.items())
        )
    )
    assert set(seen.outcomes) <= {"ok", "refused"}, describe({"head": seen})
    assert seen.recovered_after is not None, describe({"head": seen})
    assert seen.recovered_after <= ran + 30, describe({"head": seen})
    new = head_api_headers(host, rayvars)
    assert new != old
    base = f"http://{node_ip}:{rayvars['ray_dashboard_port']}/api/serve/applications/"
    assert http(base, headers=old)[0] in (401, 403)
    status, answer = http(base, headers=new)
    assert status == 200, answer


def test_teardown_needs_confirmation_and_changes_nothing_without_it(host, rayvars):
    done = run_playbook(host, "playbooks/teardown.yml", check=False)
    assert done.returncode != 0
    assert "teardown_confirm=yes" in done.stdout, done.stdout[-3000:]
    assert host.service(rayvars["ray_head_service_name"]).is_running


def test_teardown_keeping_the_install_keeps_only_the_install(host, rayvars):
    run_playbook(
        host,
        "playbooks/teardown.yml",
        "-e",
        "teardown_confirm=yes",
        "-e",
        "teardown_keep_install=true",
    )
    assert not host.service(rayvars["ray_head_service_name"]).is_running
    # The install as the ray_node role alone leaves it (less the data directory), and nothing
    # of Ray running.
    running = ray_processes(host, rayvars)
    assert not running, running
    assert not host.file(rayvars["ray_config_dir"]).exists
    assert not host.file(rayvars["ray_data_dir"]).exists
    out = host.check_output(f"{rayvars['ray_venv_dir']}/bin/ray --version")
    assert rayvars["ray_version"] in out
    for check in KEPT_BY_TEARDOWN:
        check(host, rayvars)


def test_teardown_leaves_nothing_and_a_second_one_changes_nothing(host, rayvars, tmp_path):
    """Nothing of the project stays on the host, nor the status JSON on the controller (which
    a reader would take for the cluster's state); a second teardown changes nothing."""
    status = tmp_path / "status.json"
    written = ("-e", f"ray_status_json_path={status}")
    run_playbook(host, "playbooks/status.yml", *written)
    assert json.loads(status.read_text())["schema"], "status.yml wrote no status JSON"
    run_playbook(host, "playbooks/teardown.yml", "-e", "teardown_confirm=yes", *written)
    assert project_leftovers(host, rayvars) == []
    assert not status.exists()
    done = run_playbook(host, "playbooks/teardown.yml", "-e", "teardown_confirm=yes", *written)
    for name, counters in recap(done.stdout).items():
        assert counters["changed"] == 0, (name, counters, done.stdout[-6000:])
        assert counters["failed"] == 0, (name, counters)


def test_site_builds_it_all_again(host, rayvars, node_ip):
    run_playbook(host, "site.yml")
    # The dashboard and its token exist again only now.
    deployed = serve_applications(head_dashboard(host, rayvars))
    for application in rayvars["ray_serve_applications"]:
        assert deployed[application["name"]]["status"] == "RUNNING", deployed
        status, body = smoke(node_ip, rayvars, application)
        assert status == 200, (application["name"], body)
