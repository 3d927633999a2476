# Copyright: rayforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
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

SERVE_API = "/api/serve/applications/"
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

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        """One request; the JSON answer as a dict ({} for an empty body)."""
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
                text = resp.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            raise DashboardError(
                f"{method} {path}: HTTP {err.code} {err.reason}: {_error_body(err)}", err.code
            ) from err
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            # HTTPException: an answer cut short (IncompleteRead), as from a dying dashboard.
            raise DashboardError(f"{method} {path}: no answer from {self.base}: {err!r}") from err
        if not text.strip():
            return {}
        try:
            answer = json.loads(text)
        except ValueError as err:
            raise DashboardError(f"{method} {path}: not JSON: {text[:200]!r}") from err
        return answer if isinstance(answer, dict) else {"result": answer}

    def serve_details(self, wait_s: float = 0, clock: Callable[[], float] = time.monotonic) -> dict:
        """Serve's state; retried for WAIT_S seconds while the dashboard is down or answers 5xx
        (it comes up after the GCS). A 4xx (a bad token) is raised at once."""
        deadline = clock() + wait_s
        while True:
            try:
                return self.request("GET", SERVE_API)
            except DashboardError as err:
                if (err.status is not None and err.status < 500) or clock() >= deadline:
                    raise
            time.sleep(POLL_S)

    def deploy_serve(self, config: dict) -> None:
        """Sends a whole Serve config (``PUT``); Serve deploys it asynchronously."""
        self.request("PUT", SERVE_API, config)

    def shutdown_serve(self) -> None:
        """Shuts Serve down (``DELETE``): every application, the controller and the proxies."""
        self.request("DELETE", SERVE_API)

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


def health(desired: dict, details: dict) -> tuple[bool, str | None]:
    """(healthy, failure): rayforge's one definition of a healthy Serve deployment.

    Healthy: every desired application is deployed with exactly its config, RUNNING, and each
    of its deployments HEALTHY with at least its target number of replicas RUNNING. The
    failure is Serve's own message when an application is DEPLOY_FAILED (waiting longer
    cannot help); None while it may still become healthy.
    """
    apps = details.get("applications") or {}
    for want in desired.get("applications", []):
        app = apps.get(want["name"])
        if app is None or app.get("deployed_app_config") != want:
            return False, None
        status = app.get("status")
        if status == "DEPLOY_FAILED":
            return False, f"application {want['name']} failed to deploy: {app.get('message')}"
        if status != "RUNNING":
            return False, None
        for dep in (app.get("deployments") or {}).values():
            if dep.get("status") != "HEALTHY" or running_replicas(dep) < (
                dep.get("target_num_replicas") or 0
            ):
                return False, None
    return True, None


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
    return "; ".join(parts) or "no application"


def summarize(details: dict) -> dict:
    """Per application: status, message, route prefix, and per deployment its status, target
    and running replicas and the node addresses of its replicas."""
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
            }
        apps[name] = {
            "status": app.get("status"),
            "message": app.get("message", ""),
            "route_prefix": app.get("route_prefix"),
            "deployments": deps,
        }
    return apps


def apply(dashboard: Dashboard, desired: dict, details: dict, timeout_s: float) -> list[str]:
    """Makes Serve run DESIRED when it differs from DETAILS; returns the differences.

    A change of HTTP options or proxy location shuts Serve down first (and waits up to
    TIMEOUT_S seconds for it); then the whole config is sent. Does not wait for health.
    """
    diffs = differences(desired, details)
    if diffs:
        if needs_restart(diffs) and serve_running(details):
            dashboard.shutdown_serve()
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


def write_json_atomic(path: str, data: dict, mode: int = 0o640, gid: int = -1) -> bool:
    """Writes DATA as JSON to PATH through a rename; False when PATH already holds it."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except OSError:
        pass
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    if gid >= 0:
        os.chown(tmp, -1, gid)
    os.replace(tmp, path)
    return True
