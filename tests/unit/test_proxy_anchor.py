"""The proxy anchor follows the nodes alive now (ray_dashboard.proxy_anchor_replicas and the
Serve reconciler's --anchor-application), against the recorded 3-node cluster.

Proves: the count is the ALIVE nodes by address (a DEAD one does not count); the config keeps
the type it had; a node that rejoined after a deploy made without it gets its anchor replica at
the first poll (a PUT with the anchor raised, the rest as it was); a node gone is let go only
after --settle polls (a restart comes back before that); a config without the anchor, or no
ALIVE node, changes nothing.
"""

from __future__ import annotations

import json

import pytest
from unit_support import API, NODES, recorded

ANCHOR = "rayforge-proxy-anchor"


def anchor_of(config: dict) -> dict:
    return next(a for a in config["applications"] if a["name"] == ANCHOR)


def test_count_is_the_alive_nodes_by_address(ray_dashboard):
    nodes = recorded("cluster_healthy_nodes")["data"]
    assert ray_dashboard.proxy_anchor_replicas(nodes) == 3
    twice = recorded("cluster_healthy_nodes")["data"]
    again = json.loads(json.dumps(twice["summary"][1]))
    again["raylet"]["nodeId"] = "f" * 56  # a restarted node's new record beside its old one
    twice["summary"].append(again)
    assert ray_dashboard.proxy_anchor_replicas(twice) == 3
    stopped = recorded("cluster_worker_stopped_nodes")["data"]
    assert ray_dashboard.proxy_anchor_replicas(stopped) == 2
    assert ray_dashboard.proxy_anchor_replicas({}) == 0


def test_cluster_facts_carry_the_count_the_role_renders(ray_dashboard):
    facts = ray_dashboard.cluster_facts(
        recorded("cluster_healthy_nodes")["data"], recorded("cluster_healthy_serve")
    )
    assert facts["proxy_anchor_replicas"] == 3
    assert (
        ray_dashboard.cluster_facts(None, recorded("cluster_healthy_serve"))[
            "proxy_anchor_replicas"
        ]
        is None
    )


@pytest.mark.parametrize("old", [3, "3"], ids=["number", "text"])
def test_with_anchor_replicas_keeps_the_type_and_the_rest(ray_dashboard, old):
    config = recorded("cluster_serve_config")
    anchor_of(config)["deployments"][0]["num_replicas"] = old
    out = ray_dashboard.with_anchor_replicas(config, ANCHOR, 2)
    assert anchor_of(out)["deployments"][0]["num_replicas"] == type(old)(2)
    assert anchor_of(config)["deployments"][0]["num_replicas"] == old  # a copy
    assert out["applications"][0] == config["applications"][0]


@pytest.fixture
def anchored_reconciler(reconciler, ray_dashboard, dashboard_stub, tmp_path):
    config = tmp_path / "serve-config.last-good.json"

    def make(last_good: dict, *extra: str):
        ray_dashboard.write_json_atomic(str(config), last_good)
        argv = [
            f"--dashboard-url={dashboard_stub.url}",
            f"--config={config}",
            f"--lock={tmp_path / 'serve-deploy.lock'}",
            "--settle=3",
            "--deploy-timeout=5",
            *extra,
        ]
        return reconciler.Reconciler(reconciler.parse_args(argv))

    return make


def deployed(last_good: dict, anchor_replicas: int) -> dict:
    """The recorded healthy Serve, running LAST_GOOD with the anchor at ANCHOR_REPLICAS."""
    serve = recorded("cluster_healthy_serve")
    anchor_of(last_good)["deployments"][0]["num_replicas"] = anchor_replicas
    for app in last_good["applications"]:
        serve["applications"][app["name"]]["deployed_app_config"] = app
    return serve


def test_a_node_that_rejoined_gets_its_anchor_replica_at_the_first_poll(
    anchored_reconciler, dashboard_stub, capsys
):
    # The last deploy ran while one node was down: the anchor was rendered for 2 nodes.
    last_good = recorded("cluster_serve_config")
    anchor_of(last_good)["deployments"][0]["num_replicas"] = 2
    dashboard_stub.serve(deployed(recorded("cluster_serve_config"), 2))
    dashboard_stub.answer(NODES, recorded("cluster_healthy_nodes"))  # the node is back
    rec = anchored_reconciler(last_good, f"--anchor-application={ANCHOR}")

    assert rec.step() == "ok"
    [put] = dashboard_stub.bodies("PUT")
    assert anchor_of(put)["deployments"][0]["num_replicas"] == 3
    assert put["applications"][0] == last_good["applications"][0]  # the rest as it was
    out = capsys.readouterr().out
    assert "a node without a proxy anchor replica is ALIVE: acting now" in out


def test_a_node_gone_is_let_go_only_after_settle_polls(anchored_reconciler, dashboard_stub):
    last_good = recorded("cluster_serve_config")
    dashboard_stub.serve(deployed(recorded("cluster_serve_config"), 3))
    dashboard_stub.answer(NODES, recorded("cluster_worker_stopped_nodes"))
    rec = anchored_reconciler(last_good, f"--anchor-application={ANCHOR}")

    assert [rec.step(), rec.step()] == ["waiting", "waiting"]
    assert dashboard_stub.bodies("PUT") == []  # a restart is back before this
    assert rec.step() == "ok"
    [put] = dashboard_stub.bodies("PUT")
    assert anchor_of(put)["deployments"][0]["num_replicas"] == 2


def test_serve_not_running_the_anchor_waits_settle_polls_as_before(
    anchored_reconciler, dashboard_stub
):
    """A head restarting from its persisted GCS: Serve is not running yet, and the last good
    config holds fewer anchor replicas than nodes alive. Serve's own recovery goes first: no
    PUT before --settle polls."""
    last_good = recorded("cluster_serve_config")
    anchor_of(last_good)["deployments"][0]["num_replicas"] = 2
    dashboard_stub.serve(recorded("serve_shut_down"))
    dashboard_stub.answer(NODES, recorded("cluster_healthy_nodes"))
    rec = anchored_reconciler(last_good, f"--anchor-application={ANCHOR}")
    assert [rec.step(), rec.step()] == ["waiting", "waiting"]
    assert dashboard_stub.bodies("PUT") == []
    assert rec.step() == "ok"
    [put] = dashboard_stub.bodies("PUT")
    assert anchor_of(put)["deployments"][0]["num_replicas"] == 3


def test_without_the_option_or_an_alive_node_the_anchor_is_left_as_deployed(
    anchored_reconciler, dashboard_stub
):
    last_good = recorded("cluster_serve_config")
    dashboard_stub.serve(deployed(recorded("cluster_serve_config"), 3))
    dashboard_stub.answer(NODES, recorded("cluster_worker_stopped_nodes"))
    plain = anchored_reconciler(last_good)
    assert [plain.step() for _ in range(4)] == ["ok"] * 4
    assert ("GET", NODES) not in dashboard_stub.calls()  # not even asked

    dashboard_stub.answer(NODES, {"result": True, "msg": "", "data": {"summary": []}})
    nobody = anchored_reconciler(last_good, f"--anchor-application={ANCHOR}")
    assert [nobody.step() for _ in range(4)] == ["ok"] * 4
    assert dashboard_stub.bodies("PUT") == []
    assert ("GET", API) in dashboard_stub.calls()
