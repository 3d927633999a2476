"""The prometheus role's alert rules (roles/prometheus/templates/rayforge-rules.yml.j2),
rendered with the role's defaults as the role renders them, then checked by the promtool of
the Prometheus the role installs (Debian's package, through scripts/ensure-promtool.sh).

Proves: the rendered file passes ``promtool check rules``; every case file of tests/alerts
passes ``promtool test rules`` against it; every alert has a case in which it fires and one in
which it does not (a new rule without its cases fails here); every alert has a page or ticket
severity, a summary, a description and a runbook annotation whose section exists in
docs/operations.md; every metric a rule reads is Prometheus' own, the node exporter's, one
that the Ray release the nodes run (ray_version) exports, or one of rayforge's own that a
script or module of the roles writes (a ``rayforge_`` name in its source); and the alerts on
a node, the head or the GCS wait longer than the liveness watchdog takes to restart a dead
Ray, so a restart that heals itself pages nobody.

Nothing runs but promtool: no Prometheus, no Ray (Ray's installed source is read, not
imported).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import comment

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))
from promql import metric_names  # noqa: E402

ROLE = REPO / "roles" / "prometheus"
TEMPLATE = "rayforge-rules.yml.j2"
CASES = REPO / "tests" / "alerts"
RUNBOOK = REPO / "docs" / "operations.md"
# The name the case files give the rules in their rule_files.
RULES_NAME = "rayforge.yml"

# Ray's sources that define or chart the metrics its nodes export: the Python metrics (Serve's,
# the dashboard agent's node and component gauges) and the Grafana panels Ray ships for its
# C++ metrics (object store, resources, memory monitor).
RAY_METRIC_SOURCES = ("serve/_private", "dashboard/modules/reporter", "dashboard/modules/metrics")
# The node exporter's metrics the rules read (job node, roles/prometheus_node_exporter): exported by
# Debian 12's prometheus-node-exporter 1.5.0 with the role's flags (/dev/shm and an overlay root
# among the filesystems). Its names are built at run time (meminfo's from /proc/meminfo), so
# no source here holds them; the cluster scenario's test_every_metric_an_alert_reads_is_stored
# finds each stored by the lab's Prometheus.
NODE_EXPORTER_METRICS = {
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
}
# Suffixes Prometheus adds to a counter's or a histogram's name.
SUFFIXES = ("_total", "_bucket", "_sum", "_count")
# A metric defined by name in Python: Gauge("name", ...), metrics.Counter(name="name", ...).
DEFINITION = r"\b(?:Gauge|Counter|Histogram)\(\s*(?:name=)?\"{}\""


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def plain(values: dict) -> dict:
    """The variables of a defaults or vars file that are data, not Jinja expressions."""
    return {k: v for k, v in values.items() if not (isinstance(v, str) and "{{" in v)}


@cache
def role_variables() -> dict:
    """What the template sees at the role's defaults: the ray role's defaults (its dependency),
    this role's defaults, and this role's vars that need no templating."""
    return {
        **load_yaml(REPO / "roles" / "ray" / "defaults" / "main.yml"),
        **load_yaml(ROLE / "defaults" / "main.yml"),
        **plain(load_yaml(ROLE / "vars" / "main.yml")),
        "ansible_managed": "Ansible managed",
    }


@cache
def rendered() -> str:
    """The rules file as the role writes it (Ansible's template settings: trim_blocks)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = comment
    return env.get_template(TEMPLATE).render(**role_variables())


@cache
def alerts() -> dict[str, dict]:
    """Every alerting rule of the rendered file, by name."""
    out: dict[str, dict] = {}
    for group in yaml.safe_load(rendered())["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["alert"] not in out, f"alert {rule['alert']} defined twice"
                out[rule["alert"]] = rule
    return out


def case_files() -> list[Path]:
    return sorted(CASES.glob("*.yml"))


def duration_s(text: str) -> float:
    """Seconds of a Prometheus duration (2m, 1h30m, 15s)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    assert parts, f"not a duration: {text}"
    assert "".join(n + u for n, u in parts) == text, f"not a duration: {text}"
    return sum(int(n) * units[u] for n, u in parts)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Debian's promtool, fetched once into the cache by scripts/ensure-promtool.sh."""
    run = subprocess.run(
        [str(REPO / "scripts" / "ensure-promtool.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"ensure-promtool.sh failed:\n{run.stderr}"
    path = run.stdout.strip()
    assert Path(path).is_file(), run.stdout + run.stderr
    return path


@pytest.fixture(scope="session")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered rules beside a copy of every case file, which names them RULES_NAME."""
    folder = tmp_path_factory.mktemp("alerts")
    (folder / RULES_NAME).write_text(rendered(), encoding="utf-8")
    for path in case_files():
        shutil.copy(path, folder / path.name)
    return folder


def promtool_run(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_rendered_rules_pass_promtool_check(promtool: str, rules_dir: Path) -> None:
    run = promtool_run(promtool, "check", "rules", str(rules_dir / RULES_NAME))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in run.stdout + run.stderr


@pytest.mark.parametrize("case", [p.name for p in case_files()])
def test_alert_cases_pass_promtool_test(promtool: str, rules_dir: Path, case: str) -> None:
    assert load_yaml(CASES / case)["rule_files"] == [RULES_NAME]
    run = promtool_run(promtool, "test", "rules", str(rules_dir / case))
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in case_files():
        for test in load_yaml(path)["tests"]:
            for check in test.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = set(alerts())
    assert not names - fires, f"alerts without a case where they fire: {sorted(names - fires)}"
    assert not names - silent, f"alerts without a case where they stay silent: {names - silent}"
    unknown = (fires | silent) - names
    assert not unknown, f"cases of alerts the rules do not define: {sorted(unknown)}"


def runbook_sections() -> set[str]:
    """Anchors of docs/operations.md's headings that are a single word (an alert's name)."""
    text = RUNBOOK.read_text(encoding="utf-8")
    return {m.lower() for m in re.findall(r"^#{2,4} (\w+)\s*$", text, re.MULTILINE)}


@pytest.mark.parametrize("name", sorted(alerts()))
def test_alert_has_severity_annotations_and_a_runbook_section(name: str) -> None:
    rule = alerts()[name]
    assert rule["labels"]["severity"] in {"page", "ticket"}, rule["labels"]
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook"}, annotations
    base = role_variables()["prometheus_alert_runbook_url"]
    assert annotations["runbook"] == f"{base}#{name.lower()}"
    assert name.lower() in runbook_sections(), f"docs/operations.md has no section ### {name}"


@cache
def ray_package() -> Path:
    spec = importlib.util.find_spec("ray")  # the package's files, not imported
    assert spec is not None, "Ray is not installed here"
    assert spec.origin is not None, "Ray is not installed here"
    return Path(spec.origin).parent


@cache
def ray_metric_source() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8", errors="ignore")
        for folder in RAY_METRIC_SOURCES
        for path in sorted((ray_package() / folder).rglob("*.py"))
    )


def test_ray_source_is_the_release_the_nodes_run() -> None:
    version = (ray_package() / "_version.py").read_text(encoding="utf-8")
    want = role_variables()["ray_version"]
    assert re.search(rf"^version = \"{re.escape(want)}\"$", version, re.MULTILINE), (
        f"the installed Ray is not ray_version {want}: its metrics cannot be checked"
    )


@cache
def rayforge_metric_source() -> str:
    """The scripts and modules of the roles, which write rayforge's own metrics (textfiles)."""
    paths = sorted(REPO.glob("roles/*/files/*.py")) + sorted(REPO.glob("roles/*/library/*.py"))
    return "\n".join(path.read_text(encoding="utf-8") for path in paths)


@pytest.mark.parametrize("name", sorted(alerts()))
def test_alert_reads_only_metrics_that_exist(name: str) -> None:
    """Prometheus' own (up, prometheus_*), the node exporter's (NODE_EXPORTER_METRICS), or
    Ray's: defined by name in Ray's Python source (Gauge("serve_application_status", ...),
    exported as ray_serve_application_status), or charted under its exported name by the
    dashboards Ray ships (its C++ metrics); or rayforge's own (rayforge_*), named in a role's
    script or module that writes it (a counter's name without its _total, as prometheus_client
    takes it)."""
    source = ray_metric_source()
    names = metric_names(alerts()[name]["expr"])
    assert names, alerts()[name]["expr"]
    missing = []
    for metric in sorted(names):
        if metric == "up" or metric.startswith("prometheus_") or metric in NODE_EXPORTER_METRICS:
            continue
        if metric.startswith("rayforge_"):
            written = {metric, metric.removesuffix("_total")}
            if not any(f'"{m}"' in rayforge_metric_source() for m in written):
                missing.append(metric)
            continue
        bases = {metric.removeprefix("ray_")}
        bases |= {b.removesuffix(s) for b in bases for s in SUFFIXES}
        defined = any(re.search(DEFINITION.format(re.escape(b)), source) for b in bases)
        charted = re.search(rf"\b{re.escape(metric)}\b", source) is not None
        if not (metric.startswith("ray_") and (defined or charted)):
            missing.append(metric)
    assert not missing, f"{name} reads metrics neither Ray nor rayforge exports: {missing}"


def test_down_alerts_outlast_a_restart_the_watchdog_makes() -> None:
    """The watchdog restarts a dead Ray after failures x (interval + timeout) seconds; a node
    is scraped again one scrape interval after its agent answers. Each alert on a node, the
    head, the GCS or a node's ALIVE state waits longer than that and one more scrape
    interval before and after, so the restart that heals is never long enough to fire."""
    v = role_variables()
    watchdog = v["ray_liveness_failures"] * (v["ray_liveness_interval"] + v["ray_liveness_timeout"])
    scrape = duration_s(v["prometheus_scrape_interval"])
    down = ["RayHeadDown", "RayWorkerDown", "RayGcsDown", "RayNodeNotAlive"]
    for name in down:
        assert duration_s(alerts()[name]["for"]) > watchdog + 2 * scrape, name
