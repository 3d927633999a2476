"""diagnose.yml names each fault an operator meets, made here on purpose on the converged host,
with the FAIL line and the fix it prints; restart-serve.yml then brings the host back to a
report without a FAIL. (A stopped unit is the cluster scenario's: tests/test_cluster.py.)

The faults: the Serve port firewalled from the controller, two applications on one route
prefix in the rendered config (past the preflight, as a hand edit is), Serve shut down, and
Serve started by hand on 127.0.0.1 without one of the applications. Each test leaves the host
as it found it: test_lifecycle.py's check-mode run after them expects no change.

The head's Serve reconciler undoes a hand-made Serve fault once it has lasted three of its
polls; this scenario's inventory gives it a long interval
(ray_serve_reconciler_interval) so the fault is still there while diagnose looks.
"""

from __future__ import annotations

import json

from conftest import (
    agree,
    diagnose,
    head_api_headers,
    http,
    ready,
    run_playbook,
    smoke,
    status_json,
    wait_until,
)

testinfra_hosts = ["ansible://ray_head"]

# What a check of the report is, by its number in diagnose.yml.
UNITS, API, ALIVE, SERVE_SEEN, ENDPOINTS, APPS_LISTED, ROUTES, APPS_HEALTHY, STORE = range(1, 10)


def failing(checks: dict) -> set[int]:
    return {n for n, c in checks.items() if not c["ok"]}


def serve_api(host, rayvars, node_ip) -> tuple[str, dict]:
    return (
        f"http://{node_ip}:{rayvars['ray_dashboard_port']}/api/serve/applications/",
        head_api_headers(host, rayvars),
    )


def running(url: str, headers: dict) -> dict | None:
    """{application: status} Serve's API reports, or None when it does not answer."""
    status, body = http(url, headers=headers)
    if status != 200 or not isinstance(body, dict):
        return None
    return {name: app["status"] for name, app in (body.get("applications") or {}).items()}


def test_diagnose_names_a_proxy_firewalled_from_the_controller(host, rayvars, node_ip):
    port = rayvars["ray_serve_http_port"]
    controller = host.check_output("ip -4 route show default | awk '{print $3}'")
    # A table of the test's own: a drop in any base chain is final, whatever the project's
    # table accepts.
    host.check_output(
        "nft -f - <<'EOF'\n"
        "table inet rayforge_test_block {\n"
        "  chain input { type filter hook input priority -10; policy accept;\n"
        f"    ip saddr {controller} tcp dport {port} drop\n"
        "  }\n"
        "}\n"
        "EOF"
    )
    try:
        done, checks = diagnose(host, "-e", "diagnose_strict=true")
    finally:
        host.check_output("nft delete table inet rayforge_test_block")
    assert done.returncode != 0
    assert failing(checks) == {ENDPOINTS}, checks
    detail = " ".join(checks[ENDPOINTS]["detail"])
    assert f"{node_ip}:{port} answers on the node but from the controller fails" in detail, detail
    assert f"Open TCP {port} to the nodes" in checks[ENDPOINTS]["fix"], checks[ENDPOINTS]


def test_diagnose_names_two_applications_on_one_route_prefix(host, rayvars):
    config_path = f"{rayvars['ray_config_dir']}/serve-config.json"
    rendered = json.loads(host.file(config_path).content_string)
    first, second = rendered["applications"][0], rendered["applications"][1]
    second["route_prefix"] = first["route_prefix"]
    host.check_output(f"cp -p {config_path} {config_path}.test-saved")
    try:
        host.check_output(f"cat > {config_path} <<'EOF'\n{json.dumps(rendered)}\nEOF")
        done, checks = diagnose(host, "-e", "diagnose_strict=true")
    finally:
        host.check_output(f"mv {config_path}.test-saved {config_path}")
    assert done.returncode != 0
    # Serve still runs the second application on its own prefix: another config than the
    # rendered one, which check 6 names too.
    assert failing(checks) == {ROUTES, APPS_LISTED}, checks
    assert (
        f"application {second['name']} runs another config than {config_path}"
        in checks[APPS_LISTED]["detail"]
    ), checks[APPS_LISTED]
    assert (
        f"route_prefix {first['route_prefix']} used by several applications in the rendered config"
        in checks[ROUTES]["detail"]
    ), checks[ROUTES]
    assert "Give each application its own route_prefix" in checks[ROUTES]["fix"], checks[ROUTES]


def test_diagnose_follows_serve_shut_down_then_started_by_hand_and_restart_serve_heals(
    host, rayvars, node_ip
):
    url, headers = serve_api(host, rayvars, node_ip)
    applications = rayvars["ray_serve_applications"]
    missing, kept = applications[0], applications[1]
    rendered = json.loads(
        host.file(f"{rayvars['ray_config_dir']}/serve-config.json").content_string
    )

    # Serve shut down (what `serve shutdown` does): the dashboard says "Serve not started".
    status, body = http(url, "DELETE", headers=headers, timeout=120)
    assert status == 200, body
    assert wait_until(lambda: running(url, headers) == {}, 120)
    done, checks = diagnose(host)
    assert done.returncode == 0, done.stderr[-3000:]
    # Without Serve no proxy is expected anywhere: check 4 names the cause, not check 5.
    assert failing(checks) == {SERVE_SEEN, APPS_LISTED, APPS_HEALTHY}, checks
    assert "Serve not started" in " ".join(checks[SERVE_SEEN]["detail"]), checks[SERVE_SEEN]
    assert "playbooks/restart-serve.yml" in checks[SERVE_SEEN]["fix"], checks[SERVE_SEEN]

    # Started again by hand, the seed's way: HTTP on 127.0.0.1, one application left out.
    by_hand = {
        **rendered,
        "http_options": {**rendered["http_options"], "host": "127.0.0.1"},
        "applications": [a for a in rendered["applications"] if a["name"] != missing["name"]],
    }
    status, body = http(url, "PUT", by_hand, headers=headers, timeout=60)
    assert status == 200, body
    assert wait_until(lambda: (running(url, headers) or {}).get(kept["name"]) == "RUNNING", 180)
    done, checks = diagnose(host)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {ENDPOINTS, APPS_LISTED} <= failing(checks), checks
    detail = " ".join(checks[ENDPOINTS]["detail"])
    assert "127.0.0.1 answers: bound to localhost" in detail, detail
    assert "Serve runs with HTTP host 127.0.0.1" in checks[ENDPOINTS]["fix"], checks[ENDPOINTS]
    assert f"application {missing['name']} is not deployed" in checks[APPS_LISTED]["detail"], (
        checks[APPS_LISTED]
    )
    assert "playbooks/restart-serve.yml" in checks[APPS_LISTED]["fix"], checks[APPS_LISTED]
    # The status JSON says the same of the missing application, and of every check.
    _, document = status_json(host)
    apps = {a["name"]: a for a in document["applications"]}
    assert (apps[missing["name"]]["serve_status"], apps[missing["name"]]["in_config"]) == (
        "NOT_DEPLOYED",
        True,
    )
    assert (ready(apps[missing["name"]])["status"], ready(apps[missing["name"]])["reason"]) == (
        "False",
        "ApplicationNotDeployed",
    )
    agree(document, checks)

    # The fix both name.
    run_playbook(host, "playbooks/restart-serve.yml")
    for application in applications:
        status, body = smoke(node_ip, rayvars, application)
        assert status == 200, (application["name"], body)
    done, checks = diagnose(host, "-e", "diagnose_strict=true")
    assert not failing(checks), checks
    assert done.returncode == 0, done.stderr[-3000:]
