#!/usr/bin/python
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""Read a Ray cluster's nodes, Serve applications and proxies, and rayforge's verdict on them."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ray_cluster_info
short_description: Read a Ray cluster's nodes, Serve applications and proxies, with a verdict
description:
  - Asks the Ray dashboard of the head, through the ray role's dashboard client
    (module_utils/ray_dashboard.py), for C(/api/gcs_healthz), then the nodes
    (C(/nodes?view=summary)), Serve's state (C(/api/serve/applications/)) and, when asked,
    the ALIVE actors (the state API behind C(ray list actors)).
  - Returns them as facts (nodes, applications with their deployments and where their
    replicas run, proxies per node) with one verdict, RV(healthy), and the RV(reasons) it is
    not. The verdict is the ray role's C(ray_dashboard.cluster_facts); with O(config_path) it
    includes C(ray_dashboard.health), the deploy's own definition of a healthy Serve.
  - Read-only; supports check mode (it runs the same and changes nothing).
  - A dashboard that does not answer is a fact, not a failure (RV(dashboard.answers) false,
    RV(healthy) false, the error in RV(reasons)), so a report can still be made. The module
    fails only for its arguments or an unreadable O(config_path).
options:
  dashboard_url:
    type: str
    required: true
    description: >-
      Base URL of the Ray dashboard (C(http://host:port)), as the managed host reaches it.
  headers:
    type: dict
    default: {}
    description: HTTP headers of every request (C(Authorization) with the cluster token).
  gather_subset:
    type: list
    elements: str
    choices: [nodes, serve, serve_actors]
    default: [nodes, serve]
    description:
      - What is read after C(/api/gcs_healthz). C(nodes) the cluster's nodes, C(serve) Serve's
        applications and proxies, C(serve_actors) Serve's ALIVE actors from the state API (up
        to 10000 actors of the whole cluster; not by default).
      - An empty list only asks whether the dashboard answers with a healthy GCS.
  wait:
    type: int
    default: 0
    description:
      - Seconds to wait for the dashboard to answer C(/api/gcs_healthz) (a head that is
        starting) and then every read of O(gather_subset) (a busy GCS can fail one call with
        HTTP 503) before giving up on it; one deadline for all of them. 0 asks once. A 4xx
        answer (a wrong token) is not waited on.
  config_path:
    type: path
    description:
      - A Serve config file (JSON, the schema of C(serve deploy)) on the managed host that
        Serve should run. When given, an application of it that is not deployed or runs
        another config, or a running one it does not list, is a reason. Without it, only what
        runs is judged.
  expected_nodes:
    type: dict
    default: {}
    description:
      - Name (an inventory host) to node IP address of every node that should be ALIVE; each
        that is not is a reason. Needs C(nodes) in O(gather_subset).
"""

EXAMPLES = r"""
- name: Cluster state is read from the head's dashboard
  ray_cluster_info:
    dashboard_url: http://127.0.0.1:8265
    headers: {Authorization: "Bearer {{ token }}"}
    config_path: /etc/rayforge/serve-config.json
    expected_nodes: {ray-head-01: 10.0.10.11, ray-worker-01: 10.0.10.21}
  register: cluster

- name: Cluster is healthy
  ansible.builtin.assert:
    that: cluster.healthy
    fail_msg: "{{ cluster.reasons | join('; ') }}"
"""

RETURN = r"""
dashboard:
  description: The dashboard asked.
  type: dict
  returned: always
  contains:
    url: {description: O(dashboard_url) without a trailing slash., type: str}
    answers:
      description: >-
        Whether it answered C(/api/gcs_healthz) (within O(wait) seconds).
      type: bool
    error:
      description: >-
        Why not (the HTTP status and body, or the connection error); empty when it answered.
      type: str
nodes:
  description: >-
    Every node the head knows, ALIVE first, the head first. Empty when C(nodes) was not read
    or the dashboard did not answer.
  type: list
  elements: dict
  returned: always
  contains:
    name: {description: "Its name in O(expected_nodes), by address; empty if none.", type: str}
    node_id: {description: Ray's node id (hex)., type: str}
    ip: {description: The address the node advertises., type: str}
    hostname: {description: Its host name., type: str}
    state: {description: ALIVE or DEAD., type: str}
    is_head: {description: Whether it is the head node., type: bool}
    state_message: {description: "Why a node died (Ray's words); empty otherwise.", type: str}
    resources_total:
      description: >-
        Ray's logical resources of the node, as the dashboard names them (CPU and GPU
        counts; memory and objectStoreMemory in bytes; custom ones).
      type: dict
    resources_in_use:
      description: >-
        What is in use, Ray's lines (for example C(1.0/2.0 CPU)); ALIVE nodes only.
      type: list
      elements: str
    replica_applications:
      description: >-
        Serve applications with a replica on the node (any state).
      type: list
      elements: str
    proxy:
      description: >-
        Status of the node's Serve proxy (HEALTHY, UNHEALTHY, DRAINING...); null without one.
      type: str
    proxy_expected:
      description: >-
        Whether Serve runs a proxy there (the head; with EveryNode each node holding a
        replica).
      type: bool
serve:
  description: Serve's controller and HTTP options; empty when Serve was not read.
  type: dict
  returned: always
  contains:
    running: {description: Whether a Serve controller runs., type: bool}
    controller_node_ip: {description: Address of the controller's node., type: str}
    proxy_location: {description: EveryNode, HeadOnly or Disabled., type: str}
    http_host: {description: The address the proxies bind., type: str}
    http_port: {description: Their port., type: int}
applications:
  description: >-
    Per running application, its status, message, route_prefix, source (declarative when
    deployed through the REST API, imperative from a script's serve.run), problems (why it
    is not healthy, empty when it is) and deployments, each with status, message, target_replicas,
    running_replicas, and the addresses (nodes) and ids (node_ids) of its replicas' nodes.
  type: dict
  returned: always
proxies:
  description: Serve's proxies, each with node_id, node_ip and status.
  type: list
  elements: dict
  returned: always
proxy_anchor_replicas:
  description: >-
    Replicas the proxy anchor application should have now (one Serve proxy per node): the
    distinct addresses of the ALIVE nodes. The Serve reconciler on the head computes it the
    same way.
  type: int
  returned: when nodes is in gather_subset and the dashboard answered
serve_actors:
  description: >-
    Serve's ALIVE actors (ServeController, ProxyActor, HAProxyManager, ServeReplica...),
    whoever started them, each with role (controller, proxy or replica), class_name,
    namespace, node_id and name.
  type: list
  elements: dict
  returned: when serve_actors is in gather_subset and the dashboard answered
healthy:
  description: >-
    Whether the dashboard answers, every expected node is ALIVE, Serve runs with every
    application RUNNING, each deployment HEALTHY with all its target replicas RUNNING (with
    O(config_path), exactly that config's applications), and each node where Serve runs a
    proxy has a HEALTHY one.
  type: bool
  returned: always
problems:
  description:
    - What keeps the cluster from being healthy, each with C(check) (the id of the named check
      that finds it; C(dashboard), C(nodes_alive), C(serve_running), C(applications_running),
      C(applications_deployed) or C(proxies)), C(subject) (C(cluster), C(node/<name>) or
      C(application/<name>)), C(reason) (CamelCase, stable) and C(message). Empty when healthy.
  type: list
  elements: dict
  returned: always
reasons:
  description: The problems' messages, one sentence each; empty when healthy.
  type: list
  elements: str
  returned: always
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ray_dashboard import (
    Dashboard,
    DashboardError,
    cluster_facts,
    problem,
    serve_actor_facts,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dashboard_url": {"type": "str", "required": True},
            "headers": {"type": "dict", "default": {}, "no_log": True},
            "gather_subset": {
                "type": "list",
                "elements": "str",
                "choices": ["nodes", "serve", "serve_actors"],
                "default": ["nodes", "serve"],
            },
            "wait": {"type": "int", "default": 0},
            "config_path": {"type": "path"},
            "expected_nodes": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    desired = None
    if p["config_path"]:
        try:
            with open(p["config_path"], encoding="utf-8") as fh:
                desired = json.load(fh)
        except (OSError, ValueError) as err:
            module.fail_json(msg=f"cannot read Serve config {p['config_path']}: {err}")
    module.exit_json(changed=False, **read(p, desired))


def read(p: dict, desired: dict | None) -> dict:
    """Everything the module returns, from the dashboard at p["dashboard_url"]."""
    api = Dashboard(p["dashboard_url"], p["headers"])
    subset = set(p["gather_subset"])
    dashboard = {"url": api.base, "answers": False, "error": ""}
    nodes_data = details = actors = None
    # One deadline for the whole read: a GCS that answered can still be too busy for the next
    # call (HTTP 503 "Deadline Exceeded"), and a fact read from a failed call would be wrong.
    deadline = time.monotonic() + max(0, p["wait"])

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    try:
        api.gcs_healthy(wait_s=left())
        dashboard["answers"] = True
        if "nodes" in subset:
            nodes_data = api.nodes(wait_s=left())
        if "serve" in subset:
            details = api.serve_details(wait_s=left())
        if "serve_actors" in subset:
            actors = api.alive_actors()
    except DashboardError as err:
        dashboard["error"] = str(err)
    facts = cluster_facts(
        nodes_data,
        details,
        desired=desired,
        expected_nodes={str(k): str(v) for k, v in p["expected_nodes"].items()},
        config_label=p["config_path"] or "the Serve config",
    )
    if dashboard["error"]:
        what = "does not answer" if dashboard["answers"] is False else "failed"
        lost = problem(
            "dashboard",
            "cluster",
            "DashboardUnavailable",
            f"dashboard API at {api.base} {what}: {dashboard['error']}",
        )
        facts["problems"].insert(0, lost)
        facts["reasons"].insert(0, lost["message"])
        facts["healthy"] = False
    result = {"dashboard": dashboard, **facts}
    if actors is not None:
        result["serve_actors"] = serve_actor_facts(actors)
    return result


if __name__ == "__main__":
    main()
