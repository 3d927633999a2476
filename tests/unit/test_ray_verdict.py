"""The one verdict (roles/ray/module_utils/ray_verdict.py): the named checks made from the
dashboard's problems (ray_dashboard.cluster_facts, the deploy gate's own definition) and from
each node's findings, and the status document with its conditions.

Recorded answers of a real Ray 2.60 lab (tests/unit/fixtures) stand for the dashboard; the
nodes' findings are what tasks/probe.yml of the ray_status role records when all is well.
"""

from __future__ import annotations

import datetime
import json
import re

import pytest
from unit_support import recorded

from conftest import REPO

IPS = {"head": "172.18.0.2", "worker-1": "172.18.0.3", "worker-2": "172.18.0.4"}
SCHEMA = json.loads((REPO / "docs" / "status.schema.json").read_text())
T0 = datetime.datetime(2026, 12, 7, 10, 0, 0, tzinfo=datetime.timezone.utc)


def finding(host: str, **changes) -> dict:
    found = {
        "host": host,
        "role": "head" if host == "head" else "worker",
        "ip": IPS[host],
        "unit": "ray-head" if host == "head" else "ray-worker",
        "unit_state": "active",
        "proxy_expected": True,
        "self_ip": "answers",
        "self_lo": "answers",
        "controller": "answers",
        "routes": {"/": "seedcore-ml"},
        "listen": ["0.0.0.0:8000"],
        "object_store": "in /dev/shm",
        "object_store_problem": "",
    }
    found.update(changes)
    return found


def cluster(ray_dashboard, state: str = "healthy", desired: dict | None = None) -> dict:
    facts = ray_dashboard.cluster_facts(
        recorded(f"cluster_{state}_nodes")["data"],
        recorded(f"cluster_{state}_serve"),
        desired=desired,
        expected_nodes=IPS,
    )
    return {"dashboard": {"url": "http://172.18.0.2:8265", "answers": True, "error": ""}, **facts}


def judge(ray_verdict, ray_dashboard, state="healthy", nodes=None, config=None) -> list[dict]:
    config = recorded("cluster_serve_config") if config is None else config
    return ray_verdict.evaluate(
        cluster(ray_dashboard, state, desired=config),
        nodes or {h: finding(h) for h in IPS},
        config,
        serve_port=8000,
    )


def statuses(checks: list[dict]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in checks}


def test_every_problem_the_dashboard_client_names_is_a_check(ray_verdict, ray_dashboard):
    """The check ids the deploy gate's problems carry are the verdict's: nothing is judged
    under a name the reports do not know."""
    config = recorded("cluster_serve_config")
    config["applications"].append({"name": "extra", "import_path": "x:y"})
    details = recorded("cluster_worker_stopped_serve")
    next(iter(details["proxies"].values()))["status"] = "UNHEALTHY"
    facts = ray_dashboard.cluster_facts(
        recorded("cluster_worker_stopped_nodes")["data"],
        details,
        desired=config,
        expected_nodes=IPS,
    )
    found = facts["problems"]
    found += ray_dashboard.serve_problems(recorded("serve_shut_down"))
    found += ray_dashboard.serve_problems(recorded("serve_deploy_failed_import"))
    assert {p["check"] for p in found} >= {"nodes_alive", "applications_deployed", "proxies"}
    assert {p["check"] for p in found} <= set(ray_verdict.CHECK_IDS)
    for p in found:
        assert p["subject"] == "cluster" or p["subject"].startswith(("node/", "application/"))
        assert re.fullmatch(r"[A-Z][A-Za-z]*", p["reason"]), p


@pytest.mark.parametrize(
    "answer",
    [
        "serve_running_healthy",
        "serve_shut_down",
        "serve_deploy_failed_import",
        "serve_unschedulable_after_25s",
        "serve_running_deployment_unhealthy",
    ],
)
def test_the_deploy_gate_and_the_checks_agree(ray_verdict, ray_dashboard, answer):
    """health() (the deploy gate, the reconciler) is healthy exactly when the checks that read
    Serve pass."""
    config = recorded("serve_config_lab")
    details = recorded(answer)
    facts = ray_dashboard.cluster_facts(None, details, desired=config)
    checks = ray_verdict.evaluate(
        {"dashboard": {"answers": True}, **facts}, {}, config, serve_port=8000
    )
    serve_checks = [
        c
        for c in checks
        if c["id"] in ("serve_running", "applications_deployed", "applications_running")
    ]
    gate, _ = ray_dashboard.health(config, details)
    assert gate == all(c["status"] == "pass" for c in serve_checks), serve_checks


def test_healthy_cluster_passes_every_check(ray_verdict, ray_dashboard):
    checks = judge(ray_verdict, ray_dashboard)
    assert set(statuses(checks).values()) == {"pass"}, checks
    assert [c["id"] for c in checks] == list(ray_verdict.CHECK_IDS)
    assert ray_verdict.healthy(checks)


def test_stopped_worker_fails_the_checks_that_see_it(ray_verdict, ray_dashboard):
    nodes = {h: finding(h) for h in IPS}
    nodes["worker-2"] = finding(
        "worker-2", unit_state="inactive", proxy_expected=False, routes=None, listen=[]
    )
    checks = judge(ray_verdict, ray_dashboard, "worker_stopped", nodes)
    # The recorded worker_stopped answer also has the deployments that had a replica there
    # below their target, as Serve reported them then.
    assert {k for k, v in statuses(checks).items() if v != "pass"} == {
        "units_active",
        "nodes_alive",
        "applications_running",
    }
    units = checks[0]
    assert units["causes"] == {"stopped": ["worker-2"]}
    assert units["problems"][0]["subject"] == "node/worker-2"


def test_unreachable_host_and_dashboard_down(ray_verdict):
    down = {"dashboard": {"url": "u", "answers": False, "error": "refused"}}
    nodes = {h: finding(h) for h in IPS}
    nodes["worker-1"] = {}
    checks = ray_verdict.evaluate(down, nodes, recorded("cluster_serve_config"), serve_port=8000)
    got = statuses(checks)
    assert got["units_active"] == "fail"
    assert checks[0]["causes"] == {"no_findings": ["worker-1"]}
    assert got["dashboard"] == "fail"
    assert {got[c] for c in ("nodes_alive", "serve_running", "applications_running")} == {"unknown"}
    assert not ray_verdict.healthy(checks)


def conditions(document: dict) -> dict[str, dict]:
    out = {"cluster": document["conditions"][0]}
    out.update({f"node/{n['name']}": n["conditions"][0] for n in document["nodes"]})
    out.update({f"application/{a['name']}": a["conditions"][0] for a in document["applications"]})
    return out


def test_status_document_conditions_and_since(ray_verdict, ray_dashboard):
    jsonschema = pytest.importorskip("jsonschema")
    config = recorded("cluster_serve_config")
    nodes = {h: finding(h) for h in IPS}
    checks = judge(ray_verdict, ray_dashboard, nodes=nodes, config=config)
    facts = cluster(ray_dashboard, desired=config)
    first = ray_verdict.status_document(checks, facts, nodes, config, None, now=T0)
    jsonschema.validate(first, SCHEMA)
    assert {c["status"] for c in conditions(first).values()} == {"True"}
    assert {c["since"] for c in conditions(first).values()} == {"2026-12-07T10:00:00Z"}

    # An hour later worker-2 stops: its condition and the cluster's change, the rest keep
    # their since.
    stopped = {**nodes, "worker-2": finding("worker-2", unit_state="failed", proxy_expected=False)}
    later = T0 + datetime.timedelta(hours=1)
    checks = judge(ray_verdict, ray_dashboard, "worker_stopped", stopped, config)
    facts = cluster(ray_dashboard, "worker_stopped", desired=config)
    second = ray_verdict.status_document(checks, facts, stopped, config, first, now=later)
    jsonschema.validate(second, SCHEMA)
    got = conditions(second)
    assert (got["node/worker-2"]["status"], got["node/worker-2"]["reason"]) == (
        "False",
        "UnitNotActive",
    )
    assert got["node/worker-2"]["since"] == got["cluster"]["since"] == "2026-12-07T11:00:00Z"
    assert got["node/head"]["since"] == "2026-12-07T10:00:00Z"
    assert got["application/seedcore-ml"]["since"] == "2026-12-07T10:00:00Z"

    # A document of another schema is not read.
    third = ray_verdict.status_document(
        checks, facts, stopped, config, {**second, "schema": "other/v0"}, now=later
    )
    assert conditions(third)["node/head"]["since"] == "2026-12-07T11:00:00Z"
