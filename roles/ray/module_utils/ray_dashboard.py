# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""Ray's dashboard REST API, and what rayforge calls a healthy Serve deployment.

The one client for every call rayforge makes to the dashboard: the Ansible modules import it
as ``ansible.module_utils.ray_dashboard`` (the ray role ships it, and every role depends on
ray), and the Serve reconciler on the head imports the same file as a plain module. Standard
library only, so it runs in Ansible's module payload and in any Python 3.10+.

Serve's state is the answer of ``GET /api/serve/applications/`` (Ray's ``ServeInstanceDetails``:
``controller_info``, ``proxy_location``, ``http_options``, ``proxies`` per node id, and
``applications`` with ``status``, ``message``, ``deployed_app_config`` and ``deployments``,
each with ``status``, ``target_num_replicas`` and ``replicas`` carrying ``state`` and
``node_ip``). A desired config is the JSON of a Serve config file (``serve deploy``'s schema).

The cluster's nodes are the answer of ``GET /nodes?view=summary`` (``data.summary``, one entry
per node with its ``raylet``: ``nodeId``, ``nodeManagerAddress``, ``state`` ALIVE or DEAD,
``isHeadNode``, ``resourcesTotal``; ``data.nodeLogicalResources``, what is in use per node id,
as Ray's text). ``GET /api/gcs_healthz`` answers 200 once the dashboard reaches a healthy GCS.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

SERVE_API = "/api/serve/applications/"
NODES_API = "/nodes?view=summary"
GCS_HEALTH_API = "/api/gcs_healthz"
# The state API behind ``ray list actors``: the ALIVE actors of the cluster.
ALIVE_ACTORS_API = (
    "/api/v0/actors?limit=10000&detail=false"
    "&filter_keys=state&filter_predicates=%3D&filter_values=ALIVE"
)
# Serve's own actors by the start of their class name: the controller, the proxies (Python,
# older HTTP, and the HAProxy managers of ray_serve_proxy haproxy), the replicas.
SERVE_ACTOR_ROLES = {
    "ServeController": "controller",
    "ProxyActor": "proxy",
    "HTTPProxyActor": "proxy",
    "HAProxyManager": "proxy",
    "ServeReplica": "replica",
}
# Seconds one HTTP request may take; the waits below retry within their own deadlines.
REQUEST_TIMEOUT_S = 30
# Seconds between two polls of Serve's state while waiting.
POLL_S = 2


class DashboardError(Exception):
    """The dashboard refused a request (HTTP status >= 400) or did not answer."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Dashboard:
    """Ray's dashboard at BASE_URL (``http://host:8265``), with HEADERS on every request.

    ``headers`` carries the cluster token (``Authorization: Bearer ...``) when token
    authentication is on. Every method raises DashboardError, whose ``status`` is the HTTP
    status (None when the dashboard did not answer at all).
    """

    def __init__(self, base_url: str, headers: dict | None = None):
        self.base = base_url.rstrip("/")
        self.headers = {"Accept": "application/json", **(headers or {})}

    def request(
        self, method: str, path: str, body: dict | None = None, timeout_s: float | None = None
    ) -> dict:
        """One request; the JSON answer as a dict ({} for an empty body)."""
        text = self.request_text(method, path, body, timeout_s)
        if not text.strip():
            return {}
        try:
            answer = json.loads(text)
        except ValueError as err:
            raise DashboardError(f"{method} {path}: not JSON: {text[:200]!r}") from err
        return answer if isinstance(answer, dict) else {"result": answer}

    def request_text(
        self, method: str, path: str, body: dict | None = None, timeout_s: float | None = None
    ) -> str:
        """One request; the answer's body as text. TIMEOUT_S: seconds it may take (default
        REQUEST_TIMEOUT_S)."""
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            timeout = REQUEST_TIMEOUT_S if timeout_s is None else timeout_s
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            raise DashboardError(
                f"{method} {path}: HTTP {err.code} {err.reason}: {_error_body(err)}", err.code
            ) from err
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            # HTTPException: an answer cut short (IncompleteRead), as from a dying dashboard.
            raise DashboardError(f"{method} {path}: no answer from {self.base}: {err!r}") from err
        return text

    def retried(
        self,
        call: Callable[[], Any],
        wait_s: float = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> Any:
        """CALL's result, CALL retried for WAIT_S seconds while the dashboard is down or answers
        5xx (it comes up after the GCS, and a busy GCS can answer ``Deadline Exceeded`` once);
        the last DashboardError after that. A 4xx (a bad token) is raised at once."""
        deadline = clock() + wait_s
        while True:
            try:
                return call()
            except DashboardError as err:
                if (err.status is not None and err.status < 500) or clock() >= deadline:
                    raise
            time.sleep(POLL_S)

    def serve_details(self, wait_s: float = 0, clock: Callable[[], float] = time.monotonic) -> dict:
        """Serve's state, retried for WAIT_S seconds (``retried``)."""
        return self.retried(lambda: self.request("GET", SERVE_API), wait_s, clock)

    def gcs_healthy(self, wait_s: float = 0, clock: Callable[[], float] = time.monotonic) -> None:
        """Returns once the dashboard answers ``/api/gcs_healthz`` (it reaches a healthy GCS),
        retried for WAIT_S seconds (``retried``)."""
        self.retried(lambda: self.request_text("GET", GCS_HEALTH_API), wait_s, clock)

    def nodes(self, wait_s: float = 0, clock: Callable[[], float] = time.monotonic) -> dict:
        """The cluster's nodes, alive and dead: ``data`` of ``/nodes?view=summary``, retried
        for WAIT_S seconds (``retried``)."""
        answer = self.retried(lambda: self.request("GET", NODES_API), wait_s, clock)
        return answer.get("data") or {}

    def alive_actors(self) -> list[dict]:
        """Every ALIVE actor of the cluster (the state API of ``ray list actors``)."""
        answer = self.request("GET", ALIVE_ACTORS_API)
        return ((answer.get("data") or {}).get("result") or {}).get("result") or []

    def deploy_serve(self, config: dict) -> None:
        """Sends a whole Serve config (``PUT``); Serve deploys it asynchronously."""
        self.request("PUT", SERVE_API, config)

    def shutdown_serve(self, timeout_s: float | None = None) -> None:
        """Shuts Serve down (``DELETE``): every application, the controller and the proxies.

        The dashboard answers once serve.shutdown() has returned, after the replicas' graceful
        shutdown (20 s each by default) and the proxies' drain: about 30 s on the lab, so
        TIMEOUT_S (seconds, default REQUEST_TIMEOUT_S) should be the caller's own deadline."""
        self.request("DELETE", SERVE_API, timeout_s=timeout_s)

    def wait_serve_shutdown(self, timeout_s: float) -> bool:
        """Whether Serve's controller is gone within TIMEOUT_S seconds."""
        deadline = time.monotonic() + timeout_s
        while self.serve_details(wait_s=timeout_s).get("controller_info"):
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True


def _error_body(err: urllib.error.HTTPError) -> str:
    try:
        return err.read().decode(errors="replace").strip()
    except OSError:  # the status line is still reported
        return ""


# --- What runs, compared with what should -------------------------------------------------


def serve_running(details: dict) -> bool:
    """Whether a Serve controller runs (Serve was started and not shut down)."""
    return bool(details.get("controller_info"))


def differences(desired: dict, details: dict) -> list[str]:
    """What differs between a desired Serve config and what the controller runs, in words.

    Empty when Serve runs exactly the desired applications (each one's
    ``deployed_app_config`` equal to its entry), proxy location and HTTP options.
    """
    if not serve_running(details):
        return ["Serve is not running"]
    out = []
    if desired.get("proxy_location") and desired["proxy_location"] != details.get("proxy_location"):
        out.append("proxy_location")
    for key, value in (desired.get("http_options") or {}).items():
        if (details.get("http_options") or {}).get(key) != value:
            out.append(f"http_options.{key}")
    deployed = {
        name: app.get("deployed_app_config")
        for name, app in (details.get("applications") or {}).items()
    }
    wanted = {app["name"]: app for app in desired.get("applications", [])}
    for name in sorted(set(deployed) - set(wanted)):
        out.append(f"application {name} is to be removed")
    for name, app in sorted(wanted.items()):
        if name not in deployed:
            out.append(f"application {name} is new")
        elif deployed[name] != app:
            out.append(f"application {name} changed")
    return out


def needs_restart(diffs: list[str]) -> bool:
    """Serve fixes its HTTP options and proxy location when it starts: changing them takes a
    shutdown first."""
    return any(d.startswith(("http_options", "proxy_location")) for d in diffs)


def running_replicas(deployment: dict) -> int:
    return sum(1 for r in deployment.get("replicas") or [] if r.get("state") == "RUNNING")


def deployment_ready(deployment: dict) -> bool:
    """A deployment is HEALTHY with at least its target number of replicas RUNNING."""
    return deployment.get("status") == "HEALTHY" and running_replicas(deployment) >= (
        deployment.get("target_num_replicas") or 0
    )


def health(desired: dict, details: dict) -> tuple[bool, str | None]:
    """(healthy, failure): the deploy's verdict, the checks of serve_problems() on DESIRED.

    Healthy: no problem (serve_problems: Serve runs exactly the desired applications, each
    with its config, RUNNING, and each deployment HEALTHY with at least its target number of
    replicas RUNNING; an application removed from the config is a problem while it is
    DELETING, until Serve has stopped its replicas: its route may still answer). The failure
    is Serve's own message when an application of DESIRED runs its desired config and is
    DEPLOY_FAILED (waiting longer cannot help); None while it may still become healthy.
    """
    if not serve_problems(details, desired):
        return True, None
    apps = details.get("applications") or {}
    for want in desired.get("applications", []):
        app = apps.get(want["name"]) or {}
        if app.get("deployed_app_config") == want and app.get("status") == "DEPLOY_FAILED":
            return False, f"application {want['name']} failed to deploy: {app.get('message')}"
    return False, None


def unhealthy_reason(desired: dict, details: dict) -> str:
    """Why HEALTH is false, in Serve's words: each application's status and message and each
    deployment's replicas, for an operator reading a failed run."""
    apps = details.get("applications") or {}
    parts = []
    for want in desired.get("applications", []):
        app = apps.get(want["name"])
        if app is None:
            parts.append(f"{want['name']}: not deployed")
            continue
        text = f"{want['name']}: {app.get('status')}"
        if app.get("message"):
            text += f" ({app['message'].strip()})"
        for name, dep in sorted((app.get("deployments") or {}).items()):
            text += (
                f"; {name} {dep.get('status')} {running_replicas(dep)}/"
                f"{dep.get('target_num_replicas')} replicas running"
            )
            if dep.get("message"):
                text += f" ({dep['message'].strip()})"
        parts.append(text)
    wanted = {want["name"] for want in desired.get("applications", [])}
    for name in sorted(set(apps) - wanted):
        parts.append(f"{name}: {apps[name].get('status')}, removed from the config")
    return "; ".join(parts) or "no application"


def summarize(details: dict) -> dict:
    """Per application: status, message, route prefix, and per deployment its status, target
    and running replicas and the node addresses (``nodes``) and ids (``node_ids``) of its
    replicas, whatever their state."""
    apps = {}
    for name, app in (details.get("applications") or {}).items():
        deps = {}
        for dname, dep in (app.get("deployments") or {}).items():
            replicas = dep.get("replicas") or []
            deps[dname] = {
                "status": dep.get("status"),
                "message": dep.get("message", ""),
                "target_replicas": dep.get("target_num_replicas"),
                "running_replicas": running_replicas(dep),
                "nodes": sorted({r.get("node_ip") for r in replicas if r.get("node_ip")}),
                "node_ids": sorted({r.get("node_id") for r in replicas if r.get("node_id")}),
            }
        apps[name] = {
            "status": app.get("status"),
            "message": app.get("message", ""),
            "route_prefix": app.get("route_prefix"),
            "deployments": deps,
        }
    return apps


# --- The cluster as facts: nodes, replicas, proxies, one verdict ----------------------------


def node_facts(nodes_data: dict) -> list[dict]:
    """Each node of ``/nodes?view=summary``'s ``data``, ALIVE ones first, the head first, then
    by address: ``node_id``, ``ip``, ``hostname``, ``state`` (ALIVE or DEAD), ``is_head``,
    ``state_message`` (why a node died; empty otherwise), ``resources_total`` (Ray's logical
    resources as the dashboard names them: ``CPU``, ``GPU`` counts, ``memory`` and
    ``objectStoreMemory`` in bytes, custom ones) and ``resources_in_use`` (Ray's own lines
    such as ``1.0/2.0 CPU``, ALIVE nodes only, object store lines left out: they are not
    logical resources)."""
    in_use = nodes_data.get("nodeLogicalResources") or {}
    out = []
    for entry in nodes_data.get("summary") or []:
        raylet = entry.get("raylet") or {}
        node_id = raylet.get("nodeId") or ""
        state = raylet.get("state") or "UNKNOWN"
        used = in_use.get(node_id) if state == "ALIVE" else None
        out.append(
            {
                "node_id": node_id,
                "ip": raylet.get("nodeManagerAddress") or entry.get("ip") or "",
                "hostname": raylet.get("nodeManagerHostname") or entry.get("hostname") or "",
                "state": state,
                "is_head": bool(raylet.get("isHeadNode")),
                "state_message": raylet.get("stateMessage") or "",
                "resources_total": raylet.get("resourcesTotal") or {},
                "resources_in_use": [
                    line.strip()
                    for line in (used or "").splitlines()
                    if line.strip() and "object_store" not in line
                ],
            }
        )
    out.sort(key=lambda n: (n["state"] != "ALIVE", not n["is_head"], n["ip"], n["node_id"]))
    return out


def replica_applications(details: dict) -> dict[str, list[str]]:
    """Node id -> the applications holding a replica there (in any state), sorted."""
    out: dict[str, set[str]] = {}
    for name, app in (details.get("applications") or {}).items():
        for dep in (app.get("deployments") or {}).values():
            for replica in dep.get("replicas") or []:
                if replica.get("node_id"):
                    out.setdefault(replica["node_id"], set()).add(name)
    return {node_id: sorted(apps) for node_id, apps in out.items()}


def proxy_facts(details: dict) -> list[dict]:
    """Serve's proxies, by node address: ``node_id``, ``node_ip``, ``status`` (HEALTHY,
    UNHEALTHY, STARTING, DRAINING...)."""
    return sorted(
        (
            {
                "node_id": proxy.get("node_id") or node_id,
                "node_ip": proxy.get("node_ip") or "",
                "status": proxy.get("status") or "UNKNOWN",
            }
            for node_id, proxy in (details.get("proxies") or {}).items()
        ),
        key=lambda p: (p["node_ip"], p["node_id"]),
    )


def proxy_expected(details: dict, is_head: bool, replica_apps: list[str]) -> bool:
    """Whether Serve runs a proxy on a node: on the head unless proxy_location is Disabled,
    and with EveryNode also on every node holding a replica (not on the others)."""
    location = details.get("proxy_location")
    if not serve_running(details) or location == "Disabled":
        return False
    return is_head or (location == "EveryNode" and bool(replica_apps))


def proxy_anchor_replicas(nodes_data: dict) -> int:
    """Replicas the proxy anchor should have now: one per ALIVE node, counted by address (a
    restarted node's old record may read ALIVE for a moment beside its new one). A node that
    drains still counts: Serve stops its anchor replica at once by itself and keeps the
    replacement pending (one replica per node), so the node gets one the moment it returns.
    0 when no node is ALIVE."""
    return len({n["ip"] for n in node_facts(nodes_data or {}) if n["state"] == "ALIVE"})


def with_anchor_replicas(desired: dict, application: str, replicas: int) -> dict:
    """DESIRED with every deployment of APPLICATION (the proxy anchor) at REPLICAS replicas, in
    the type the config had (the roles render it as text or as a number)."""
    out = json.loads(json.dumps(desired))
    for app in out.get("applications", []):
        if app.get("name") != application:
            continue
        for dep in app.get("deployments") or []:
            old = dep.get("num_replicas")
            dep["num_replicas"] = str(replicas) if isinstance(old, str) else replicas
    return out


def problem(check: str, subject: str, reason: str, message: str) -> dict:
    """One thing wrong: the CHECK that finds it (an id of ray_verdict.CHECKS), its SUBJECT
    (``cluster``, ``node/<name>`` or ``application/<name>``), a REASON in CamelCase (stable,
    for machines) and a MESSAGE (for people)."""
    return {"check": check, "subject": subject, "reason": reason, "message": message}


def application_problems(name: str, app: dict) -> list[str]:
    """What keeps one running application from being healthy, in Serve's words: its status
    when not RUNNING, each deployment not HEALTHY or short of its target replicas."""
    return [p["message"] for p in _application_problems(name, app)]


def _application_problems(name: str, app: dict) -> list[dict]:
    subject = f"application/{name}"
    out = []
    if app.get("status") != "RUNNING":
        message = (app.get("message") or "").strip()
        out.append(
            problem(
                "applications_running",
                subject,
                "DeployFailed" if app.get("status") == "DEPLOY_FAILED" else "ApplicationNotRunning",
                f"application {name} is {app.get('status')}" + (f": {message}" if message else ""),
            )
        )
    for dname, dep in sorted((app.get("deployments") or {}).items()):
        running, target = running_replicas(dep), dep.get("target_num_replicas")
        if not deployment_ready(dep):
            message = (dep.get("message") or "").strip()
            out.append(
                problem(
                    "applications_running",
                    subject,
                    "DeploymentBelowTarget"
                    if dep.get("status") == "HEALTHY"
                    else "DeploymentNotHealthy",
                    f"deployment {name}/{dname} is {dep.get('status')} with {running}/"
                    f"{'?' if target is None else target} replicas RUNNING"
                    + (f": {message}" if message else ""),
                )
            )
    return out


def serve_problems(
    details: dict, desired: dict | None = None, config_label: str = "the Serve config"
) -> list[dict]:
    """What keeps Serve's state DETAILS from being healthy (problem() each): Serve not
    running; each application not RUNNING or a deployment of it not HEALTHY with its target
    replicas RUNNING; and with DESIRED (CONFIG_LABEL names it) each difference from it: an
    application not deployed, running another config, or running but not in it, and Serve's
    HTTP options or proxy location. The one definition of a healthy Serve: the deploy gate
    (health()), the reconciler and the cluster's checks (cluster_facts()) all read it."""
    if not serve_running(details):
        return [problem("serve_running", "cluster", "ServeNotRunning", "Serve is not running")]
    out = []
    for name, app in sorted((details.get("applications") or {}).items()):
        out.extend(_application_problems(name, app))
    if desired is not None:
        for diff in differences(desired, details):
            out.append(_difference_problem(diff, config_label))
    return out


def _difference_problem(diff: str, config_label: str) -> dict:
    """One of differences()'s items as a problem of a cluster expected to run CONFIG_LABEL."""
    for suffix, reason, text in (
        (" is new", "ApplicationNotDeployed", "{} is not deployed"),
        (" is to be removed", "ApplicationNotInConfig", "{} runs but is not in " + config_label),
        (" changed", "ApplicationConfigDiffers", "{} runs another config than " + config_label),
    ):
        if diff.endswith(suffix):
            what = diff[: -len(suffix)]
            return problem(
                "applications_deployed",
                "application/" + what.removeprefix("application "),
                reason,
                text.format(what),
            )
    return problem(
        "applications_deployed",
        "cluster",
        "ServeOptionsDiffer",
        f"Serve's {diff} differs from {config_label}",
    )


def cluster_facts(
    nodes_data: dict | None,
    details: dict | None,
    desired: dict | None = None,
    expected_nodes: dict[str, str] | None = None,
    config_label: str = "the Serve config",
) -> dict:
    """The cluster as facts, with rayforge's verdict on it.

    NODES_DATA is ``/nodes?view=summary``'s ``data`` and DETAILS Serve's state, each None when
    not read. DESIRED, when given, is the Serve config the cluster should run (CONFIG_LABEL
    names it in the reasons); EXPECTED_NODES maps a name (the inventory host) to the address
    of a node that should be ALIVE.

    Returns ``nodes`` (node_facts(), each also with ``name`` (its EXPECTED_NODES name, or ""),
    ``replica_applications``, ``proxy`` (its Serve proxy's status, None without one) and
    ``proxy_expected``), ``serve`` (``running``, ``controller_node_ip``, ``proxy_location``,
    ``http_host``, ``http_port``), ``applications`` (summarize(), each also with ``source``,
    who deployed it as Serve says, declarative or imperative, and ``problems``), ``proxies``
    (proxy_facts()), ``proxy_anchor_replicas`` (proxy_anchor_replicas(), None without
    NODES_DATA), and the verdict: ``problems`` (problem() each, under the checks
    ``nodes_alive``, ``serve_running``, ``applications_running``, ``applications_deployed``
    and ``proxies``: every expected node ALIVE; serve_problems(); a HEALTHY proxy on every
    ALIVE node where Serve runs one), ``reasons`` (their messages) and ``healthy`` (no
    problem).
    """
    problems: list[dict] = []
    serve_read = details is not None
    details = details if details is not None else {}
    nodes = node_facts(nodes_data or {}) if nodes_data is not None else []
    alive_ips = {n["ip"] for n in nodes if n["state"] == "ALIVE"}
    names = {ip: name for name, ip in (expected_nodes or {}).items()}
    if nodes_data is not None:
        for name, ip in sorted((expected_nodes or {}).items()):
            if ip not in alive_ips:
                problems.append(
                    problem(
                        "nodes_alive",
                        f"node/{name}",
                        "NodeNotAlive",
                        f"{name}: no ALIVE Ray node with IP {ip}",
                    )
                )

    placed = replica_applications(details)
    proxies = proxy_facts(details)
    proxy_by_node = {p["node_id"]: p["status"] for p in proxies}
    for node in nodes:
        node["name"] = names.get(node["ip"], "")
        node["replica_applications"] = placed.get(node["node_id"], [])
        node["proxy"] = proxy_by_node.get(node["node_id"]) if node["state"] == "ALIVE" else None
        node["proxy_expected"] = node["state"] == "ALIVE" and proxy_expected(
            details, node["is_head"], node["replica_applications"]
        )

    applications = summarize(details)
    serve: dict = {}
    if serve_read:
        http = details.get("http_options") or {}
        serve = {
            "running": serve_running(details),
            "controller_node_ip": (details.get("controller_info") or {}).get("node_ip"),
            "proxy_location": details.get("proxy_location"),
            "http_host": http.get("host"),
            "http_port": http.get("port"),
        }
        found = serve_problems(details, desired, config_label)
        problems.extend(found)
        for name, app in (details.get("applications") or {}).items():
            applications[name]["source"] = app.get("source")
            applications[name]["problems"] = [
                p["message"]
                for p in found
                if p["check"] == "applications_running" and p["subject"] == f"application/{name}"
            ]
        for node in nodes:
            if node["proxy_expected"] and node["proxy"] != "HEALTHY":
                problems.append(
                    problem(
                        "proxies",
                        f"node/{node['name'] or node['ip']}",
                        "ProxyUnhealthy" if node["proxy"] else "ProxyMissing",
                        f"Serve proxy on node {node['ip']} is {node['proxy']}"
                        if node["proxy"]
                        else f"node {node['ip']} holds replicas but runs no Serve proxy"
                        if not node["is_head"]
                        else f"head {node['ip']} runs no Serve proxy",
                    )
                )
    return {
        "nodes": nodes,
        "serve": serve,
        "applications": applications,
        "proxies": proxies,
        "proxy_anchor_replicas": (
            proxy_anchor_replicas(nodes_data) if nodes_data is not None else None
        ),
        "healthy": not problems,
        "problems": problems,
        "reasons": [p["message"] for p in problems],
    }


def serve_actor_facts(actors: list[dict]) -> list[dict]:
    """Serve's own actors among ALIVE ACTORS, whoever started them: ``role`` (controller,
    proxy or replica), ``class_name``, ``namespace``, ``node_id``, ``name``; sorted."""
    out = []
    for actor in actors:
        class_name = actor.get("class_name") or ""
        role = next((r for p, r in SERVE_ACTOR_ROLES.items() if class_name.startswith(p)), None)
        if role:
            out.append(
                {
                    "role": role,
                    "class_name": class_name,
                    "namespace": actor.get("ray_namespace") or "",
                    "node_id": actor.get("node_id") or "",
                    "name": actor.get("name") or "",
                }
            )
    return sorted(out, key=lambda a: (a["role"], a["class_name"], a["node_id"], a["name"]))


def apply(dashboard: Dashboard, desired: dict, details: dict, timeout_s: float) -> list[str]:
    """Makes Serve run DESIRED when it differs from DETAILS; returns the differences.

    A change of HTTP options or proxy location shuts Serve down first (and waits up to
    TIMEOUT_S seconds for it); then the whole config is sent. Does not wait for health.
    """
    diffs = differences(desired, details)
    if diffs:
        if needs_restart(diffs) and serve_running(details):
            dashboard.shutdown_serve(timeout_s)
            if not dashboard.wait_serve_shutdown(timeout_s):
                raise DashboardError(f"Serve did not shut down within {timeout_s} s")
        dashboard.deploy_serve(desired)
    return diffs


def wait_healthy(
    dashboard: Dashboard,
    desired: dict,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, str | None, dict]:
    """Polls until DESIRED is healthy, has failed, or TIMEOUT_S seconds pass.

    Returns (healthy, failure, last details); the failure is Serve's message, or on timeout
    what is still not healthy.
    """
    deadline = clock() + timeout_s
    while True:
        details = dashboard.serve_details(wait_s=max(0.0, deadline - clock()))
        ok, fatal = health(desired, details)
        if ok or fatal:
            return ok, fatal, details
        if clock() >= deadline:
            return (
                False,
                f"not healthy after {timeout_s:g} s: {unhealthy_reason(desired, details)}",
                details,
            )
        time.sleep(POLL_S)


# --- One deploy at a time -------------------------------------------------------------------


@contextlib.contextmanager
def deploy_lock(path: str, wait_s: float | None) -> Iterator[bool]:
    """Holds an exclusive lock on PATH while a deploy runs; yields whether it was acquired.

    WAIT_S None waits as long as it takes; 0 tries once (the reconciler, which must never
    fight a deploy the role is making). The file is made when missing, readable by all, so
    root (the role) and the ray user (the reconciler) lock the same one.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(1)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def json_text(data: dict) -> str:
    """DATA as write_json_atomic writes it (sorted keys: one text per config)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_json_atomic(path: str, data: dict, mode: int = 0o640, gid: int = -1) -> bool:
    """Writes DATA as JSON to PATH through a rename; False when PATH already holds it."""
    text = json_text(data)
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    write_text_atomic(path, text, mode, gid)
    return True


def write_text_atomic(path: str, text: str, mode: int = 0o640, gid: int = -1) -> None:
    """Writes TEXT to PATH through a temporary file in the same directory and a rename: a
    reader sees the old file or the new one, whole. The temporary name does not end like PATH
    (a node exporter reading *.prom never reads it half written)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        if gid >= 0:
            os.chown(tmp, -1, gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
