"""status.yml's report and diagnose.yml's nine checks, made from recorded findings.

The ray_status role probes once (tasks/probe.yml) and then reports (entry points
status_report and diagnose_report). Here the probe's findings are given instead: the
dashboard's answers recorded from a real Ray 2.60 lab (tests/unit/fixtures/cluster_*.json,
turned into ray_cluster_info's result by the ray role's own dashboard client), the Serve
config that lab ran, and per node what the probe would have seen (unit state, Serve's
/-/healthz on the node's address, on 127.0.0.1 and from the controller, /-/routes, the
sockets on the Serve port, the object store). Each case runs the real role with
``ansible-playbook`` on three inventory hosts that are this machine (``ansible_connection:
local``; only the dependency's fact gathering touches them) and asserts the report's lines:
which checks PASS or FAIL, what they say and the fix they name.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from controller_support import run_play

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "unit" / "fixtures"
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
# The recorded lab: a head without CPUs and two workers (tests/unit/unit_support.py).
IPS = {"head": "172.18.0.2", "worker-1": "172.18.0.3", "worker-2": "172.18.0.4"}
# Ports the recorded lab did not use, so that nothing here depends on the roles' defaults.
SERVE_PORT = 18123
CONFIG_PATH = "/etc/rayforge-test/serve-config.json"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def ray_dashboard():
    """The ray role's dashboard client (roles/ray/module_utils/ray_dashboard.py)."""
    sys.path.insert(0, str(REPO / "roles" / "ray" / "module_utils"))
    sys.dont_write_bytecode = True
    try:
        return importlib.import_module("ray_dashboard")
    finally:
        sys.path.pop(0)


def cluster(ray_dashboard, state: str, desired: dict | None = None) -> dict:
    """ray_cluster_info's result for the recorded STATE (healthy, worker_stopped), judged
    against DESIRED (the probe gives it the rendered config's path when there is one)."""
    facts = ray_dashboard.cluster_facts(
        recorded(f"cluster_{state}_nodes")["data"],
        recorded(f"cluster_{state}_serve"),
        desired=desired,
        expected_nodes=IPS,
        config_label=CONFIG_PATH,
    )
    actors = recorded("cluster_healthy_actors")["data"]["result"]["result"]
    return {
        "dashboard": {"url": "http://172.18.0.2:18265", "answers": True, "error": ""},
        **facts,
        "serve_actors": ray_dashboard.serve_actor_facts(actors),
    }


def node(host: str, **changes) -> dict:
    """What the probe records on HOST when all is well, with CHANGES."""
    found = {
        "host": host,
        "role": "head" if host == "head" else "worker",
        "ip": IPS[host],
        "unit": "ray-head" if host == "head" else "ray-worker",
        "unit_state": "active",
        "unit_enabled": "enabled",
        "proxy_expected": True,
        "self_ip": "answers",
        "self_lo": "answers",
        "controller": "answers",
        "routes": {"/": "seedcore-ml"},
        "listen": [f"0.0.0.0:{SERVE_PORT}"],
        "object_store": "in /dev/shm, 1/512 MiB used there, 1022 MiB free",
        "object_store_problem": "",
    }
    found.update(changes)
    return found


def run_report(tmp_path: Path, entry: str, facts: dict, nodes: dict, config: dict) -> list[str]:
    """The report lines of ray_status's ENTRY (status_report or diagnose_report) over these
    findings; the run must succeed (ray_status_strict is off)."""
    hosts = {
        name: {
            "ansible_host": "127.0.0.1",
            "ray_node_ip_address": IPS[name],
            "__ray_status_node": found,
        }
        for name, found in nodes.items()
    }
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": SYSTEM_PYTHON,
                "ray_auth_mode": "disabled",
                "ray_serve_http_port": SERVE_PORT,
                "ray_dashboard_port": 18265,
                "ray_gcs_port": 16379,
                "ray_head_service_name": "ray-head",
                "ray_worker_service_name": "ray-worker",
                "ray_serve_proxy_location": "EveryNode",
                "ray_serve_applications": [
                    {"name": a["name"]} for a in config.get("applications", [])
                ],
                "__ray_status_cluster": facts,
                "ray_serve_rendered_config": config,
                "ray_serve_rendered_config_path": CONFIG_PATH,
                "ray_serve_rendered_config_error": "" if config else "file not found",
                "ray_status_json_path": str(tmp_path / "status.json"),
            },
            "children": {
                "ray_head": {"hosts": {"head": hosts["head"]}},
                "ray_workers": {"hosts": {k: v for k, v in hosts.items() if k != "head"}},
            },
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Report from recorded findings",
                    "hosts": "ray_head:ray_workers",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "The report is made",
                            "ansible.builtin.import_role": {
                                "name": "ray_status",
                                "tasks_from": entry,
                            },
                        }
                    ],
                }
            ]
        )
    )
    done = run_play(tmp_path, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
    # The JSON document starts on a line of its own (profile_tasks prints around it).
    start = re.search(r"^\{$", done.stdout, re.M)
    assert start, done.stdout[-3000:]
    result, _ = json.JSONDecoder().raw_decode(done.stdout, start.start())
    reports = [
        outcome["msg"]
        for play in result["plays"]
        for task in play["tasks"]
        if task["task"]["name"].rpartition(" : ")[2]
        in ("Diagnosis is reported", "Cluster status is reported")
        for outcome in task["hosts"].values()
        if "msg" in outcome
    ]
    assert reports, done.stdout[-4000:]
    return reports[0]


def checks(lines: list[str]) -> dict[int, dict]:
    """{number: {ok, verdict (PASS, FAIL or SKIP), id, name, detail, fix}} of diagnose's
    report."""
    out: dict[int, dict] = {}
    current: dict = {}
    for line in lines[1:]:
        head = re.match(r"(PASS|FAIL|SKIP) (\d+)\. (.*) \[(\w+)\]$", line)
        if head:
            current = out[int(head[2])] = {
                "ok": head[1] == "PASS",
                "verdict": head[1],
                "id": head[4],
                "name": head[3],
                "detail": [],
                "fix": "",
            }
        elif line.startswith("   fix: "):
            current["fix"] = line[len("   fix: ") :]
        else:
            current["detail"].append(line.strip())
    assert len(out) == 9, lines
    return out


def failed(report: dict[int, dict]) -> set[int]:
    return {n for n, c in report.items() if not c["ok"]}


def healthy_nodes() -> dict:
    return {name: node(name) for name in IPS}


def test_healthy_cluster_passes_every_check_and_has_no_problem(tmp_path, ray_dashboard):
    facts = cluster(ray_dashboard, "healthy")
    config = recorded("cluster_serve_config")
    report = checks(run_report(tmp_path, "diagnose_report", facts, healthy_nodes(), config))
    assert failed(report) == set(), report
    assert report[3]["detail"] == ["3 ALIVE node(s): 172.18.0.2, 172.18.0.3, 172.18.0.4"]
    assert report[5]["detail"][0].startswith(f"3 proxy(ies) answer /-/healthz on :{SERVE_PORT}")
    status = run_report(tmp_path, "status_report", facts, healthy_nodes(), config)
    assert status[-1] == "Problems: none, the cluster is healthy", status


def test_stopped_worker_is_named_with_journalctl_and_start(tmp_path, ray_dashboard):
    facts = cluster(ray_dashboard, "worker_stopped")
    nodes = stopped_worker_2()
    config = recorded("cluster_serve_config")
    report = checks(run_report(tmp_path, "diagnose_report", facts, nodes, config))
    assert {1, 3} <= failed(report), report
    assert report[1]["detail"] == ["worker-2: unit ray-worker is inactive"]
    assert "journalctl -n 100 -u ray-worker on worker-2" in report[1]["fix"]
    assert "playbooks/start.yml" in report[1]["fix"]
    assert report[3]["detail"] == ["worker-2: no ALIVE Ray node with IP 172.18.0.4"]
    status = run_report(tmp_path, "status_report", facts, nodes, config)
    problems = status[status.index(next(x for x in status if x.startswith("Problems ("))) :]
    assert "  - worker-2: unit ray-worker is inactive" in problems, status
    assert "  - worker-2: no ALIVE Ray node with IP 172.18.0.4" in problems, status


@pytest.mark.parametrize(
    ("changes", "cause", "fix"),
    [
        (
            {"controller": "fails (timed out)"},
            "answers on the node but from the controller fails (timed out)",
            f"Open TCP {SERVE_PORT} to the nodes",
        ),
        (
            {"self_ip": "fails (connection refused)", "listen": [f"127.0.0.1:{SERVE_PORT}"]},
            f"127.0.0.1 answers: bound to localhost (listening on 127.0.0.1:{SERVE_PORT})",
            "playbooks/restart-serve.yml starts it with the inventory's",
        ),
        (
            {
                "self_ip": "fails (connection refused)",
                "self_lo": "fails (connection refused)",
                "listen": [],
            },
            ": nothing listens on the port",
            "fix checks 1, 3 and 4 first",
        ),
    ],
    ids=["firewalled-from-controller", "bound-to-localhost", "no-proxy"],
)
def test_endpoint_faults_fail_check_5_only_with_their_fix(
    tmp_path, ray_dashboard, changes, cause, fix
):
    nodes = healthy_nodes()
    nodes["worker-1"] = node("worker-1", **changes)
    report = checks(
        run_report(
            tmp_path,
            "diagnose_report",
            cluster(ray_dashboard, "healthy"),
            nodes,
            recorded("cluster_serve_config"),
        )
    )
    assert failed(report) == {5}, report
    assert report[5]["detail"][0].startswith(f"worker-1 {IPS['worker-1']}:{SERVE_PORT}"), report[5]
    assert cause in report[5]["detail"][0], report[5]
    assert fix in report[5]["fix"], report[5]


def test_duplicate_route_prefix_in_the_config_fails_check_7(tmp_path, ray_dashboard):
    config = copy.deepcopy(recorded("cluster_serve_config"))
    config["applications"].append({**config["applications"][0], "name": "copy-of-seedcore"})
    report = checks(
        run_report(
            tmp_path,
            "diagnose_report",
            cluster(ray_dashboard, "healthy", desired=config),
            healthy_nodes(),
            config,
        )
    )
    assert 7 in failed(report), report
    assert (
        "route_prefix / used by several applications in the rendered config" in report[7]["detail"]
    )
    assert "Give each application its own route_prefix" in report[7]["fix"]
    # The application the config names but Serve does not run is check 6's.
    assert 6 in failed(report), report
    assert "copy-of-seedcore" in report[6]["detail"][0], report[6]


def test_missing_config_is_named_with_its_path(tmp_path, ray_dashboard):
    report = checks(
        run_report(
            tmp_path, "diagnose_report", cluster(ray_dashboard, "healthy"), healthy_nodes(), {}
        )
    )
    assert {6, 7} <= failed(report), report
    assert report[6]["detail"] == [
        f"the rendered Serve config {CONFIG_PATH} is missing (file not found)"
    ]
    assert report[6]["fix"].endswith("A missing config: run site.yml.")
    # Without a config there is nothing to route by: not judged.
    assert report[7]["verdict"] == "SKIP"


# --- The status JSON: one verdict with diagnose ------------------------------------------------

SCHEMA = json.loads((REPO / "docs" / "status.schema.json").read_text())


def status_json(tmp_path: Path) -> dict:
    """The JSON status_report wrote, validated against docs/status.schema.json."""
    jsonschema = pytest.importorskip("jsonschema")
    document = json.loads((tmp_path / "status.json").read_text())
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())
    return document


def ready(entry: dict) -> dict:
    return next(c for c in entry["conditions"] if c["type"] == "Ready")


def by_name(entries: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in entries}


def stopped_worker_2() -> dict:
    nodes = healthy_nodes()
    nodes["worker-2"] = node(
        "worker-2",
        unit_state="inactive",
        proxy_expected=False,
        self_ip="fails (connection refused)",
        self_lo="fails (connection refused)",
        controller="fails (connection refused)",
        routes=None,
        listen=[],
    )
    return nodes


def with_missing_application() -> dict:
    config = copy.deepcopy(recorded("cluster_serve_config"))
    config["applications"].append(
        {**config["applications"][0], "name": "scorer-v2", "route_prefix": "/v2"}
    )
    return config


# Each case: the recorded cluster state, the nodes' findings, the config, and what the JSON
# must say of it.
CASES = {
    "healthy": ("healthy", healthy_nodes, lambda: recorded("cluster_serve_config")),
    "stopped-worker": (
        "worker_stopped",
        stopped_worker_2,
        lambda: recorded("cluster_serve_config"),
    ),
    "application-missing": ("healthy", healthy_nodes, with_missing_application),
}


@pytest.mark.parametrize("case", list(CASES))
def test_status_json_follows_its_schema_and_agrees_with_diagnose(tmp_path, ray_dashboard, case):
    state, make_nodes, make_config = CASES[case]
    config = make_config()
    facts = cluster(ray_dashboard, state, desired=config)
    status_dir, diagnose_dir = tmp_path / "status", tmp_path / "diagnose"
    status_dir.mkdir()
    diagnose_dir.mkdir()
    run_report(status_dir, "status_report", facts, make_nodes(), config)
    document = status_json(status_dir)
    report = checks(run_report(diagnose_dir, "diagnose_report", facts, make_nodes(), config))
    verdicts = {"pass": "PASS", "fail": "FAIL", "unknown": "SKIP"}
    # One verdict: diagnose prints the checks the JSON holds, in the same order.
    assert [(c["id"], c["verdict"]) for c in report.values()] == [
        (c["id"], verdicts[c["status"]]) for c in document["checks"]
    ]
    assert [c["detail"] for c in report.values()] == [c["detail"] for c in document["checks"]]
    assert document["healthy"] == (case == "healthy")
    nodes, apps = by_name(document["nodes"]), by_name(document["applications"])
    cluster_ready = ready(document)
    if case == "healthy":
        assert (cluster_ready["status"], cluster_ready["reason"]) == ("True", "AllChecksPass")
        assert {n: ready(e)["status"] for n, e in nodes.items()} == dict.fromkeys(IPS, "True")
        assert {a: ready(e)["status"] for a, e in apps.items()} == dict.fromkeys(
            [a["name"] for a in config["applications"]], "True"
        )
    elif case == "stopped-worker":
        assert (cluster_ready["status"], cluster_ready["reason"]) == ("False", "UnitNotActive")
        worker = ready(nodes["worker-2"])
        assert (worker["status"], worker["reason"]) == ("False", "UnitNotActive")
        assert worker["message"] == (
            "worker-2: unit ray-worker is inactive; worker-2: no ALIVE Ray node with IP "
            f"{IPS['worker-2']}"
        )
        assert nodes["worker-2"]["ray_state"] == "DEAD"
        assert [ready(nodes[n])["status"] for n in ("head", "worker-1")] == ["True", "True"]
    else:
        missing = apps["scorer-v2"]
        assert (missing["serve_status"], missing["in_config"]) == ("NOT_DEPLOYED", True)
        assert (ready(missing)["status"], ready(missing)["reason"]) == (
            "False",
            "ApplicationNotDeployed",
        )
        assert ready(missing)["message"] == "application scorer-v2 is not deployed"
        assert ready(apps["seedcore-ml"])["status"] == "True"
        assert cluster_ready["status"] == "False"
        assert {c["id"] for c in document["checks"] if c["status"] == "fail"} == {
            "applications_deployed",
            "routes",
        }


def test_status_json_keeps_since_while_a_condition_holds(tmp_path, ray_dashboard):
    config = recorded("cluster_serve_config")
    healthy = cluster(ray_dashboard, "healthy", desired=config)
    run_report(tmp_path, "status_report", healthy, healthy_nodes(), config)
    first = status_json(tmp_path)
    # An older document: the conditions that did not change keep its since.
    old = "2026-01-02T03:04:05Z"
    for entry in [first, *first["nodes"], *first["applications"]]:
        ready(entry)["since"] = old
    (tmp_path / "status.json").write_text(json.dumps(first))
    stopped = cluster(ray_dashboard, "worker_stopped", desired=config)
    run_report(tmp_path, "status_report", stopped, stopped_worker_2(), config)
    second = status_json(tmp_path)
    nodes = by_name(second["nodes"])
    assert ready(nodes["head"])["since"] == old
    assert ready(nodes["worker-2"])["since"] == second["generated_at"]
    assert ready(second)["since"] == second["generated_at"]
    assert ready(by_name(second["applications"])["seedcore-ml"])["since"] == old


def test_dashboard_down_is_unknown_not_false(tmp_path):
    config = recorded("cluster_serve_config")
    down = {
        "dashboard": {"url": "http://172.18.0.2:18265", "answers": False, "error": "refused"},
        "nodes": [],
        "serve": {},
        "applications": {},
        "proxies": [],
        "serve_actors": [],
        "problems": [
            {
                "check": "dashboard",
                "subject": "cluster",
                "reason": "DashboardUnavailable",
                "message": "dashboard API at http://172.18.0.2:18265 does not answer: refused",
            }
        ],
    }
    report = checks(run_report(tmp_path, "diagnose_report", down, healthy_nodes(), config))
    assert report[2]["verdict"] == "FAIL"
    assert {report[n]["verdict"] for n in (3, 4, 6, 8)} == {"SKIP"}
    document = status_json(tmp_path)
    assert ready(document)["reason"] == "DashboardUnavailable"
    assert {ready(n)["status"] for n in document["nodes"]} == {"Unknown"}
    assert {ready(a)["status"] for a in document["applications"]} == {"Unknown"}
