"""What an operator looks at: Prometheus' console pages (the prometheus role) and Ray's own
Grafana dashboards, generated from the installed Ray (the grafana role), checked against the
scenario's Prometheus after traffic.

Every PromQL expression of every provisioned dashboard and of both console pages is evaluated
against the monitoring host's Prometheus while the salience application is under a bounded
load (answered and refused requests): each returns series, except the panels listed in
NO_DATA_IN_THE_SCENARIO, each with the reason it cannot have data here. The console pages are
then loaded in a real browser (Debian's headless Chromium, on the controller): no script
error, no missing asset, and every graph holds data points. Values (ports, the cluster's name,
the dashboards' directory, the Ray version) come from the scenario's inventory.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from load_client import LoadClient, describe, report
from promql import metric_names

from conftest import IP_CMD, http, peer, run_playbook, scenario_vars, smoke_path

testinfra_hosts = ["ansible://ray_head"]

CONSOLES = ("rayforge-cluster.html", "rayforge-serve.html")
# The load before any query: a rate over [1m] needs two scrapes of it, whatever the interval.
LOAD_S = 45.0
LOAD_MAX_REQUESTS = 40_000
# Queries that return nothing at first are asked again for this long (a scrape to come).
RETRY_S = 45.0
CHROMIUM = os.environ.get("RAYFORGE_CHROMIUM", "chromium")

# Dashboards of a Ray library that does not run in the scenario: nothing exports their metrics.
IDLE_LIBRARIES = {
    "rayDataDashboard": "no Ray Data dataset runs in the scenario",
    "rayDataLlmDashboard": "no Ray Data LLM batch job runs in the scenario",
    "rayServeLlmDashboard": "no vLLM engine runs in the scenario",
    "rayServeLlmSglangDashboard": "no SGLang engine runs in the scenario",
    "rayTrainDashboard": "no Ray Train run in the scenario",
}
# What the other dashboards may ask and find nothing of here, each with the reason: a query
# that returns nothing passes only when it names one of these metrics (or, for a filter of a
# metric that has data, the dashboard, panel and filter). Each entry must still be asked by
# some dashboard, so the list follows Ray's.
_GPU = "no GPU here (worker-1's device node is a stand-in: no driver reports it)"
_GRPC = "Serve's gRPC proxy is off: rayforge's applications serve HTTP"
_MULTIPLEX = "no application of the scenario multiplexes models"
NO_DATA_METRICS: dict[str, str] = {
    "ray_node_gpus_utilization": _GPU,
    "ray_node_gpus_available": _GPU,
    "ray_node_gram_used": _GPU,
    "ray_node_gram_available": _GPU,
    "ray_node_gpu_power_milliwatts": _GPU,
    "ray_node_gpu_temperature_celsius": _GPU,
    "ray_component_gpu_percentage": _GPU,
    "ray_component_gpu_memory_mb": _GPU,
    "ray_tpu_tensorcore_utilization": "no TPU here",
    "ray_tpu_memory_bandwidth_utilization": "no TPU here",
    "ray_serve_num_grpc_requests_total": _GRPC,
    "ray_serve_num_grpc_error_requests_total": _GRPC,
    "ray_serve_grpc_request_latency_ms_bucket": _GRPC,
    "ray_serve_num_ongoing_grpc_requests": _GRPC,
    "ray_serve_num_multiplexed_models": _MULTIPLEX,
    "ray_serve_multiplexed_models_load_counter_total": _MULTIPLEX,
    "ray_serve_multiplexed_models_unload_counter_total": _MULTIPLEX,
    "ray_serve_multiplexed_model_load_latency_ms_bucket": _MULTIPLEX,
    "ray_serve_multiplexed_model_unload_latency_ms_bucket": _MULTIPLEX,
    "ray_serve_registered_multiplexed_model_id": _MULTIPLEX,
    "ray_serve_multiplexed_get_model_requests_counter_total": _MULTIPLEX,
    "ray_memory_manager_worker_eviction_total": "no worker was killed for memory",
    "ray_node_manager_unexpected_worker_failure_total": "no worker process failed unexpectedly",
    "ray_serve_deployment_error_counter_total": (
        "no replica raised: the salience app answers a malformed request 4xx itself"
    ),
    "ray_placement_groups": "Serve made no placement group (no placement_group_bundles)",
    "ray_node_cgroup_mem_used": (
        "Ray reads /sys/fs/cgroup/memory.current, which a host's root cgroup (bare metal, and "
        "these hosts) has not"
    ),
    "ray_node_cgroup_mem_total": "as ray_node_cgroup_mem_used",
    "ray_serve_num_scheduling_tasks": (
        "Serve's request router reports it while requests wait for a replica; none waits here"
    ),
    "ray_serve_num_scheduling_tasks_in_backoff": "as ray_serve_num_scheduling_tasks",
    "autoscaler_recently_failed_nodes": (
        "the autoscaler counts nodes it launched itself; rayforge starts every node"
    ),
}
_PENDING = "the demand beyond the cluster's resources: nothing waits for resources here"
NO_DATA_FILTERS: dict[tuple[str, str, str], str] = {
    # Task panels that count retries only (the scenario's faults may retry some, or none).
    ("rayDefaultDashboard", "*", 'IsRetry!="0"'): "no task was retried",
    ("rayDefaultDashboard", "Logical CPUs Usage", "autoscaler_pending_resources"): _PENDING,
    ("rayDefaultDashboard", "Logical GPUs Usage", "autoscaler_pending_resources"): _PENDING,
    ("rayDefaultDashboard", "Logical Memory Usage", "autoscaler_pending_resources"): _PENDING,
}


def monitoring_host(host):
    groups = host.ansible.get_variables()["groups"]
    return peer(host, (groups.get("monitoring") or groups["ray_head"])[0])


@pytest.fixture(scope="module")
def scenario(host):
    """The monitoring host, its Prometheus as the controller reaches it, and the salience
    application's smoke-test URL on every node (once for the module: the load is shared)."""
    rayvars = scenario_vars(host.ansible.get_variables())
    monitor = monitoring_host(host)
    groups = host.ansible.get_variables()["groups"]
    app = next(a for a in rayvars["ray_serve_applications"] if "smoke_test" in a)
    nodes = groups["ray_head"] + groups["ray_workers"]
    port = rayvars["ray_serve_http_port"]
    urls = {
        name: f"http://{peer(host, name).check_output(IP_CMD)}:{port}{smoke_path(app)}"
        for name in nodes
    }
    return {
        "monitor": monitor,
        "prometheus": f"http://{monitor.check_output(IP_CMD)}:{rayvars['prometheus_port']}",
        "app": app,
        "urls": urls,
    }


@pytest.fixture(scope="module")
def traffic(scenario):
    """A bounded load on every node's Serve port for LOAD_S seconds before the queries, and
    on until the module ends, with a few malformed requests (4xx) among the answered ones."""
    app = scenario["app"]
    client = LoadClient(
        scenario["urls"],
        json.dumps(app["smoke_test"]["body"]).encode(),
        max_requests=LOAD_MAX_REQUESTS,
        max_seconds=600,
    ).start()
    try:
        for _ in range(20):
            url = next(iter(scenario["urls"].values()))
            status, body = http(url, "POST", b"{not json")
            assert 400 <= status < 500, f"a malformed request got {status}: {body}"
        time.sleep(LOAD_S)
        yield client
    finally:
        samples = client.stop()
    reports = report(samples)
    print("the load during the console checks:", describe(reports), sep="\n")
    assert all(r.total > 0 and r.failed == 0 for r in reports.values()), describe(reports)


def query(scenario, expr: str) -> list[dict]:
    url = f"{scenario['prometheus']}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http(url)
    assert status == 200, f"{expr}: {status} {body}"
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def console(scenario, page: str, **params: str) -> str:
    query_string = f"?{urllib.parse.urlencode(params)}" if params else ""
    status, body = http(f"{scenario['prometheus']}/consoles/{page}{query_string}")
    assert status == 200, f"{page}: {status} {body}"
    return body


def page_exprs(text: str) -> list[str]:
    """Every PromQL expression a rendered console page asks (its data-expr attributes)."""
    return [html.unescape(e) for e in re.findall(r'data-expr="([^"]*)"', text)]


def console_exprs(scenario, rayvars) -> dict[str, list[str]]:
    app = scenario["app"]["name"]
    return {
        "rayforge-cluster.html": page_exprs(console(scenario, "rayforge-cluster.html")),
        f"rayforge-serve.html?application={app}": page_exprs(
            console(scenario, "rayforge-serve.html", application=app)
        ),
    }


def dashboards(scenario, rayvars) -> dict[str, dict]:
    """uid -> dashboard, as the grafana role wrote them on the monitoring host."""
    directory = f"{rayvars['grafana_dashboards_dir']}/{rayvars['ray_version']}/dashboards"
    monitor = scenario["monitor"]
    names = monitor.check_output(f"ls {directory}").split()
    out = {}
    for name in names:
        dashboard = json.loads(monitor.file(f"{directory}/{name}").content_string)
        out[dashboard["uid"]] = dashboard
    return out


def panels(node: dict):
    for panel in node.get("panels") or []:
        yield panel
        yield from panels(panel)  # a row holds its panels


def substituted(expr: str, dashboard: dict, cluster: str) -> str:
    """EXPR with Grafana's variables as a viewer of every value would have them: the cluster's
    name for Cluster, every value (.*) for the others, Grafana's intervals as one minute."""
    values = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "interval": "1m"}
    for var in (dashboard.get("templating") or {}).get("list") or []:
        name = var["name"]
        choices = [c.strip() for c in str(var.get("query") or "").split(",") if c.strip()]
        if name == "Cluster":
            values[name] = cluster  # a plain name (the preflight): its own regex
        elif var.get("type") == "interval":
            values[name] = choices[0] if choices else "1m"
        elif var.get("type") == "custom":
            # All of a custom list: Grafana joins its values into one regex.
            values[name] = var.get("allValue") or "(" + "|".join(map(re.escape, choices)) + ")"
        else:
            values[name] = var.get("allValue") or ".*"
    for name in sorted(values, key=len, reverse=True):
        value = values[name]
        expr = expr.replace("${" + name + "}", value).replace("[[" + name + "]]", value)
        expr = re.sub(r"\$" + re.escape(name) + r"\b", lambda _m, v=value: v, expr)
    return expr


def dashboard_exprs(scenario, rayvars) -> dict[str, list[tuple[str, str]]]:
    """uid -> [(panel title, expression)], variables substituted."""
    out = {}
    for uid, dashboard in dashboards(scenario, rayvars).items():
        out[uid] = [
            (
                panel.get("title") or "",
                substituted(t["expr"], dashboard, rayvars["ray_cluster_name"]),
            )
            for panel in panels(dashboard)
            for t in panel.get("targets") or []
            if t.get("expr")
        ]
    return out


def excused(uid: str, title: str, expr: str) -> bool:
    """Whether EXPR (of panel TITLE of dashboard UID) may have no data here (listed)."""
    return bool(metric_names(expr) & set(NO_DATA_METRICS)) or any(
        k[0] == uid and k[1] in (title, "*") and k[2] in expr for k in NO_DATA_FILTERS
    )


def empty_after_retries(scenario, exprs: list[str]) -> list[str]:
    deadline = time.monotonic() + RETRY_S
    pending = list(exprs)
    while True:
        pending = [e for e in pending if not query(scenario, e)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(5)


def test_the_dashboards_are_ray_s_own_for_the_installed_version(scenario, rayvars):
    """Every dashboard Ray's generator makes is provisioned for this Ray version, beside the
    Grafana provisioning files, and no other version's directory is left to be served."""
    monitor = scenario["monitor"]
    base = rayvars["grafana_dashboards_dir"]
    version = rayvars["ray_version"]
    assert set(monitor.check_output(f"ls {base}").split()) == {version, "current"}
    found = dashboards(scenario, rayvars)
    assert {"rayDefaultDashboard", "rayServeDashboard", "rayServeDeploymentDashboard"} <= set(
        found
    ), sorted(found)
    assert len(found) >= 8, sorted(found)
    provider = monitor.file(f"{base}/{version}/provisioning/dashboards/rayforge.yml")
    # Through the link, so a running Grafana follows an upgrade (it reads provisioning only
    # when it starts).
    assert f"{base}/current/dashboards" in provider.content_string
    datasource = monitor.file(f"{base}/{version}/provisioning/datasources/rayforge.yml")
    assert str(rayvars["prometheus_port"]) in datasource.content_string


def test_an_old_ray_versions_dashboards_are_not_served_after_a_run(host, scenario, rayvars):
    """As after an upgrade from another Ray: that version's directory (left by the last run)
    goes at the next run of the monitoring play, `current` names the installed version, and
    the directory of something else there is kept."""
    monitor = scenario["monitor"]
    base = rayvars["grafana_dashboards_dir"]
    old, other = f"{base}/2.59.0", f"{base}/notes"
    stale = f"{old}/dashboards/rayDefaultDashboard.json"
    monitor.run_test(f"mkdir -p {old}/dashboards {other} && echo '{{}}' > {stale}")
    try:
        run_playbook(host, "playbooks/site.yml", "--tags", "monitoring")
        assert not monitor.file(old).exists, f"{old} is still served"
        assert monitor.file(other).is_directory, f"{other} was removed"
        assert monitor.file(f"{base}/current").linked_to == f"{base}/{rayvars['ray_version']}"
    finally:
        monitor.run(f"rm -rf {old} {other}")


def test_the_cluster_variable_finds_this_cluster_off_kubernetes(scenario, rayvars):
    """Ray's dashboards choose the cluster from ray_io_cluster, which only KubeRay sets; here
    Prometheus labels every node's metrics with the inventory's ray_cluster_name."""
    values = query(scenario, "count by (ray_io_cluster) (ray_node_network_receive_speed)")
    assert [v["metric"].get("ray_io_cluster") for v in values] == [rayvars["ray_cluster_name"]]


def test_every_console_and_dashboard_query_returns_series(scenario, rayvars, traffic):
    """After traffic, each expression of both console pages and of every dashboard returns
    series, but the dashboards of Ray libraries that do not run here and the queries that name
    a metric (or a filter) listed with the reason it has no data here: no query names a metric
    the installed Ray (or the node exporter, or rayforge) does not export, unless listed."""
    failures = []
    asked = 0
    for page, exprs in console_exprs(scenario, rayvars).items():
        assert exprs, f"{page} asks nothing"
        asked += len(exprs)
        failures += [f"console {page}: {e}" for e in empty_after_retries(scenario, exprs)]
    named, filtered = set(), set()
    for uid, exprs in dashboard_exprs(scenario, rayvars).items():
        if uid in IDLE_LIBRARIES:
            continue
        asked += len(exprs)
        by_expr = {e: t for t, e in exprs}
        named |= {m for _, e in exprs for m in metric_names(e)}
        filtered |= {
            k
            for k in NO_DATA_FILTERS
            for t, e in exprs
            if k[0] == uid and k[1] in (t, "*") and k[2] in e
        }

        # An excused query that is empty now is not asked again (no scrape will fill it).
        empty = [e for t, e in exprs if not query(scenario, e) and not excused(uid, t, e)]
        failures += [
            f"dashboard {uid}, panel {by_expr[e]!r}: {e}"
            for e in empty_after_retries(scenario, empty)
        ]
    print(f"{asked} expressions asked")
    assert not failures, "no series:\n" + "\n".join(failures)
    assert set(NO_DATA_METRICS) <= named, (
        f"listed metrics no dashboard reads any more: {sorted(set(NO_DATA_METRICS) - named)}"
    )
    assert set(NO_DATA_FILTERS) == filtered, sorted(set(NO_DATA_FILTERS) - filtered)


def test_console_pages_show_the_cluster_and_the_application(scenario, rayvars, traffic):
    """The cluster page lists every node with its Serve gate open and links the application's
    page; that page shows a nonzero request rate and its replicas."""
    groups = scenario["monitor"].ansible.get_variables()["groups"]
    page = console(scenario, "rayforge-cluster.html")
    assert rayvars["ray_cluster_name"] in page
    for node in groups["ray_head"] + groups["ray_workers"]:
        row = re.search(rf"<td>{re.escape(node)}</td>(.*?)</tr>", page, re.S)
        assert row, f"{node} not on the cluster page"
        assert re.search(r">open</a></td>\s*$", row.group(1)), f"{node}'s gate: {row.group(1)}"
    app = scenario["app"]["name"]
    assert f"rayforge-serve.html?application={app}" in page
    rps = query(
        scenario, f'sum(rate(ray_serve_num_http_requests_total{{application="{app}"}}[1m]))'
    )
    assert rps, "no request rate"
    assert float(rps[0]["value"][1]) > 0, rps
    serve = console(scenario, "rayforge-serve.html", application=app)
    replicas = sum(d.get("num_replicas", 1) for d in scenario["app"]["deployments"])
    assert re.search(rf">{replicas}</a> of <a[^>]*>{replicas}</a>", serve), serve
    unknown = console(scenario, "rayforge-serve.html", application="<script>x</script>")
    assert "<script>x</script>" not in unknown
    assert "reports its status" in unknown


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    path = shutil.which(CHROMIUM)
    assert path, (
        f"{CHROMIUM} is not installed on the controller: scripts/ensure-chromium.sh installs "
        "Debian's chromium"
    )
    cmd = [
        path,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=20000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("page", CONSOLES)
def test_console_page_draws_its_graphs_in_a_browser(scenario, traffic, page, tmp_path):
    """In headless Chromium the page loads with no script error and no missing asset, and
    every graph holds a line of data points (Rickshaw's SVG path)."""
    params = {"application": scenario["app"]["name"]} if page == "rayforge-serve.html" else {}
    query_string = f"?{urllib.parse.urlencode(params)}" if params else ""
    url = f"{scenario['prometheus']}/consoles/{page}{query_string}"
    done = chromium("--dump-dom", url)
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "</html>" in dom, done.stderr[-3000:]
    console_lines = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console_lines, "\n".join(console_lines)
    graphs = dom.split('class="rf-graph"')[1:]
    assert graphs, f"{page} has no graph"
    for graph in graphs:
        title = re.search(r'data-title="([^"]*)"', graph)
        assert "Error loading data" not in graph, title
        lines = re.findall(r'<path[^>]* d="M([^"]*)"', graph)
        assert any("L" in d for d in lines), f"no line of data points in {title}"
    shots = os.environ.get("RAYFORGE_CONSOLE_SCREENSHOTS")
    out = Path(shots) if shots else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"console-{page.removesuffix('.html')}.png"
    shot = chromium(f"--screenshot={png}", "--window-size=1280,1500", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.stat().st_size > 10_000, shot.stderr[-2000:]
