"""Prometheus runs on the monitoring host (the inventory's group monitoring, here the load
balancer's host, outside the cluster; else the head) and scrapes every Ray node's Ray metrics
(job ray) and node exporter (job node), on the ports the scenario's inventory moved.

Prometheus is asked from the controller, over the network, as an operator would; each
cluster host checks that it is a target of both jobs that is up and that its metrics arrive.
The alert rules are loaded, evaluate without error, and read only metrics the cluster
exports. A monitoring host outside the cluster runs no Ray.
"""

from __future__ import annotations

import time
import urllib.parse

import pytest
from promql import metric_names

from conftest import IP_CMD, http, peer

testinfra_hosts = ["ansible://ray_head", "ansible://ray_workers", "ansible://monitoring"]

UNIT = "prometheus"
CONFIG = "/etc/prometheus/prometheus.yml"


def groups(host) -> dict:
    return host.ansible.get_variables()["groups"]


def monitoring_hosts(host) -> list[str]:
    """Where the role runs: group monitoring if it has hosts, else the head (site.yml's rule)."""
    return groups(host).get("monitoring") or groups(host)["ray_head"]


def cluster_hosts(host) -> list[str]:
    return groups(host)["ray_head"] + groups(host).get("ray_workers", [])


def is_node(host) -> bool:
    return host.ansible.get_variables()["inventory_hostname"] in cluster_hosts(host)


def journal(host) -> str:
    return host.run(f"journalctl -u {UNIT} -n 60 --no-pager").stdout


@pytest.fixture
def monitor(host):
    return peer(host, monitoring_hosts(host)[0])


@pytest.fixture
def prometheus(monitor, rayvars):
    """GET an API path of Prometheus from the controller: the `data` of its JSON answer."""
    base = f"http://{monitor.check_output(IP_CMD)}:{rayvars['prometheus_port']}"

    def get(path: str, **params: str) -> object:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http(base + path + query)
        assert status == 200, f"{path}: {status} {body}\n{journal(monitor)}"
        assert body["status"] == "success", body
        return body["data"]

    return get


# The jobs with one target per cluster node, and the inventory's port of each.
NODE_JOBS = {"ray": "ray_metrics_export_port", "node": "ray_node_exporter_port"}


@pytest.fixture
def metrics_target(host, node_ip, rayvars) -> str:
    """This node's scrape target: its advertised address and Ray's metrics port."""
    if not is_node(host):
        pytest.skip("cluster nodes only")
    return f"{node_ip}:{rayvars['ray_metrics_export_port']}"


def ray_targets(prometheus, job: str = "ray") -> list[dict]:
    return [t for t in prometheus("/api/v1/targets")["activeTargets"] if t["labels"]["job"] == job]


def query_until(prometheus, promql: str, expect, seconds: float = 90) -> list[dict]:
    """Instant query results once expect(results) holds (a new target needs a scrape or two)."""
    deadline = time.monotonic() + seconds
    while True:
        result = prometheus("/api/v1/query", query=promql)["result"]
        if expect(result) or time.monotonic() > deadline:
            return result
        time.sleep(3)


def test_prometheus_enabled_and_active_on_monitoring_host_only(host, rayvars):
    name = host.ansible.get_variables()["inventory_hostname"]
    if name in monitoring_hosts(host):
        unit = host.service(UNIT)
        assert unit.is_enabled, journal(host)
        assert unit.is_running, journal(host)
        assert host.socket(f"tcp://0.0.0.0:{rayvars['prometheus_port']}").is_listening
    else:
        assert not host.package("prometheus").is_installed


def test_monitoring_host_outside_the_cluster_runs_no_ray(host, rayvars):
    """The role reads the ray and ray_serve roles' settings; it installs none of Ray."""
    if is_node(host):
        pytest.skip("monitoring hosts outside the cluster only")
    assert not host.file(rayvars["ray_venv_dir"]).exists
    for unit in ("ray-head", "ray-worker", rayvars["ray_firewall_service_name"]):
        assert not host.file(f"/etc/systemd/system/{unit}.service").exists, unit
    assert not host.package("prometheus-node-exporter").is_installed


def test_config_passes_promtool(host):
    if host.ansible.get_variables()["inventory_hostname"] not in monitoring_hosts(host):
        pytest.skip("monitoring host only")
    out = host.run(f"promtool check config {CONFIG}")
    assert out.rc == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_command_line_sets_listen_address_and_retention(host, rayvars):
    if host.ansible.get_variables()["inventory_hostname"] not in monitoring_hosts(host):
        pytest.skip("monitoring host only")
    cmdline = host.check_output(f"systemctl show -p MainPID --value {UNIT} | xargs ps -o args= -p")
    assert f"--web.listen-address={rayvars['prometheus_listen_address']}:" in cmdline
    assert f"--storage.tsdb.retention.time={rayvars['prometheus_retention_time']}" in cmdline


@pytest.mark.parametrize("job", sorted(NODE_JOBS))
def test_one_up_target_per_cluster_node(host, prometheus, rayvars, job):
    expected = {
        f"{peer(host, n).check_output(IP_CMD)}:{rayvars[NODE_JOBS[job]]}"
        for n in cluster_hosts(host)
    }
    targets = ray_targets(prometheus, job)
    assert sorted(t["labels"]["instance"] for t in targets) == sorted(expected)
    down = [(t["labels"]["instance"], t["health"], t["lastError"]) for t in targets]
    assert all(t["health"] == "up" for t in targets), down


@pytest.mark.parametrize("job", sorted(NODE_JOBS))
def test_this_node_is_an_up_target_with_its_name_and_role(host, prometheus, rayvars, job):
    if not is_node(host):
        pytest.skip("cluster nodes only")
    names = host.ansible.get_variables()
    target = f"{host.check_output(IP_CMD)}:{rayvars[NODE_JOBS[job]]}"
    mine = [t for t in ray_targets(prometheus, job) if t["labels"]["instance"] == target]
    assert len(mine) == 1, ray_targets(prometheus, job)
    assert mine[0]["health"] == "up", mine[0]["lastError"]
    assert mine[0]["labels"]["node"] == names["inventory_hostname"]
    role = "head" if "ray_head" in names["group_names"] else "worker"
    assert mine[0]["labels"]["role"] == role


@pytest.mark.parametrize("job", sorted(NODE_JOBS))
def test_up_query_has_one_series_per_node_at_1(host, prometheus, job):
    nodes = cluster_hosts(host)
    result = query_until(
        prometheus, f'up{{job="{job}"}}', lambda r: len(r) == len(nodes) and all_one(r)
    )
    assert sorted(s["metric"]["node"] for s in result) == sorted(nodes), result
    assert all_one(result), result


@pytest.mark.parametrize(
    ("job", "port_var"),
    [
        ("ray_dashboard", "ray_dashboard_metrics_port"),
        ("ray_autoscaler", "ray_autoscaler_metrics_port"),
    ],
)
def test_the_heads_own_exporters_are_up_targets(host, prometheus, rayvars, job, port_var):
    """Jobs ray_dashboard (the head dashboard's own metrics, what RayDashboardDown reads) and
    ray_autoscaler (the autoscaler monitor's node counts, which Ray's dashboards read), each on
    the inventory's port of the head."""
    heads = host.ansible.get_variables()["groups"]["ray_head"]
    expected = [f"{peer(host, n).check_output(IP_CMD)}:{rayvars[port_var]}" for n in heads]
    targets = ray_targets(prometheus, job)
    assert [t["labels"]["instance"] for t in targets] == expected, targets
    assert [t["labels"]["node"] for t in targets] == heads, targets
    assert all(t["health"] == "up" for t in targets), [t["lastError"] for t in targets]


def test_every_node_reports_its_serve_gate(host, prometheus):
    """rayforge_serve_gate_open, written by each node's Serve gate into the node exporter's
    textfile directory, has a series for every node (a gate started before the directory
    existed could never write it)."""
    nodes = cluster_hosts(host)
    result = query_until(
        prometheus, "rayforge_serve_gate_open", lambda r: len(r) == len(nodes), seconds=60
    )
    assert sorted(s["metric"]["node"] for s in result) == sorted(nodes), result


def all_one(result: list[dict]) -> bool:
    return all(s["value"][1] == "1" for s in result)


def test_ray_metrics_of_this_node_are_stored(prometheus, metrics_target):
    # Exported by every node's Ray agent: the node's logical CPUs.
    result = query_until(
        prometheus, f'ray_node_cpu_count{{job="ray",instance="{metrics_target}"}}', bool
    )
    assert result, f"no ray_node_cpu_count from {metrics_target}"
    assert float(result[0]["value"][1]) > 0, result


# Metrics an alert reads that a healthy cluster may never have produced: they appear with
# the event they count (Ray registers a counter's series at its first increment).
EVENT_ONLY_METRICS = {
    # Workers the memory monitor killed: none on a healthy cluster.
    "ray_memory_manager_worker_eviction_total",
}


def alert_rules(prometheus) -> list[dict]:
    return [
        rule
        for group in prometheus("/api/v1/rules", type="alert")["groups"]
        for rule in group["rules"]
    ]


def test_alert_rules_are_loaded_and_evaluate(host, prometheus):
    """Every alert rule the role installed is loaded, and each evaluates without an error
    (health ok) against what the cluster exports."""
    if host.ansible.get_variables()["inventory_hostname"] not in monitoring_hosts(host):
        pytest.skip("monitoring host only")
    deadline = time.monotonic() + 90
    while True:
        rules = alert_rules(prometheus)
        if (rules and all(r["health"] != "unknown" for r in rules)) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert rules, "no alert rule loaded"
    bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad


def test_every_metric_an_alert_reads_is_stored(host, prometheus):
    """A rule on a metric the cluster does not export never fires: every metric an alert
    reads is among the names Prometheus has stored from this cluster (but EVENT_ONLY_METRICS,
    which appear with their first event)."""
    if host.ansible.get_variables()["inventory_hostname"] not in monitoring_hosts(host):
        pytest.skip("monitoring host only")
    stored = set(prometheus("/api/v1/label/__name__/values"))
    missing = {
        rule["name"]: sorted(metric_names(rule["query"]) - stored - EVENT_ONLY_METRICS)
        for rule in alert_rules(prometheus)
    }
    missing = {name: metrics for name, metrics in missing.items() if metrics}
    assert not missing, missing
