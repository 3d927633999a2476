# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""rayforge's one verdict on a cluster: named checks with stable ids, and the status document.

The checks read two kinds of findings: the dashboard's, judged by ray_dashboard.cluster_facts()
(ray_cluster_info's result: its ``problems`` carry the id of the check that found each one, the
same problems the deploy gate and the Serve reconciler compute through serve_problems()); and
each node's own, which only the node can see (its Ray unit, its Serve port asked on its address,
on 127.0.0.1 and from the controller, its proxy's routes, what listens on the port, its object
store). ``evaluate()`` turns both into the list of CHECKS, each ``pass``, ``fail`` or
``unknown`` (not judged: what it reads could not be read) with its problems. status.yml's text
report and its JSON, diagnose.yml's report and the exported metrics are all rendered from that
list; nothing else decides whether the cluster is healthy.

``status_document()`` makes the JSON of status.yml (schema SCHEMA, documented in
docs/operations.md): conditions in KubeRay's manner, a cluster ``Ready`` and one per node and
per application, each with ``status`` (True, False, Unknown), ``reason``, ``message`` and
``since`` (when it last changed, carried over from the previous document).

Standard library only: it runs in Ansible's module payload.
"""

from __future__ import annotations

import datetime
import json

SCHEMA = "rayforge.status/v1"

# The checks, in the order they are reported: (id, what passes). The ids are stable: the
# JSON, the metrics and the alerts name them.
CHECKS = (
    ("units_active", "Ray units are active on every node"),
    ("dashboard", "Dashboard API answers on the head"),
    ("nodes_alive", "Every node is ALIVE in the cluster"),
    ("serve_running", 'Serve runs and the dashboard sees it ("Serve not started" false positive)'),
    (
        "proxies",
        "Every Serve proxy is HEALTHY and answers, from outside the node too "
        "(endpoints not responding)",
    ),
    (
        "applications_deployed",
        "Serve runs the rendered config's applications, each with its config",
    ),
    ("routes", "Route prefixes are unique and every proxy routes as configured"),
    ("applications_running", "Applications are RUNNING with all replicas"),
    ("object_store", "Every node's object store is in /dev/shm, with room for it"),
)
CHECK_IDS = tuple(check_id for check_id, _ in CHECKS)


def _problem(check: str, subject: str, reason: str, message: str) -> dict:
    return {"check": check, "subject": subject, "reason": reason, "message": message}


def _proxy_fault(host: str, found: dict, serve_port: int) -> tuple[str, str, str] | None:
    """(cause, reason, message) of a node whose Serve proxy should answer and does not."""
    where = f"{host} {found.get('ip')}:{serve_port}"
    listen = found.get("listen") or []
    if found.get("self_ip") == "answers":
        if found.get("controller") in ("answers", "not asked"):
            return None
        return (
            "firewall",
            "ProxyUnreachable",
            f"{where} answers on the node but from the controller {found.get('controller')}",
        )
    if found.get("self_lo") == "answers":
        return (
            "localhost",
            "ProxyBoundToLocalhost",
            f"{where} {found.get('self_ip')}, 127.0.0.1 answers: bound to localhost "
            f"(listening on {', '.join(listen) or '?'})",
        )
    if listen:
        return (
            "other",
            "ProxyNotAnswering",
            f"{where} is bound ({', '.join(listen)}) but /-/healthz {found.get('self_ip')}",
        )
    return ("no_proxy", "ProxyNotListening", f"{where}: nothing listens on the port")


def _duplicates(prefixes: list[str]) -> list[str]:
    return sorted({p for p in prefixes if prefixes.count(p) > 1})


def evaluate(
    cluster: dict,
    nodes: dict[str, dict],
    config: dict | None,
    *,
    serve_port: int,
    config_path: str = "",
    config_error: str = "",
    proxy_location: str = "EveryNode",
    from_controller: bool = True,
) -> list[dict]:
    """Every check of CHECKS over the findings: CLUSTER is ray_cluster_info's result (its
    ``dashboard.answers`` false when the dashboard could not be asked), NODES each play host's
    own findings ({} when its probe did not finish), CONFIG the rendered Serve config ({} or
    None when missing: CONFIG_ERROR says why).

    Each check: ``id``, ``name``, ``status`` (pass, fail or unknown), ``detail`` (what was
    seen, lines), ``problems`` (each with check, subject, reason and message) and ``causes``
    (cause -> the hosts it was seen on, for the report to choose its fix)."""
    config = config or {}
    api_ok = bool((cluster.get("dashboard") or {}).get("answers"))
    serve = cluster.get("serve") or {}
    serve_on = bool(serve.get("running"))
    apps = cluster.get("applications") or {}
    found = {h: n for h, n in nodes.items() if n}
    from_dashboard: dict[str, list[dict]] = {check_id: [] for check_id in CHECK_IDS}
    for p in cluster.get("problems") or []:
        from_dashboard.setdefault(p["check"], []).append(p)
    if not api_ok and not from_dashboard["dashboard"]:
        error = (cluster.get("dashboard") or {}).get("error") or "no answer"
        from_dashboard["dashboard"].append(
            _problem("dashboard", "cluster", "DashboardUnavailable", f"dashboard API: {error}")
        )
    out: dict[str, dict] = {}

    def add(check_id, problems, detail, causes=None, unknown=False):
        status = "fail" if problems else "unknown" if unknown else "pass"
        out[check_id] = {
            "id": check_id,
            "name": dict(CHECKS)[check_id],
            "status": status,
            "detail": detail,
            "problems": problems,
            "causes": causes or {},
        }

    # units_active
    problems, causes = [], {}
    for host, n in nodes.items():
        if not n:
            problems.append(
                _problem(
                    "units_active",
                    f"node/{host}",
                    "NoFindings",
                    f"{host}: no findings (unreachable, or a probe failed: see above)",
                )
            )
            causes.setdefault("no_findings", []).append(host)
        elif n.get("unit_state") != "active":
            installed = n.get("unit_state") != "not installed"
            problems.append(
                _problem(
                    "units_active",
                    f"node/{host}",
                    "UnitNotActive" if installed else "UnitNotInstalled",
                    f"{host}: unit {n.get('unit')} is {n.get('unit_state')}",
                )
            )
            causes.setdefault("stopped" if installed else "not_installed", []).append(host)
    units = sorted({n.get("unit") for n in found.values() if n.get("unit")})
    add(
        "units_active",
        problems,
        [p["message"] for p in problems] or [f"{', '.join(units)} active on {len(found)} node(s)"],
        causes,
    )

    # dashboard
    problems = from_dashboard["dashboard"]
    url = (cluster.get("dashboard") or {}).get("url") or "the dashboard"
    add("dashboard", problems, [p["message"] for p in problems] or [f"{url} answers"])

    # nodes_alive
    problems = from_dashboard["nodes_alive"]
    alive = [n["ip"] for n in cluster.get("nodes") or [] if n.get("state") == "ALIVE"]
    add(
        "nodes_alive",
        problems,
        ["not checked: the dashboard API does not answer"]
        if not api_ok
        else [p["message"] for p in problems]
        or [f"{len(alive)} ALIVE node(s): {', '.join(alive)}"],
        unknown=not api_ok,
    )

    # serve_running: the dashboard finds Serve through its controller actor in namespace
    # "serve"; the state API lists every ALIVE actor, whatever started it, and each proxy says
    # which routes it serves.
    actors = cluster.get("serve_actors") or []
    replicas = [a for a in actors if a.get("role") == "replica"]
    routes_seen = [n["routes"] for n in found.values() if n.get("routes")]
    problems = list(from_dashboard["serve_running"])
    if api_ok and serve_on and not apps:
        problems.append(
            _problem("serve_running", "cluster", "NoApplication", "Serve runs no application")
        )
    roles = [a.get("role") for a in actors]
    namespaces = sorted({a.get("namespace") for a in actors})
    add(
        "serve_running",
        problems,
        [
            "dashboard API: "
            + (
                "not answering"
                if not api_ok
                else f"controller on {serve.get('controller_node_ip')}, {len(apps)} application(s)"
                if serve_on
                else "Serve not started"
            ),
            f"actors ALIVE (ray list actors): {roles.count('controller')} controller(s), "
            f"{roles.count('proxy')} proxy(ies), {len(replicas)} replica(s)"
            + (f" in namespace(s) {', '.join(namespaces)}" if actors else ""),
            f"proxies with routes (/-/routes): {len(routes_seen)} of {len(nodes)} node(s)",
        ],
        {"outside" if replicas or routes_seen else "none": []} if problems else {},
        unknown=not api_ok,
    )

    # proxies: where Serve should run one, it is HEALTHY (the dashboard) and answers on the
    # node's address, from the node and from the controller.
    problems, causes = list(from_dashboard["proxies"]), {}
    with_proxy = [h for h, n in found.items() if n.get("proxy_expected")]
    for host in with_proxy:
        fault = _proxy_fault(host, found[host], serve_port)
        if fault:
            cause, reason, message = fault
            problems.append(_problem("proxies", f"node/{host}", reason, message))
            causes.setdefault(cause, []).append(host)
    without = [h for h, n in found.items() if not n.get("proxy_expected")]
    add(
        "proxies",
        problems,
        [p["message"] for p in problems]
        or [
            f"{len(with_proxy)} proxy(ies) answer /-/healthz on :{serve_port}"
            + (" from the controller and" if from_controller else "")
            + f" on the node itself (proxy_location {proxy_location}, Serve http host "
            f"{serve.get('http_host', '?')})"
        ]
        + (
            [
                f"{', '.join(without)}: no proxy expected (Serve runs them on the head and on "
                "nodes with replicas only)"
            ]
            if without
            else []
        ),
        causes,
    )

    # What the checks that read Serve say when they cannot judge it.
    not_judged = (
        ["not checked: the dashboard API does not answer"]
        if not api_ok
        else ["not checked: Serve is not running"]
        if not serve_on
        else []
    )

    # applications_deployed: the rendered config against what Serve runs (names and configs).
    config_apps = [a.get("name") for a in config.get("applications") or []]
    problems = list(from_dashboard["applications_deployed"])
    if not config:
        problems.insert(
            0,
            _problem(
                "applications_deployed",
                "cluster",
                "ConfigMissing",
                f"the rendered Serve config {config_path} is missing ({config_error})",
            ),
        )
    add(
        "applications_deployed",
        problems,
        [p["message"] for p in problems]
        or not_judged
        or [f"{len(config_apps)} configured, all running: {', '.join(config_apps)}"],
        unknown=not (api_ok and serve_on),
    )

    # routes: no route prefix twice, in the config or among running applications; each
    # proxy's /-/routes as the config wants.
    routed = [a for a in config.get("applications") or [] if a.get("route_prefix", "/")]
    expected = {a.get("route_prefix", "/"): a.get("name") for a in routed}
    problems, causes = [], {}
    for prefixes, where in (
        ([a.get("route_prefix", "/") for a in routed], "the rendered config"),
        (
            [a.get("route_prefix") for a in apps.values() if a.get("route_prefix")],
            "the running applications",
        ),
    ):
        dups = _duplicates(prefixes)
        if dups:
            problems.append(
                _problem(
                    "routes",
                    "cluster",
                    "RoutePrefixConflict",
                    f"route_prefix {', '.join(dups)} used by several applications in {where}",
                )
            )
            causes.setdefault("duplicate", [])
    routing = {h: n["routes"] for h, n in found.items() if isinstance(n.get("routes"), dict)}
    for host, routes in routing.items():
        if config and routes != expected:
            problems.append(
                _problem(
                    "routes",
                    f"node/{host}",
                    "RoutesDiffer",
                    f"{host} proxy routes {_json(routes)}, the config wants {_json(expected)}",
                )
            )
            causes.setdefault("mismatch", []).append(host)
    add(
        "routes",
        problems,
        [p["message"] for p in problems]
        or (
            ["not checked: no rendered Serve config"]
            if not config
            else [f"routes {_json(expected)} on {len(routing)} proxy(ies)"]
        ),
        causes,
        unknown=not config,
    )

    # applications_running
    problems = list(from_dashboard["applications_running"])
    add(
        "applications_running",
        problems,
        [p["message"] for p in problems]
        or not_judged
        or (
            ["no application runs"]
            if not apps
            else [f"{len(apps)} application(s) RUNNING, every deployment HEALTHY"]
        ),
        unknown=not (api_ok and serve_on and apps),
    )

    # object_store: Ray falls back to disk (slow) when /dev/shm had too little space
    # available as the node started.
    problems = [
        _problem(
            "object_store", f"node/{h}", "ObjectStoreNotInShm", f"{h}: {n['object_store_problem']}"
        )
        for h, n in found.items()
        if n.get("object_store_problem")
    ]
    add(
        "object_store",
        problems,
        [p["message"] for p in problems]
        or [f"{h}: object store {n.get('object_store')}" for h, n in found.items()],
    )
    return [out[check_id] for check_id in CHECK_IDS]


def _json(value) -> str:
    return json.dumps(value, sort_keys=True)


def problems(checks: list[dict]) -> list[dict]:
    """Every problem of CHECKS, in report order."""
    return [p for check in checks for p in check["problems"]]


def healthy(checks: list[dict]) -> bool:
    """The cluster is healthy when every check passes."""
    return all(check["status"] == "pass" for check in checks)


def _condition(status: str, reason: str, message: str, since: str, previous: dict | None) -> dict:
    if previous and previous.get("status") == status and previous.get("since"):
        since = previous["since"]
    return {"type": "Ready", "status": status, "reason": reason, "message": message, "since": since}


def _ready(previous_conditions: list | None) -> dict | None:
    return next((c for c in previous_conditions or [] if c.get("type") == "Ready"), None)


def status_document(
    checks: list[dict],
    cluster: dict,
    nodes: dict[str, dict],
    config: dict | None,
    previous: dict | None = None,
    now: datetime.datetime | None = None,
) -> dict:
    """status.yml's JSON (schema SCHEMA) from CHECKS (evaluate()) and the findings they were
    made of. PREVIOUS, the last document (None for none), gives each condition whose status
    did not change its ``since``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    stamp = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    if previous is not None and previous.get("schema") != SCHEMA:
        previous = None
    previous = previous or {}
    api_ok = bool((cluster.get("dashboard") or {}).get("answers"))
    every = problems(checks)
    by_subject: dict[str, list[dict]] = {}
    for p in every:
        by_subject.setdefault(p["subject"], []).append(p)

    def ready(subject: str, good: str, unknown: bool, previous_conditions, also=()) -> dict:
        found = (by_subject.get(subject) or []) + list(also)
        if found:
            return _condition(
                "False",
                found[0]["reason"],
                "; ".join(p["message"] for p in found),
                stamp,
                _ready(previous_conditions),
            )
        if unknown:
            return _condition(
                "Unknown",
                "DashboardUnavailable",
                "the dashboard API does not answer",
                stamp,
                _ready(previous_conditions),
            )
        return _condition("True", good, "", stamp, _ready(previous_conditions))

    failed = [c for c in checks if c["status"] == "fail"]
    unknown = [c for c in checks if c["status"] == "unknown"]
    cluster_condition = _condition(
        "False" if failed else "Unknown" if unknown else "True",
        every[0]["reason"] if every else "ChecksNotMade" if unknown else "AllChecksPass",
        "; ".join(p["message"] for p in every)
        if every
        else "not judged: " + ", ".join(c["id"] for c in unknown)
        if unknown
        else "",
        stamp,
        _ready(previous.get("conditions")),
    )
    previous_nodes = {n.get("name"): n for n in previous.get("nodes") or []}
    dashboard_nodes = {n.get("ip"): n for n in cluster.get("nodes") or [] if n.get("ip")}
    node_out = []
    for host, n in nodes.items():
        seen = dashboard_nodes.get(n.get("ip")) or {}
        node_out.append(
            {
                "name": host,
                "ip": n.get("ip", ""),
                "role": n.get("role", ""),
                "unit": n.get("unit", ""),
                "unit_state": n.get("unit_state", ""),
                "ray_state": seen.get("state", "UNKNOWN" if not api_ok else "MISSING"),
                "conditions": [
                    ready(
                        f"node/{host}",
                        "NodeReady",
                        not api_ok,
                        (previous_nodes.get(host) or {}).get("conditions"),
                    )
                ],
            }
        )
    running = cluster.get("applications") or {}
    configured = [a.get("name") for a in (config or {}).get("applications") or []]
    names = configured + sorted(set(running) - set(configured))
    previous_apps = {a.get("name"): a for a in previous.get("applications") or []}
    app_out = []
    for name in names:
        app = running.get(name) or {}
        app_out.append(
            {
                "name": name,
                "serve_status": app.get("status") or ("UNKNOWN" if not api_ok else "NOT_DEPLOYED"),
                "route_prefix": app.get("route_prefix"),
                "in_config": name in configured,
                "conditions": [
                    ready(
                        f"application/{name}",
                        "ApplicationReady",
                        not api_ok,
                        (previous_apps.get(name) or {}).get("conditions"),
                        # Serve down: no application is ready.
                        also=[p for p in every if p["check"] == "serve_running"],
                    )
                ],
            }
        )
    return {
        "schema": SCHEMA,
        "generated_at": stamp,
        "healthy": healthy(checks),
        "dashboard_url": (cluster.get("dashboard") or {}).get("url", ""),
        "conditions": [cluster_condition],
        "checks": [
            {k: c[k] for k in ("id", "name", "status", "detail", "problems")} for c in checks
        ],
        "nodes": node_out,
        "applications": app_out,
    }
