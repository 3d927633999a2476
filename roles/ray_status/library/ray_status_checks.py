#!/usr/bin/python
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""Judge a cluster's recorded findings by rayforge's named checks; write the status JSON."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ray_status_checks
short_description: Judge a Ray cluster's findings by rayforge's named checks, write status JSON
description:
  - Runs the checks of the ray role's C(ray_verdict) (module_utils/ray_verdict.py) over what
    the ray_status role's probe found - the head dashboard's view (ray_cluster_info's result,
    whose problems come from the same definition of healthy as the deploy gate) and each
    node's own findings - and returns them with the problems and the verdict. status.yml's
    report, diagnose.yml's report and the JSON are all made from this one result, so they
    never disagree.
  - With O(json_path), writes the status document (schema C(rayforge.status/v1), documented
    in docs/operations.md) there, atomically; each condition's C(since) is carried over from
    the document already there when its status did not change. Nothing is written in check
    mode.
  - Meant to run once, on the machine running Ansible (the findings are every host's).
options:
  cluster:
    type: dict
    required: true
    description: ray_cluster_info's result (with C(dashboard.answers) false when not read).
  nodes:
    type: dict
    required: true
    description:
      - Inventory host -> its findings (C(host), C(role), C(ip), C(unit), C(unit_state),
        C(proxy_expected), C(self_ip), C(self_lo), C(controller), C(routes), C(listen),
        C(object_store), C(object_store_problem)); an empty dict for a host whose probe did
        not finish.
  config:
    type: dict
    default: {}
    description: The rendered Serve config; empty when it could not be read.
  config_path:
    type: str
    default: ""
    description: Where the rendered Serve config lives on the head, for the reports.
  config_error:
    type: str
    default: ""
    description: Why the rendered Serve config could not be read.
  serve_port:
    type: int
    required: true
    description: Serve's HTTP port on every node.
  proxy_location:
    type: str
    default: EveryNode
    description: The inventory's Serve proxy location, for the reports.
  from_controller:
    type: bool
    default: true
    description: Whether each node's Serve port was also asked from the controller.
  json_path:
    type: path
    description: Where to write the status document; not written when omitted.
"""

EXAMPLES = r"""
- name: Findings are judged and the status JSON written
  ray_status_checks:
    cluster: "{{ cluster_info }}"
    nodes: "{{ findings_by_host }}"
    config: "{{ rendered_config }}"
    serve_port: 8000
    json_path: /var/tmp/rayforge-status.json
  delegate_to: localhost
  run_once: true
  register: verdict
"""

RETURN = r"""
checks:
  description:
    - Every check, in report order, each with C(id) (stable - C(units_active), C(dashboard),
      C(nodes_alive), C(serve_running), C(proxies), C(applications_deployed), C(routes),
      C(applications_running), C(object_store)), C(name), C(status) (C(pass), C(fail) or
      C(unknown), when what it reads could not be read), C(detail) (lines), C(problems) and
      C(causes) (cause -> hosts, for choosing a fix).
  type: list
  elements: dict
  returned: always
problems:
  description: Every problem of every check, each with check, subject, reason and message.
  type: list
  elements: dict
  returned: always
healthy:
  description: Whether every check passes.
  type: bool
  returned: always
status:
  description: The status document (what O(json_path) receives).
  type: dict
  returned: always
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ray_dashboard import write_json_atomic
from ansible.module_utils.ray_verdict import evaluate, healthy, problems, status_document


def read_previous(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            answer = json.load(fh)
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "cluster": {"type": "dict", "required": True},
            "nodes": {"type": "dict", "required": True},
            "config": {"type": "dict", "default": {}},
            "config_path": {"type": "str", "default": ""},
            "config_error": {"type": "str", "default": ""},
            "serve_port": {"type": "int", "required": True},
            "proxy_location": {"type": "str", "default": "EveryNode"},
            "from_controller": {"type": "bool", "default": True},
            "json_path": {"type": "path"},
        },
        supports_check_mode=True,
    )
    p = module.params
    checks = evaluate(
        p["cluster"],
        {str(host): found or {} for host, found in p["nodes"].items()},
        p["config"],
        serve_port=p["serve_port"],
        config_path=p["config_path"],
        config_error=p["config_error"],
        proxy_location=p["proxy_location"],
        from_controller=p["from_controller"],
    )
    previous = read_previous(p["json_path"]) if p["json_path"] else None
    document = status_document(checks, p["cluster"], p["nodes"], p["config"], previous)
    changed = False
    if p["json_path"] and not module.check_mode:
        try:
            os.makedirs(os.path.dirname(p["json_path"]) or ".", exist_ok=True)
            write_json_atomic(p["json_path"], document, mode=0o644)
        except OSError as err:
            module.fail_json(msg=f"cannot write the status JSON to {p['json_path']}: {err}")
        changed = True
    module.exit_json(
        changed=changed,
        checks=checks,
        problems=problems(checks),
        healthy=healthy(checks),
        status=document,
    )


if __name__ == "__main__":
    main()
