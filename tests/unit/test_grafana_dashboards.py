"""The grafana role's dashboards entry point: roles/grafana/files/ray_grafana_dashboards.py run as
the role runs it on the head (a subprocess of the Python of Ray's virtualenv, here this venv's,
which has the Ray release the nodes run), and the files the role writes beside the dashboards
(Grafana's provisioning files) and the head's environment, templated by Ansible's own engine
from the role's defaults and vars and the task's own expressions.

Proves: the script finds each of Ray's dashboards (Ray 2.60 has eight), every one with its uid
as file name, a null id, and panels whose targets are PromQL expressions filtered by the
Cluster variable (the label ray_io_cluster); its output does not change with Ray's
RAY_GRAFANA_* override variables set; it reports the installed Ray's version. The
provisioning files are valid YAML Grafana reads: one default Prometheus data source at the
prometheus role's address, one file provider reading the version's dashboards directory.

Nothing starts Ray: the script only imports it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
ROLE = ROLES / "grafana"
SCRIPT = ROLE / "files" / "ray_grafana_dashboards.py"
# Ray 2.60's generate_*_grafana_dashboard() functions, by the uid each dashboard has.
RAY_2_60_UIDS = {
    "rayDefaultDashboard",
    "rayServeDashboard",
    "rayServeDeploymentDashboard",
    "rayDataDashboard",
    "rayDataLlmDashboard",
    "rayServeLlmDashboard",
    "rayServeLlmSglangDashboard",
    "rayTrainDashboard",
}
# Those whose panels filter by the Cluster variable in Ray 2.60.
CLUSTER_FILTERED = RAY_2_60_UIDS - {"rayTrainDashboard", "rayDataLlmDashboard"}
# Ray's overrides of a dashboard's uid, global filters and log link (its
# grafana_dashboard_factory reads them per dashboard name).
OVERRIDES = {
    "RAY_GRAFANA_DEFAULT_DASHBOARD_GLOBAL_FILTERS": 'team="a"',
    "RAY_GRAFANA_SERVE_DASHBOARD_GLOBAL_FILTERS": 'team="a",env="b"',
    "RAY_GRAFANA_DATA_DASHBOARD_UID": "somethingElse",
    "RAY_GRAFANA_TRAIN_LOG_LINK_URL": "http://logs.invalid/",
}


def run_script(extra_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_GRAFANA_")}
    env.update(extra_env)
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@cache
def clean_output() -> str:
    return run_script({})


@cache
def generated() -> dict[str, Any]:
    return json.loads(clean_output())


def dashboards() -> dict[str, dict]:
    return generated()["dashboards"]


def panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows too."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_every_dashboard_of_ray_is_generated() -> None:
    assert set(dashboards()) == {f"{uid}.json" for uid in RAY_2_60_UIDS}


def test_the_installed_ray_version_is_reported() -> None:
    assert generated()["ray_version"] == importlib.metadata.version("ray")


@pytest.mark.parametrize("uid", sorted(RAY_2_60_UIDS))
def test_a_dashboard_keeps_its_uid_and_has_no_id(uid: str) -> None:
    dashboard = dashboards()[f"{uid}.json"]
    assert dashboard["uid"] == uid
    assert "id" in dashboard
    assert dashboard["id"] is None
    assert dashboard["title"]


@pytest.mark.parametrize("uid", sorted(RAY_2_60_UIDS))
def test_a_dashboards_panels_query_prometheus_by_cluster(uid: str) -> None:
    dashboard = dashboards()[f"{uid}.json"]
    charts = [p for p in panels(dashboard) if p.get("type") != "row"]
    assert charts, f"{uid} has no panels"
    exprs = [t["expr"] for p in charts for t in p.get("targets", [])]
    assert exprs, f"{uid}'s panels have no targets"
    assert all(isinstance(e, str) and e.strip() for e in exprs)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    # The Cluster variable (label ray_io_cluster, which the prometheus role sets) filters the
    # panels of the cluster's and Serve's dashboards (Ray's Train and Data LLM ones have none).
    if uid in CLUSTER_FILTERED:
        assert "ray_io_cluster" in variables["Cluster"]["definition"]
        assert sum('ray_io_cluster=~"$Cluster"' in e for e in exprs) > len(exprs) * 0.9


def test_the_output_does_not_follow_rays_override_variables() -> None:
    assert run_script(OVERRIDES) == clean_output()


# --- What the role templates: provisioning files, grafana.ini settings, the head's environment


@cache
def engine_ready() -> DataLoader:
    init_plugin_loader()
    return DataLoader()


def role_variables(**overrides: Any) -> dict[str, Any]:
    """The variables the role's tasks see: the ray role's defaults and vars (a dependency),
    the grafana role's, then OVERRIDES (inventory values), as Ansible loads them."""
    loader = engine_ready()
    out: dict[str, Any] = {}
    for path in ("ray/defaults", "ray/vars", "grafana/defaults", "grafana/vars"):
        out.update(loader.load_from_file(str(ROLES / path / "main.yml"), trusted_as_template=True))
    out.update(role_path=str(ROLE), inventory_hostname="head1", ansible_inventory_sources=["x"])
    out.update(overrides)
    return out


def template(expression: Any, **overrides: Any) -> Any:
    templar = Templar(loader=engine_ready(), variables=role_variables(**overrides))
    return templar.template(trust_as_template(expression))


@cache
def provisioning_task() -> list[dict]:
    """The files of the dashboards entry point's rayforge_files task, as written there."""
    tasks = yaml.safe_load((ROLE / "tasks" / "dashboards.yml").read_text(encoding="utf-8"))
    (task,) = [t for t in tasks if "rayforge_files" in t]
    return [f for f in task["rayforge_files"]["files"] if "content" in f]


def provisioning_files(**overrides: Any) -> dict[str, Any]:
    """Path to parsed content of each provisioning file the role writes."""
    out = {}
    for item in provisioning_task():
        text = template(item["content"], **overrides)
        assert isinstance(text, str)
        out[template(item["path"], **overrides)] = yaml.safe_load(text)
    return out


def test_the_provisioning_files_are_grafanas_data_source_and_dashboard_provider() -> None:
    files = provisioning_files(grafana_dashboards_dir="/srv/g", ray_version="2.60.0")
    assert set(files) == {
        "/srv/g/2.60.0/provisioning/datasources/rayforge.yml",
        "/srv/g/2.60.0/provisioning/dashboards/rayforge.yml",
    }
    sources = files["/srv/g/2.60.0/provisioning/datasources/rayforge.yml"]
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "rayforge-prometheus"
    assert source["isDefault"] is True
    # Prometheus listens on every address by default (the prometheus role's defaults).
    assert source["url"] == "http://127.0.0.1:9090"
    providers = files["/srv/g/2.60.0/provisioning/dashboards/rayforge.yml"]
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Ray"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == "/srv/g/current/dashboards"


@pytest.mark.parametrize(
    ("listen", "url"),
    [("0.0.0.0", "http://127.0.0.1:9091"), ("10.0.0.5", "http://10.0.0.5:9091"),
     ("::", "http://127.0.0.1:9091"), ("fd00::5", "http://[fd00::5]:9091")],
)  # fmt: skip
def test_the_data_source_is_prometheus_as_the_monitoring_host_reaches_it(
    listen: str, url: str
) -> None:
    files = provisioning_files(prometheus_listen_address=listen, prometheus_port=9091)
    sources = next(v for k, v in files.items() if "/datasources/" in k)
    assert sources["datasources"][0]["url"] == url


def test_grafana_ini_takes_further_settings_but_keeps_the_roles_own() -> None:
    settings = template(
        "{{ _grafana_ini_settings }}",
        grafana_port=3001,
        grafana_settings={"server": {"root_url": "https://g/", "http_port": 1}},
    )
    by_name = {f"{s['section']}.{s['option']}": s["value"] for s in settings}
    assert by_name["server.root_url"] == "https://g/"
    assert by_name["server.http_port"] == "3001"
    assert by_name["auth.anonymous.enabled"] == "false"
    assert by_name["security.allow_embedding"] == "false"
    assert "security.admin_password" not in by_name
    owned = template("{{ _grafana_settings_owned }}", grafana_settings={"server": {"http_port": 1}})
    assert owned == ["server.http_port"]


def head_env(monitoring: dict[str, Any] | None, **head: Any) -> dict[str, str]:
    hosts = {"head1": {"ansible_host": "10.0.0.1", **head}}
    groups = {"all": ["head1"], "ray_head": ["head1"], "ray_workers": []}
    if monitoring is not None:
        hosts["mon1"] = {"ansible_host": "10.0.0.9", **monitoring}
        groups["monitoring"] = ["mon1"]
    return template(
        "{{ _grafana_head_env }}", hostvars=hosts, groups=groups, ray_cluster_name="prod", **head
    )


def test_the_head_is_told_nothing_without_grafana() -> None:
    assert head_env(None) == {}
    assert head_env({"grafana_port": 3001}) == {}


def test_the_head_is_told_where_grafana_and_prometheus_run() -> None:
    assert head_env({"grafana_enabled": True, "grafana_port": 3001, "prometheus_port": 9091}) == {
        "RAY_GRAFANA_HOST": "http://10.0.0.9:3001",
        "RAY_GRAFANA_IFRAME_HOST": "http://10.0.0.9:3001",
        "RAY_PROMETHEUS_HOST": "http://10.0.0.9:9091",
        "RAY_PROMETHEUS_NAME": "rayforge-prometheus",
        "RAY_GRAFANA_CLUSTER_FILTER": "prod",
    }
    # Without a monitoring group Grafana runs on the head, at its cluster address.
    env = head_env(None, grafana_enabled=True, grafana_iframe_host="https://lb:3443")
    assert env["RAY_GRAFANA_HOST"] == "http://10.0.0.1:3000"
    assert env["RAY_GRAFANA_IFRAME_HOST"] == "https://lb:3443"
    assert env["RAY_PROMETHEUS_HOST"] == "http://10.0.0.1:9090"
