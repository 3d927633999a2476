"""The cluster facts of the dashboard client (roles/ray/module_utils/ray_dashboard.py) and the
ray_cluster_info module (roles/ray/library/ray_cluster_info.py), against recorded answers.

The cluster_* fixtures were recorded together from one Ray 2.60 lab (a head without CPUs,
two workers of 2 CPUs, the default applications; see unit_support): healthy, then with
worker 2's unit stopped. Proves that the facts place replicas and proxies on the nodes the
dashboard names, that the verdict is healthy exactly when the deploy's own health() is and
every expected node is ALIVE with its proxy, that each reason says what is wrong in Serve's
words, and that the module changes nothing (check mode included), only ever GETs, and
reports a dashboard that does not answer instead of failing.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from unit_support import (
    API,
    GCS_HEALTH,
    NODES,
    UNAUTHORIZED_BODY,
    Answer,
    RecordedDashboard,
    recorded,
    run_module,
)

HEAD, WORKER_1, WORKER_2 = "172.18.0.2", "172.18.0.3", "172.18.0.4"
EXPECTED = {"rayforge-lab-head": HEAD, "rayforge-lab-worker-1": WORKER_1}
EXPECTED_ALL = {**EXPECTED, "rayforge-lab-worker-2": WORKER_2}
ANCHOR, APP = "rayforge-proxy-anchor", "seedcore-ml"


def nodes_data(name: str) -> dict:
    return recorded(f"cluster_{name}_nodes")["data"]


def facts(ray_dashboard, name: str = "healthy", **kwargs) -> dict:
    return ray_dashboard.cluster_facts(
        nodes_data(name), recorded(f"cluster_{name}_serve"), **kwargs
    )


# --- node_facts, placement, proxies ----------------------------------------------------------


def test_nodes_are_read_head_first_with_resources_in_use(ray_dashboard):
    nodes = ray_dashboard.node_facts(nodes_data("healthy"))
    assert [(n["ip"], n["state"], n["is_head"]) for n in nodes] == [
        (HEAD, "ALIVE", True),
        (WORKER_1, "ALIVE", False),
        (WORKER_2, "ALIVE", False),
    ]
    assert nodes[0]["hostname"] == "rayforge-lab-head"
    assert "CPU" not in nodes[0]["resources_total"]  # the lab's head offers no CPU
    assert nodes[1]["resources_total"]["CPU"] == 2.0
    # Ray's own lines, object store left out.
    assert nodes[1]["resources_in_use"][0] == "1.0/2.0 CPU"
    assert not any("object_store" in line for n in nodes for line in n["resources_in_use"])


def test_replicas_and_proxies_are_placed_on_their_nodes(ray_dashboard):
    got = facts(ray_dashboard)
    by_ip = {n["ip"]: n for n in got["nodes"]}
    assert by_ip[HEAD]["replica_applications"] == [ANCHOR]
    assert by_ip[WORKER_1]["replica_applications"] == [ANCHOR, APP]
    assert all(n["proxy"] == "HEALTHY" and n["proxy_expected"] for n in got["nodes"])
    assert [p["node_ip"] for p in got["proxies"]] == [HEAD, WORKER_1, WORKER_2]
    scorer = got["applications"][APP]["deployments"]["SalienceScorer"]
    assert scorer["nodes"] == [WORKER_1, WORKER_2]
    assert scorer["node_ids"] == sorted(by_ip[ip]["node_id"] for ip in (WORKER_1, WORKER_2))
    assert (scorer["running_replicas"], scorer["target_replicas"]) == (2, 2)


@pytest.mark.parametrize(
    ("location", "is_head", "apps", "expected"),
    [
        ("EveryNode", True, [], True),
        ("EveryNode", False, ["a"], True),
        ("EveryNode", False, [], False),
        ("HeadOnly", True, [], True),
        ("HeadOnly", False, ["a"], False),
        ("Disabled", True, ["a"], False),
    ],
)
def test_where_serve_runs_a_proxy(ray_dashboard, location, is_head, apps, expected):
    details = {**recorded("cluster_healthy_serve"), "proxy_location": location}
    assert ray_dashboard.proxy_expected(details, is_head, apps) is expected


def test_no_proxy_is_expected_without_serve(ray_dashboard):
    assert not ray_dashboard.proxy_expected(recorded("serve_shut_down"), True, [])


# --- The verdict ------------------------------------------------------------------------------


def test_recorded_healthy_cluster_is_healthy_for_its_config(ray_dashboard):
    config = recorded("cluster_serve_config")
    got = facts(ray_dashboard, desired=config, expected_nodes=EXPECTED_ALL)
    assert (got["healthy"], got["reasons"]) == (True, [])
    # The same verdict as the deploy's own.
    assert ray_dashboard.health(config, recorded("cluster_healthy_serve")) == (True, None)
    assert got["serve"] == {
        "running": True,
        "controller_node_ip": HEAD,
        "proxy_location": "EveryNode",
        "http_host": "0.0.0.0",
        "http_port": 8000,
    }
    assert all(app["problems"] == [] for app in got["applications"].values())


def test_stopped_worker_is_named_with_what_it_costs(ray_dashboard):
    got = facts(ray_dashboard, "worker_stopped", expected_nodes=EXPECTED_ALL)
    assert not got["healthy"]
    assert got["reasons"][0] == f"rayforge-lab-worker-2: no ALIVE Ray node with IP {WORKER_2}"
    dead = [n for n in got["nodes"] if n["state"] == "DEAD"]
    assert [n["ip"] for n in dead] == [WORKER_2]
    assert dead[0]["proxy"] is None
    assert not dead[0]["proxy_expected"]
    # Expected nodes that are ALIVE are not reasons.
    assert not any(
        r.startswith(("rayforge-lab-head", "rayforge-lab-worker-1")) for r in got["reasons"]
    )


def test_shut_down_serve_is_the_reason(ray_dashboard):
    got = ray_dashboard.cluster_facts(
        nodes_data("healthy"), recorded("serve_shut_down"), desired=recorded("cluster_serve_config")
    )
    assert got["reasons"] == ["Serve is not running"]
    assert got["serve"]["running"] is False
    assert not any(n["proxy_expected"] for n in got["nodes"])


def test_an_empty_answer_is_a_serve_that_does_not_run(ray_dashboard):
    got = ray_dashboard.cluster_facts(None, {})
    assert (got["serve"]["running"], got["reasons"]) == (False, ["Serve is not running"])
    # Not read at all: nothing said about Serve.
    assert ray_dashboard.cluster_facts(None, None)["serve"] == {}


def test_another_config_and_missing_applications_are_reasons(ray_dashboard):
    config = recorded("cluster_serve_config")
    config["applications"][0]["runtime_env"]["env_vars"]["RAYFORGE_APP_BUILD"] = "0123456789abcdef"
    config["applications"].append({"name": "extra", "import_path": "x:y"})
    got = facts(ray_dashboard, desired=config, config_label="/etc/rayforge/serve-config.json")
    name = config["applications"][0]["name"]
    assert got["reasons"] == [
        "application extra is not deployed",
        f"application {name} runs another config than /etc/rayforge/serve-config.json",
    ]
    assert ray_dashboard.health(config, recorded("cluster_healthy_serve"))[0] is False


def test_unschedulable_deploy_gives_serve_s_words(ray_dashboard):
    got = ray_dashboard.cluster_facts(None, recorded("serve_unschedulable_after_25s"))
    problems = got["applications"][APP]["problems"]
    assert problems[0].startswith(f"application {APP} is DEPLOYING")
    assert problems[1] == (
        f"deployment {APP}/SalienceScorer is UPSCALING with 4/64 replicas RUNNING: "
        "Upscaling from 2 to 64 replicas."
    )
    assert got["reasons"] == problems
    assert got["nodes"] == []


def test_unhealthy_proxy_is_a_reason(ray_dashboard):
    details = recorded("cluster_healthy_serve")
    proxy = next(p for p in details["proxies"].values() if p["node_ip"] == WORKER_1)
    proxy["status"] = "UNHEALTHY"
    got = ray_dashboard.cluster_facts(nodes_data("healthy"), details)
    assert got["reasons"] == [f"Serve proxy on node {WORKER_1} is UNHEALTHY"]


def test_serve_actors_are_picked_from_every_alive_actor(ray_dashboard):
    actors = recorded("cluster_healthy_actors")["data"]["result"]["result"]
    serve = ray_dashboard.serve_actor_facts(actors)
    roles = [a["role"] for a in serve]
    # One controller; HAProxy managers on each node and the head's Python proxy; 3 anchors
    # and 2 scorers.
    assert (roles.count("controller"), roles.count("proxy"), roles.count("replica")) == (1, 4, 5)
    assert {a["class_name"] for a in serve if a["role"] == "proxy"} == {
        "HAProxyManager",
        "ProxyActor",
    }
    assert {a["namespace"] for a in serve} == {"serve"}


# --- The module -------------------------------------------------------------------------------


@pytest.fixture
def cluster_stub(dashboard_stub: RecordedDashboard) -> RecordedDashboard:
    dashboard_stub.serve(recorded("cluster_healthy_serve"))
    dashboard_stub.answer(NODES, recorded("cluster_healthy_nodes"))
    return dashboard_stub


def test_module_reads_the_cluster_and_changes_nothing(cluster_info, cluster_stub, tmp_path, capsys):
    config = tmp_path / "serve-config.json"
    config.write_text(json.dumps(recorded("cluster_serve_config")))
    args = {
        "dashboard_url": cluster_url(cluster_stub),
        "config_path": str(config),
        "expected_nodes": EXPECTED_ALL,
    }
    result = run_module(cluster_info, args, capsys)
    assert result["rc"] == 0, result
    assert (result["changed"], result["healthy"], result["reasons"]) == (False, True, [])
    assert result["dashboard"] == {"url": cluster_stub.url, "answers": True, "error": ""}
    assert [n["ip"] for n in result["nodes"]] == [HEAD, WORKER_1, WORKER_2]
    assert "serve_actors" not in result
    assert cluster_stub.calls() == [("GET", GCS_HEALTH), ("GET", NODES), ("GET", API)]

    checked = run_module(cluster_info, {**args, "_ansible_check_mode": True}, capsys)
    assert {k: v for k, v in checked.items() if not k.startswith("_")} == {
        k: v for k, v in result.items() if not k.startswith("_")
    }
    assert set(cluster_stub.methods()) == {"GET"}


def cluster_url(stub: RecordedDashboard) -> str:
    return stub.url + "/"  # a trailing slash is dropped


def test_module_reports_a_stopped_worker(cluster_info, dashboard_stub, capsys):
    dashboard_stub.serve(recorded("cluster_worker_stopped_serve"))
    dashboard_stub.answer(NODES, recorded("cluster_worker_stopped_nodes"))
    args = {"dashboard_url": dashboard_stub.url, "expected_nodes": EXPECTED_ALL}
    result = run_module(cluster_info, args, capsys)
    assert (result["rc"], result["healthy"]) == (0, False)
    assert f"rayforge-lab-worker-2: no ALIVE Ray node with IP {WORKER_2}" in result["reasons"]


def test_module_reports_a_dashboard_that_does_not_answer(cluster_info, closed_port, capsys):
    url = f"http://127.0.0.1:{closed_port}"
    result = run_module(cluster_info, {"dashboard_url": url}, capsys)
    assert result["rc"] == 0, result
    assert (result["healthy"], result["dashboard"]["answers"]) == (False, False)
    assert "Connection refused" in result["dashboard"]["error"]
    assert result["reasons"] == [
        f"dashboard API at {url} does not answer: {result['dashboard']['error']}"
    ]
    assert (result["nodes"], result["applications"], result["serve"]) == ([], {}, {})


def test_module_does_not_wait_on_a_wrong_token(cluster_info, cluster_stub, capsys):
    cluster_stub.token = "s3cret"
    args = {
        "dashboard_url": cluster_stub.url,
        "headers": {"Authorization": "Bearer wrong"},
        "wait": 30,
    }
    start = time.monotonic()
    result = run_module(cluster_info, args, capsys)
    assert time.monotonic() - start < 10
    assert result["dashboard"]["answers"] is False
    assert f"HTTP 401 Unauthorized: {UNAUTHORIZED_BODY}" in result["dashboard"]["error"]
    assert cluster_stub.calls() == [("GET", GCS_HEALTH)]


def test_module_waits_for_a_starting_dashboard(cluster_info, capsys):
    stub = RecordedDashboard()  # bound, not yet listening: connections are refused
    stub.answer(GCS_HEALTH, Answer(503, "GCS not ready"), Answer(200, "success"))
    timer = threading.Timer(0.3, stub.start)
    timer.start()
    try:
        args = {"dashboard_url": stub.url, "gather_subset": [], "wait": 20}
        result = run_module(cluster_info, args, capsys)
    finally:
        timer.join()
        stub.close()
    assert (result["dashboard"]["answers"], result["healthy"]) == (True, True)
    assert stub.calls() == [("GET", GCS_HEALTH), ("GET", GCS_HEALTH)]


def test_module_gathers_serve_actors_when_asked(ray_dashboard, cluster_info, cluster_stub, capsys):
    cluster_stub.answer(ray_dashboard.ALIVE_ACTORS_API, recorded("cluster_healthy_actors"))
    args = {"dashboard_url": cluster_stub.url, "gather_subset": ["serve", "serve_actors"]}
    result = run_module(cluster_info, args, capsys)
    assert len(result["serve_actors"]) == 10  # every actor recorded but the api server's
    assert ("GET", NODES) not in cluster_stub.calls()
    assert result["nodes"] == []


def test_module_fails_on_an_unreadable_config(cluster_info, cluster_stub, tmp_path, capsys):
    args = {"dashboard_url": cluster_stub.url, "config_path": str(tmp_path / "missing.json")}
    result = run_module(cluster_info, args, capsys)
    assert result["rc"] == 1
    assert result["msg"].startswith(f"cannot read Serve config {tmp_path / 'missing.json'}")
    assert cluster_stub.calls() == []


def test_module_waits_out_a_busy_gcs_between_its_reads(cluster_info, cluster_stub, capsys):
    """The head's GCS answered its health check, then failed the node list once with HTTP 503
    (as a busy head does under load): with a wait, the node list is asked again and the anchor
    count is the ALIVE nodes', never a count from a failed read. Without a wait the failure is
    reported, with no count."""
    busy = Answer(503, "Health check failed: RPC error: Deadline Exceeded")
    cluster_stub.answer(NODES, busy, recorded("cluster_worker_stopped_nodes"))
    args = {"dashboard_url": cluster_stub.url, "gather_subset": ["nodes"], "wait": 20}
    result = run_module(cluster_info, args, capsys)
    assert result["dashboard"] == {"url": cluster_stub.url, "answers": True, "error": ""}
    assert result["proxy_anchor_replicas"] == 2
    assert cluster_stub.calls() == [("GET", GCS_HEALTH), ("GET", NODES), ("GET", NODES)]

    cluster_stub.answer(NODES, busy)
    once = run_module(cluster_info, {**args, "wait": 0}, capsys)
    assert once["dashboard"]["answers"] is True
    assert "HTTP 503" in once["dashboard"]["error"]
    assert once["proxy_anchor_replicas"] is None  # no count: the role fails on it
    assert once["healthy"] is False
