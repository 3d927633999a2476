"""A host that is not a cluster member reaches Serve and nothing else; the controller (admin)
reaches the dashboard only with the cluster token."""

import pytest

from conftest import IP_CMD, http, peer

testinfra_hosts = ["ansible://outsiders"]


@pytest.fixture
def nodes(host):
    groups = host.ansible.get_variables()["groups"]
    names = groups["ray_head"] + groups["ray_workers"]
    return {name: peer(host, name).check_output(IP_CMD) for name in names}


@pytest.fixture
def head_ip(host, nodes):
    return nodes[host.ansible.get_variables()["groups"]["ray_head"][0]]


def reachable(host, ip, port):
    """A TCP connection from `host` to ip:port succeeds within 3 s."""
    return host.run(f"timeout 3 bash -c '</dev/tcp/{ip}/{port}'").rc == 0


def test_outsider_gets_answers_from_serve_on_every_node(host, nodes, rayvars):
    body = '{"features": [{"task_risk": 0.5, "failure_severity": 0.3}]}'
    for name, ip in nodes.items():
        out = host.check_output(
            f"curl -sf -m 10 -X POST -H 'Content-Type: application/json' -d '{body}' "
            f"http://{ip}:{rayvars['ray_serve_http_port']}/score/salience"
        )
        assert '"scores":[0.15]' in out, name


@pytest.mark.parametrize(
    "port_var",
    [
        "ray_dashboard_port",
        "ray_client_server_port",
        "ray_gcs_port",
        "ray_node_manager_port",
        "ray_object_manager_port",
        "ray_dashboard_agent_grpc_port",
        "ray_dashboard_agent_listen_port",
        "ray_metrics_export_port",
        "ray_min_worker_port",
    ],
)
def test_outsider_cannot_reach_control_ports(host, nodes, rayvars, port_var):
    for name, ip in nodes.items():
        assert not reachable(host, ip, rayvars[port_var]), f"{name}:{rayvars[port_var]}"


def test_outsider_cannot_reach_replicas_nor_haproxy_stats_and_exporter(host, nodes, rayvars):
    """With Serve's HAProxy, replicas listen on ports of their own (direct ingress), which
    only the nodes' HAProxy may use; its stats page is for admins, its exporter for scrapers."""
    if rayvars["ray_serve_proxy"] != "haproxy":
        pytest.skip("ray_serve_proxy is not haproxy")
    low = rayvars["ray_serve_replica_min_http_port"]
    high = rayvars["ray_serve_replica_max_http_port"]
    replica_ports = 0
    for name, ip in nodes.items():
        listening = peer(host, name).check_output("ss -ltnH | awk '{print $4}'").split()
        ports = {int(a.rsplit(":", 1)[1]) for a in listening}
        for port in sorted(p for p in ports if low <= p <= high):
            replica_ports += 1
            assert not reachable(host, ip, port), f"{name}:{port} (replica)"
        for var in ("ray_serve_haproxy_stats_port", "ray_serve_haproxy_metrics_port"):
            assert rayvars[var] in ports, f"{name}: HAProxy does not listen on {var}"
            assert not reachable(host, ip, rayvars[var]), f"{name}:{rayvars[var]} ({var})"
    assert replica_ports > 0, f"no replica listens in {low}-{high} on any node"


def test_members_still_reach_each_other(host, nodes, head_ip, rayvars):
    for name in nodes:
        member = peer(host, name)
        assert (
            member.run(f"timeout 3 bash -c '</dev/tcp/{head_ip}/{rayvars['ray_gcs_port']}'").rc == 0
        )


def test_admin_needs_the_token_for_the_dashboard_and_jobs_api(head_ip, rayvars, api_headers):
    base = f"http://{head_ip}:{rayvars['ray_dashboard_port']}"
    for path in ("/api/jobs/", "/api/serve/applications/", "/nodes?view=summary"):
        status, _ = http(base + path)
        assert status in (401, 403), path
        status, body = http(base + path, headers=api_headers)
        assert status == 200, (path, body)


def test_rules_survive_a_reboot(host, rayvars):
    for name in host.ansible.get_variables()["groups"]["ray_head"]:
        node = peer(host, name)
        assert node.service(rayvars["ray_firewall_service_name"]).is_enabled
        assert node.run_test(f"nft list table inet {rayvars['ray_firewall_table']}").rc == 0
