#!/usr/bin/python
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
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
    replicas RUNNING (the ray role's C(ray_dashboard.health)); a failed deploy fails with
    Serve's own message.
  - The config that last became healthy is kept in O(last_good_path). A deploy that fails or
    does not become healthy within O(timeout) is replaced by it (O(rollback)), written back to
    O(config_path) too (the file names what Serve is meant to run), and the task fails saying
    so.
  - Holds an exclusive lock on O(lock_path) from the first read to the end, so the head's
    Serve reconciler never acts while a deploy is under way.
  - Every call goes through the ray role's dashboard client (module_utils/ray_dashboard.py).
  - With O(metrics_path), a healthy deploy also writes its time and the config's hash there as
    a node exporter textfile (Prometheus text format, replaced through a rename).
options:
  dashboard_url: {type: str, required: true, description: Base URL of the Ray dashboard.}
  config_path: {type: path, required: true, description: Serve config file on the host.}
  headers: {type: dict, default: {}, description: Extra HTTP headers (authentication).}
  wait: {type: bool, default: true, description: Wait for the applications to be healthy.}
  timeout:
    type: int
    default: 300
    description: Seconds to wait for the dashboard, then for health (and again for a rollback).
  last_good_path:
    type: path
    description: >-
      Where the config that last became healthy is kept (written after each healthy deploy,
      mode 0640, group O(group)). Omitted: none is kept and nothing is rolled back.
  rollback:
    type: bool
    default: true
    description: Re-apply O(last_good_path) when a deploy fails or times out.
  lock_path: {type: path, description: Lock file shared with the reconciler; omitted, none.}
  group: {type: str, description: Group that may read O(last_good_path) (the reconciler's).}
  metrics_path:
    type: path
    description: >-
      A C(*.prom) file in the node exporter's textfile directory, written after a healthy
      deploy: C(rayforge_serve_last_healthy_deploy_timestamp_seconds) (now, when the deploy
      changed what Serve runs or the last healthy config; else the time that config was kept)
      and C(rayforge_serve_last_healthy_deploy_info{config_hash}) 1, the SHA-256 of
      O(last_good_path)'s text. Left alone when it already holds that hash and nothing was
      deployed. A missing directory is a warning, not a failure. Omitted: none is written.
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
differences:
  description: What differed from the running config, in words (empty when nothing did).
  type: list
  returned: when state is present
rolled_back:
  description: Whether a failed deploy was replaced by the last healthy config.
  type: bool
  returned: when state is present
"""

import contextlib
import grp
import hashlib
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ray_dashboard import (
    Dashboard,
    DashboardError,
    apply,
    deploy_lock,
    differences,
    json_text,
    summarize,
    wait_healthy,
    write_json_atomic,
    write_text_atomic,
)

# The metrics a healthy deploy leaves for the node exporter (textfile collector).
TIMESTAMP = "rayforge_serve_last_healthy_deploy_timestamp_seconds"
INFO = "rayforge_serve_last_healthy_deploy_info"


def read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def config_hash(config: dict) -> str:
    """SHA-256 of CONFIG as last_good_path holds it: `sha256sum` of that file gives the same."""
    return hashlib.sha256(json_text(config).encode()).hexdigest()


def deploy_metrics(timestamp: float, digest: str) -> str:
    """The textfile of the last healthy deploy, in Prometheus' text format (0.0.4). Written by
    hand: the module runs with the host's python, which has no prometheus_client; DIGEST is
    hexadecimal, so the label value needs no escaping."""
    return (
        f"# HELP {TIMESTAMP} Unix time of the last Serve deploy by rayforge that became healthy.\n"
        f"# TYPE {TIMESTAMP} gauge\n"
        f"{TIMESTAMP} {timestamp:.3f}\n"
        f"# HELP {INFO} The config of the last healthy Serve deploy (SHA-256 of last_good_path).\n"
        f"# TYPE {INFO} gauge\n"
        f'{INFO}{{config_hash="{digest}"}} 1\n'
    )


def write_deploy_metrics(module: AnsibleModule, desired: dict, deployed: bool) -> bool:
    """Writes metrics_path after a healthy deploy; whether it changed the file. DEPLOYED: this
    run changed what Serve runs or the last healthy config (the time is now); otherwise the
    file is only written when it does not hold this config's hash (a textfile directory new
    since the deploy), with the time the last healthy config was written."""
    p = module.params
    path, digest = p["metrics_path"], config_hash(desired)
    try:
        with open(path, encoding="utf-8") as fh:
            held = re.search(r'config_hash="([0-9a-f]+)"', fh.read())
    except OSError:
        held = None
    if not deployed and held and held.group(1) == digest:
        return False
    kept = None
    if not deployed and p["last_good_path"]:
        with contextlib.suppress(OSError):
            kept = os.stat(p["last_good_path"]).st_mtime
    text = deploy_metrics(kept or time.time(), digest)
    try:
        write_text_atomic(path, text, 0o644)
    except OSError as err:
        module.warn(f"the last healthy deploy's metrics were not written to {path}: {err}")
        return False
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dashboard_url": {"type": "str", "required": True},
            "config_path": {"type": "path", "required": True},
            "headers": {"type": "dict", "default": {}, "no_log": True},
            "wait": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 300},
            "last_good_path": {"type": "path"},
            "rollback": {"type": "bool", "default": True},
            "lock_path": {"type": "path"},
            "group": {"type": "str"},
            "metrics_path": {"type": "path"},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        },
        supports_check_mode=True,
    )
    p = module.params
    api = Dashboard(p["dashboard_url"], p["headers"])
    lock = (
        deploy_lock(p["lock_path"], wait_s=p["timeout"])
        if p["lock_path"] and not module.check_mode
        else contextlib.nullcontext(True)
    )
    with lock as locked:
        if not locked:
            module.fail_json(msg=f"another Serve deploy held {p['lock_path']} for {p['timeout']} s")
        try:
            run(module, api)
        except DashboardError as err:
            module.fail_json(msg=f"Serve API at {p['dashboard_url']}: {err}")


def run(module: AnsibleModule, api: Dashboard) -> None:
    p = module.params
    current = api.serve_details(wait_s=p["timeout"])

    if p["state"] == "absent":
        changed = bool(current.get("controller_info"))
        if changed and not module.check_mode:
            api.shutdown_serve(p["timeout"])
        module.exit_json(changed=changed, applications={})

    try:
        desired = read_json(p["config_path"])
        if desired is None:
            raise OSError("no such file")
    except (OSError, ValueError) as err:
        module.fail_json(msg=f"cannot read Serve config {p['config_path']}: {err}")

    diffs = differences(desired, current)
    running = {
        n: a.get("deployed_app_config") for n, a in (current.get("applications") or {}).items()
    }
    wanted = {a["name"]: a for a in desired.get("applications", [])}
    result = {
        "changed": bool(diffs),
        "differences": diffs,
        "rolled_back": False,
        "diff": {
            "before": json.dumps(running, indent=2, sort_keys=True) + "\n",
            "after": json.dumps(wanted, indent=2, sort_keys=True) + "\n",
        },
    }
    if module.check_mode:
        module.exit_json(applications=summarize(current), **result)

    apply(api, desired, current, p["timeout"])
    if not p["wait"]:
        module.exit_json(applications=summarize(current), **result)

    ok, failure, current = wait_healthy(api, desired, p["timeout"])
    gid = grp.getgrnam(p["group"]).gr_gid if p["group"] else -1
    if ok:
        if p["last_good_path"] and write_json_atomic(p["last_good_path"], desired, 0o640, gid):
            result["changed"] = True
        if p["metrics_path"] and write_deploy_metrics(module, desired, result["changed"]):
            result["changed"] = True
        module.exit_json(applications=summarize(current), **result)

    last_good = read_json(p["last_good_path"]) if p["last_good_path"] and p["rollback"] else None
    if last_good is None or last_good == desired:
        module.fail_json(
            msg=f"Serve deploy failed: {failure}", applications=summarize(current), **result
        )

    # The failed config is replaced by the one that last became healthy.
    apply(api, last_good, current, p["timeout"])
    back, back_failure, current = wait_healthy(api, last_good, p["timeout"])
    result["rolled_back"] = True
    # The file on the host names what Serve is meant to run: the restored config, so a later
    # run that deploys the file without rendering it (upgrade.yml's health gate between
    # batches) does not send the failed one again. site.yml renders the inventory's anew.
    write_json_atomic(p["config_path"], last_good, 0o640, gid)
    names = ", ".join(a["name"] for a in last_good.get("applications", []))
    outcome = (
        "it serves again" if back else f"the rollback did not become healthy either: {back_failure}"
    )
    module.fail_json(
        msg=(
            f"Serve deploy failed: {failure}. Rolled back to the last config that became healthy "
            f"({p['last_good_path']}: {names}); {outcome}. {p['config_path']} holds it again. "
            "Fix the config and run again."
        ),
        applications=summarize(current),
        **result,
    )


if __name__ == "__main__":
    main()
