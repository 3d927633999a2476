"""Fixtures shared by every scenario's testinfra tests (pytest loads conftest.py files
from the repository root down to each scenario's tests/ directory).

Variables come from the roles' defaults overlaid with the scenario's inventory, so a test
asks for the value the roles were told to use, not a number of its own; ports come from the
inventory alone (every scenario moves them off their defaults).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The bounded load client of the fault and operation tests (tests/support/load_client.py).
sys.path.insert(0, str(ROOT / "tests" / "support"))
UNITS = ("ray-head", "ray-worker")
# The address other machines use to reach a host: the source IP of its default route.
IP_CMD = "ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'"


def role_defaults() -> dict:
    merged: dict = {}
    for path in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def is_port_variable(name: str) -> bool:
    """A port number a role listens on or connects to (the bounds of Ray's worker and replica
    ranges included): the values a role could hard-code and still pass."""
    return name.endswith("_port")


class ScenarioVars(dict):
    """Role defaults overlaid with a host's inventory, except ports: a port a test asks for
    must be stated by the scenario's inventory (KeyError otherwise), so a role that ignored
    the variable and used its default number fails the test instead of passing it."""

    def __missing__(self, key):
        if is_port_variable(key):
            raise KeyError(
                f"{key}: a port the tests check must be set in the scenario's inventory "
                "(.config/molecule/config.yml or molecule/<scenario>/molecule.yml), "
                "not taken from the role defaults"
            )
        raise KeyError(key)


def scenario_vars(inventory_vars: dict) -> ScenarioVars:
    merged = ScenarioVars({k: v for k, v in role_defaults().items() if not is_port_variable(k)})
    merged.update(inventory_vars)
    return merged


@pytest.fixture
def rayvars(host) -> dict:
    """Role defaults overlaid with this host's inventory variables (plain values only);
    ports come from the inventory alone (ScenarioVars)."""
    return scenario_vars(host.ansible.get_variables())


@pytest.fixture
def node_ip(host) -> str:
    """The address other machines use to reach this host (its default-route IPv4)."""
    return host.check_output(IP_CMD)


def peer(host, name: str):
    """Another host of the same Ansible inventory as `host`."""
    inventory = host.backend.ansible_inventory
    return host.get_host(f"ansible://{name}?ansible_inventory={inventory}")


def run_playbook(
    host,
    path: str,
    *extra: str,
    check: bool = True,
    timeout: float = 1200,
    env: dict | None = None,
):
    """Runs PATH (relative to the repository) with ansible-playbook against the inventory of
    `host`, without colours and with ENV added to the environment; with CHECK, a failure
    fails the test with the end of its output. Returns the subprocess.CompletedProcess."""
    cmd = ["ansible-playbook", "-i", host.backend.ansible_inventory, str(ROOT / path), *extra]
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true", **(env or {})}
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if check:
        assert done.returncode == 0, (
            f"{' '.join(cmd)}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
        )
    return done


def wait_until(predicate, timeout: float = 180, step: float = 3) -> bool:
    """Whether PREDICATE() became true within TIMEOUT seconds, asked every STEP seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


class DiagnoseCheck(dict):
    """One check of diagnose.yml's report: ok (PASS), verdict (PASS, FAIL or SKIP), id, name,
    detail (lines), fix (text)."""


def diagnose(host, *extra: str) -> tuple[subprocess.CompletedProcess, dict[int, DiagnoseCheck]]:
    """Runs playbooks/diagnose.yml against `host`'s inventory and returns its run and its
    report, {check number: DiagnoseCheck}, read from the JSON callback (the report task's
    lines, never re-wrapped by a terminal callback)."""
    done = run_playbook(
        host,
        "playbooks/diagnose.yml",
        *extra,
        check=False,
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
    )
    # The JSON document starts on a line of its own (profile_tasks prints around it).
    start = re.search(r"^\{$", done.stdout, re.M)
    assert start, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result, _ = json.JSONDecoder().raw_decode(done.stdout, start.start())
    reports = [
        outcome["msg"]
        for play in result["plays"]
        for task in play["tasks"]
        if task["task"]["name"].rpartition(" : ")[2] == "Diagnosis is reported"
        for outcome in task["hosts"].values()
        if "msg" in outcome
    ]
    failed = {
        f"{task['task']['name']} on {name}": outcome.get("msg")
        for play in result["plays"]
        for task in play["tasks"]
        for name, outcome in task["hosts"].items()
        if outcome.get("failed") or outcome.get("unreachable")
    }
    assert reports, f"diagnose.yml printed no report; failed: {failed}; {done.stderr[-3000:]}"
    lines = reports[0]
    checks: dict[int, DiagnoseCheck] = {}
    current = None
    for line in lines[1:]:
        head = re.match(r"(PASS|FAIL|SKIP) (\d+)\. (.*) \[(\w+)\]$", line)
        if head:
            current = checks[int(head[2])] = DiagnoseCheck(
                ok=head[1] == "PASS", verdict=head[1], id=head[4], name=head[3], detail=[], fix=""
            )
        elif line.startswith("   fix: "):
            current["fix"] = line[len("   fix: ") :]
        else:
            current["detail"].append(line.strip())
    assert len(checks) == 9, lines
    return done, checks


STATUS_SCHEMA = ROOT / "docs" / "status.schema.json"


def status_json(
    host, *extra: str, strict: bool = False
) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs playbooks/status.yml against `host`'s inventory (with status_strict=STRICT) and
    returns its run and the status JSON it wrote, validated against docs/status.schema.json."""
    import jsonschema

    with tempfile.TemporaryDirectory(prefix="rayforge-status-") as tmp:
        path = pathlib.Path(tmp) / "status.json"
        done = run_playbook(
            host,
            "playbooks/status.yml",
            "-e",
            f"status_strict={str(strict).lower()}",
            "-e",
            f"ray_status_json_path={path}",
            *extra,
            check=False,
        )
        assert path.exists(), f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
        document = json.loads(path.read_text())
    jsonschema.validate(document, json.loads(STATUS_SCHEMA.read_text()))
    return done, document


def ready(entry: dict) -> dict:
    """The Ready condition of a status JSON entry (the cluster, a node, an application)."""
    return next(c for c in entry["conditions"] if c["type"] == "Ready")


def agree(document: dict, checks: dict, ids: tuple[str, ...] = ()) -> None:
    """diagnose.yml's report and the status JSON give every check (or those of IDS) the same
    verdict. The two are separate runs, moments apart: a test whose fault is still moving
    the cluster (Serve replacing replicas a stopped node took with it) names the checks that
    cannot change meanwhile."""
    verdicts = {"pass": "PASS", "fail": "FAIL", "unknown": "SKIP"}
    assert [(c["id"], c["verdict"]) for c in checks.values() if not ids or c["id"] in ids] == [
        (c["id"], verdicts[c["status"]]) for c in document["checks"] if not ids or c["id"] in ids
    ], (checks, document["checks"])


def smoke_path(application: dict) -> str:
    """The HTTP path of APPLICATION's smoke test: its route prefix, then the test's path."""
    return (application.get("route_prefix") or "/").rstrip("/") + application["smoke_test"]["path"]


def inventory_value(host, name: str) -> str:
    """Variable NAME of `host` as the roles read it (templated by Ansible on the controller),
    "" when the inventory does not set it."""
    value = str(host.ansible("debug", f"var={name}").get(name) or "").strip()
    return "" if "VARIABLE IS NOT DEFINED" in value else value


def smoke(ip: str, rayvars: dict, application: dict) -> tuple[int, object]:
    """(status, body) of APPLICATION's smoke test (ray_serve_applications' own key) asked of
    the Serve port at IP from the controller."""
    test = application["smoke_test"]
    return http(
        f"http://{ip}:{rayvars['ray_serve_http_port']}{smoke_path(application)}",
        test.get("method", "GET"),
        test.get("body"),
    )


def head_api_headers(head, rayvars: dict) -> dict:
    """Headers the dashboard API wants: the cluster token read from HEAD, if auth is on."""
    if rayvars["ray_auth_mode"] != "token":
        return {}
    token = head.file(f"{rayvars['ray_config_dir']}/auth_token").content_string.strip()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api_headers(host, rayvars) -> dict:
    """Headers the dashboard API wants: the cluster token read from the head, if auth is on."""
    return head_api_headers(
        peer(host, host.ansible.get_variables()["groups"]["ray_head"][0]), rayvars
    )


class Dashboard:
    """The head's dashboard API, called from the controller with the cluster token."""

    def __init__(self, url: str, headers: dict):
        self.url, self.headers = url, headers

    def get(self, path: str) -> tuple[int, object]:
        return http(self.url + path, headers=self.headers)


def head_dashboard(host, rayvars: dict) -> Dashboard:
    """The dashboard of the head of `host`'s inventory, with the token read now."""
    head = peer(host, host.ansible.get_variables()["groups"]["ray_head"][0])
    return Dashboard(
        f"http://{head.check_output(IP_CMD)}:{rayvars['ray_dashboard_port']}",
        head_api_headers(head, rayvars),
    )


@pytest.fixture
def dashboard(host, rayvars) -> Dashboard:
    return head_dashboard(host, rayvars)


def http(
    url: str,
    method: str = "GET",
    body: object | None = None,
    headers: dict | None = None,
    timeout: float = 10.0,
    cafile: str | None = None,
) -> tuple[int, object]:
    """(status, decoded JSON or text) from the controller's side of the network; an https://
    URL is verified against CAFILE (PEM), else the system's CAs."""
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        context = ssl.create_default_context(cafile=cafile) if cafile else None
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    except (urllib.error.URLError, OSError) as err:  # refused, reset, timed out: no answer
        return 0, str(err)
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed test, attach the Ray units' journal of the host under test and, when the
    test used load balancers (a `nodes` fixture with `balancer_hosts`), their HAProxy journal:
    it logs every failed, cut or retried request with the node it went to."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    host = item.funcargs.get("host")
    for unit in UNITS if host is not None else ():
        out = host.run(f"journalctl -u {unit} -n 80 --no-pager")
        if out.stdout.strip() and "No entries" not in out.stdout:
            report.sections.append((f"journal {unit}", out.stdout))
    nodes = item.funcargs.get("nodes")
    for name, balancer in (nodes or {}).get("balancer_hosts", {}).items():
        out = balancer.run("journalctl -u haproxy -n 60 --no-pager")
        report.sections.append((f"journal haproxy on {name}", out.stdout))


def pytest_runtest_logreport(report):
    """A failure's traceback and captured output, printed as it happens: a scenario that its
    time limit cuts off never reaches pytest's summary, and its log must still say why each
    test failed (the summary, when reached, repeats them)."""
    if not report.failed:
        return
    text = [f"\n{'=' * 20} FAILED {report.nodeid} ({report.when}) {'=' * 20}"]
    text.append(report.longreprtext)
    for name, content in report.sections:
        text.append(f"{'-' * 10} {name} {'-' * 10}\n{content[-8000:]}")
    sys.stderr.write("\n".join(text) + "\n")
    sys.stderr.flush()
