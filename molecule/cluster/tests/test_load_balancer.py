"""The front door (roles/load_balancer on the hosts of group load_balancer): Serve over TLS
with the certificate the inventory names, plain HTTP redirected to it with the method kept,
and the head's dashboard and Prometheus through it for the admin networks only.

The controller (the containers' gateway) is the scenario's admin network; the cluster's nodes
are not in it, and ask the same URLs from their side. Ports and the certificate's path come from
the scenario's inventory; the load balancer's address from the running container. The fault
tests (test_faults.py) send their load through the same HTTPS port.
"""

from __future__ import annotations

import json
import ssl
from http import client as http_client

import pytest

from conftest import IP_CMD, http, inventory_value, peer, smoke_path

testinfra_hosts = ["ansible://load_balancer"]


@pytest.fixture
def lb_ip(host) -> str:
    return host.check_output(IP_CMD)


@pytest.fixture
def certificate(host) -> str:
    """The certificate file the inventory names, templated as the role reads it."""
    path = inventory_value(host, "load_balancer_tls_certificate")
    assert path, "the scenario names no certificate"
    return path


@pytest.fixture
def app(rayvars) -> dict:
    return next(a for a in rayvars["ray_serve_applications"] if "smoke_test" in a)


@pytest.fixture
def nodes(host) -> dict[str, object]:
    groups = host.ansible.get_variables()["groups"]
    return {name: peer(host, name) for name in groups["ray_head"] + groups["ray_workers"]}


def test_serve_answers_over_tls_with_the_inventorys_certificate(lb_ip, rayvars, app, certificate):
    context = ssl.create_default_context(cafile=certificate)
    conn = http_client.HTTPSConnection(
        lb_ip, rayvars["load_balancer_tls_port"], timeout=10, context=context
    )
    try:
        conn.request(
            app["smoke_test"].get("method", "POST"),
            smoke_path(app),
            body=json.dumps(app["smoke_test"]["body"]),
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        body = json.loads(resp.read())
        served = conn.sock.getpeercert(binary_form=True)
        version = conn.sock.version()
    finally:
        conn.close()
    assert resp.status == app["smoke_test"].get("status", 200), body
    assert body == {**body, **app["smoke_test"]["expect"]}, body
    with open(certificate, encoding="ascii") as pem:
        assert served == ssl.PEM_cert_to_DER_cert(pem.read())
    assert version in ("TLSv1.2", "TLSv1.3"), version


def test_plain_http_is_redirected_to_https_keeping_the_method(lb_ip, rayvars, app):
    conn = http_client.HTTPConnection(lb_ip, rayvars["load_balancer_port"], timeout=10)
    try:
        conn.request("POST", smoke_path(app) + "?x=1", body=b"{}")
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    assert resp.status == 308
    assert resp.getheader("Location") == (
        f"https://{lb_ip}:{rayvars['load_balancer_tls_port']}{smoke_path(app)}?x=1"
    )


def test_admin_reaches_the_dashboard_and_prometheus_through_it(
    lb_ip, rayvars, certificate, api_headers
):
    dashboard = f"https://{lb_ip}:{rayvars['load_balancer_dashboard_port']}"
    status, body = http(dashboard + "/api/jobs/", headers=api_headers, cafile=certificate)
    assert status == 200, body
    status, _ = http(dashboard + "/api/jobs/", cafile=certificate)
    assert status in (401, 403), "the dashboard answered without the cluster token"
    prometheus = f"https://{lb_ip}:{rayvars['load_balancer_prometheus_port']}"
    status, body = http(prometheus + "/api/v1/query?query=up", cafile=certificate)
    assert status == 200, body
    assert body["status"] == "success", body
    assert body["data"]["result"], "Prometheus through the load balancer has no targets"


@pytest.mark.parametrize(
    "port_var", ["load_balancer_dashboard_port", "load_balancer_prometheus_port"]
)
def test_others_get_403_from_the_admin_ports(lb_ip, rayvars, nodes, port_var):
    """Every node asks (none is in the admin networks): 403, from HAProxy itself."""
    url = f"https://{lb_ip}:{rayvars[port_var]}/"
    for name, node in nodes.items():
        code = node.check_output(f"curl -sk -o /dev/null -w '%{{http_code}}' -m 10 {url}")
        assert code == "403", (name, code)
