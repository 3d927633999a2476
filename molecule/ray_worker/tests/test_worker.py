"""The worker runs under systemd and the head counts it alive."""

import time

import pytest


def test_worker_unit_enabled_and_active_on_workers(host, rayvars):
    groups = host.ansible.get_variables()["group_names"]
    unit = host.service(rayvars["ray_worker_service_name"])
    if "ray_workers" in groups:
        assert unit.is_enabled
        assert unit.is_running
    else:
        assert not unit.is_running


def test_every_host_is_an_alive_node(dashboard, node_ip):
    status, body = dashboard.get("/nodes?view=summary")
    assert status == 200, body
    alive = {
        n["raylet"]["nodeManagerAddress"]
        for n in body["data"]["summary"]
        if n["raylet"]["state"] == "ALIVE"
    }
    assert node_ip in alive


def test_worker_restarts_and_rejoins(host, rayvars, dashboard, node_ip):
    if "ray_workers" not in host.ansible.get_variables()["group_names"]:
        pytest.skip("workers only")
    host.run_test(f"systemctl restart {rayvars['ray_worker_service_name']}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, body = dashboard.get("/nodes?view=summary")
        alive = (
            [
                n
                for n in body["data"]["summary"]
                if n["raylet"]["state"] == "ALIVE" and n["raylet"]["nodeManagerAddress"] == node_ip
            ]
            if status == 200
            else []
        )
        if alive:
            return
        time.sleep(2)
    pytest.fail(f"{node_ip} did not rejoin within 120 s")
