#!/usr/bin/python
"""Apply a declarative Ray Serve config through the dashboard's REST API, idempotently."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ray_serve_apply
short_description: Deploy a Ray Serve config only when it differs from what runs, then wait
description:
  - Reads a Serve config (JSON, the schema of C(serve deploy)) from the managed host.
  - Compares it with what the Serve controller reports on C(GET /api/serve/applications/).
  - Sends it with C(PUT /api/serve/applications/) only when applications, HTTP options or
    proxy location differ. HTTP options cannot change on a running Serve, so in that case
    Serve is shut down (C(DELETE)) first.
  - Waits until every application is RUNNING with every deployment HEALTHY and all target
    replicas RUNNING; a failed deploy fails with Serve's own message.
options:
  dashboard_url: {type: str, required: true, description: Base URL of the Ray dashboard.}
  config_path: {type: path, required: true, description: Serve config file on the host.}
  headers: {type: dict, default: {}, description: Extra HTTP headers (authentication).}
  wait: {type: bool, default: true, description: Wait for the applications to be healthy.}
  timeout: {type: int, default: 300, description: Seconds to wait for the dashboard and for health.}
  state:
    type: str
    default: present
    choices: [present, absent]
    description: C(absent) shuts Serve down.
"""

RETURN = r"""
applications:
  description: Per application, its status, message and deployments' status and replica counts.
  type: dict
  returned: always
"""

import json
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

API = "/api/serve/applications/"


class ServeApi:
    def __init__(self, base_url: str, headers: dict, timeout: int):
        self.base = base_url.rstrip("/")
        self.headers = {"Accept": "application/json", **headers}
        self.timeout = timeout

    def call(self, method: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + API, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode() or "{}"
        return json.loads(text) if method == "GET" else {}

    def get(self) -> dict:
        """GET with retries while the dashboard comes up (connection refused, 5xx)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self.call("GET")
            except urllib.error.HTTPError as err:
                if err.code < 500 or time.monotonic() > deadline:
                    raise
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(2)


def http_error_text(err: urllib.error.HTTPError) -> str:
    try:
        body = err.read().decode(errors="replace")
    except Exception:  # best effort: the status line is still reported
        body = ""
    return f"HTTP {err.code} {err.reason}: {body.strip()}"


def differences(desired: dict, current: dict) -> list[str]:
    """What differs between the desired config and what the controller runs."""
    running = bool(current.get("controller_info"))
    if not running:
        return ["Serve is not running"]
    out = []
    if desired.get("proxy_location") and desired["proxy_location"] != current.get("proxy_location"):
        out.append("proxy_location")
    for key, value in (desired.get("http_options") or {}).items():
        if (current.get("http_options") or {}).get(key) != value:
            out.append(f"http_options.{key}")
    deployed = {
        name: app.get("deployed_app_config")
        for name, app in (current.get("applications") or {}).items()
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


def summarize(current: dict) -> dict:
    apps = {}
    for name, app in (current.get("applications") or {}).items():
        deps = {}
        for dname, dep in (app.get("deployments") or {}).items():
            replicas = dep.get("replicas") or []
            deps[dname] = {
                "status": dep.get("status"),
                "message": dep.get("message", ""),
                "target_replicas": dep.get("target_num_replicas"),
                "running_replicas": sum(1 for r in replicas if r.get("state") == "RUNNING"),
                "nodes": sorted({r.get("node_ip") for r in replicas if r.get("node_ip")}),
            }
        apps[name] = {
            "status": app.get("status"),
            "message": app.get("message", ""),
            "route_prefix": app.get("route_prefix"),
            "deployments": deps,
        }
    return apps


def healthy(desired: dict, current: dict) -> tuple[bool, str | None]:
    """(all healthy, fatal message if a deploy failed)."""
    apps = current.get("applications") or {}
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
            running = sum(1 for r in dep.get("replicas") or [] if r.get("state") == "RUNNING")
            if dep.get("status") != "HEALTHY" or running < (dep.get("target_num_replicas") or 0):
                return False, None
    return True, None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dashboard_url": {"type": "str", "required": True},
            "config_path": {"type": "path", "required": True},
            "headers": {"type": "dict", "default": {}, "no_log": True},
            "wait": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 300},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
        supports_check_mode=True,
    )
    p = module.params
    api = ServeApi(p["dashboard_url"], p["headers"], p["timeout"])

    try:
        current = api.get()
    except urllib.error.HTTPError as err:
        module.fail_json(
            msg=f"Serve API at {p['dashboard_url']} refused GET: {http_error_text(err)}"
        )
    except Exception as err:  # any transport failure goes to the operator
        module.fail_json(msg=f"Serve API at {p['dashboard_url']} did not answer: {err}")

    if p["state"] == "absent":
        changed = bool(current.get("controller_info"))
        if changed and not module.check_mode:
            try:
                api.call("DELETE")
            except urllib.error.HTTPError as err:
                module.fail_json(msg=f"Serve shutdown failed: {http_error_text(err)}")
        module.exit_json(changed=changed, applications={})

    try:
        with open(p["config_path"], encoding="utf-8") as fh:
            desired = json.load(fh)
    except (OSError, ValueError) as err:
        module.fail_json(msg=f"cannot read Serve config {p['config_path']}: {err}")

    diffs = differences(desired, current)
    changed = bool(diffs)
    running = {
        n: a.get("deployed_app_config") for n, a in (current.get("applications") or {}).items()
    }
    wanted = {a["name"]: a for a in desired.get("applications", [])}
    result = {
        "changed": changed,
        "differences": diffs,
        "diff": {
            "before": json.dumps(running, indent=2, sort_keys=True) + "\n",
            "after": json.dumps(wanted, indent=2, sort_keys=True) + "\n",
        },
    }
    if module.check_mode:
        module.exit_json(applications=summarize(current), **result)

    if changed:
        http_changed = any(d.startswith(("http_options", "proxy_location")) for d in diffs)
        try:
            if http_changed and current.get("controller_info"):
                # Serve fixes its HTTP options when it starts: restart it to apply new ones.
                api.call("DELETE")
                _wait_for_shutdown(api, p["timeout"])
            api.call("PUT", desired)
        except urllib.error.HTTPError as err:
            module.fail_json(msg=f"Serve rejected the config: {http_error_text(err)}", **result)

    if p["wait"]:
        deadline = time.monotonic() + p["timeout"]
        while True:
            current = api.get()
            ok, fatal = healthy(desired, current)
            if fatal:
                module.fail_json(msg=fatal, applications=summarize(current), **result)
            if ok:
                break
            if time.monotonic() > deadline:
                module.fail_json(
                    msg=f"Serve applications not healthy after {p['timeout']} s",
                    applications=summarize(current),
                    **result,
                )
            time.sleep(2)

    module.exit_json(applications=summarize(current), **result)


def _wait_for_shutdown(api: ServeApi, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    while api.get().get("controller_info") and time.monotonic() < deadline:
        time.sleep(2)


if __name__ == "__main__":
    main()
