"""A host that is not a cluster member (the load balancer's host) reaches Serve and nothing
else, but the metrics ports when it is the monitoring host (group monitoring: the scrapers'
zone), which the controller (admin, not a scraper) then does not reach, and the head's
dashboard, which it publishes to the admin networks (group load_balancer: the proxies' set);
the controller reaches the dashboard only with the cluster token.

Every "cannot reach" is asserted on a port that is shown to listen first (read with `ss` on
the node), so a closed port cannot pass for a filtered one. Ports come from the scenario's
inventory (every one moved off its default); ranges are read from the nodes' listeners.
Runs after test_faults.py, which rebooted the head and a worker: the rules are checked on
hosts that booted with them.
"""

import socket

import pytest

from conftest import IP_CMD, http, peer, run_playbook

testinfra_hosts = ["ansible://load_balancer"]


@pytest.fixture
def nodes(host):
    groups = host.ansible.get_variables()["groups"]
    names = groups["ray_head"] + groups["ray_workers"]
    return {name: peer(host, name).check_output(IP_CMD) for name in names}


@pytest.fixture
def head_ip(host, nodes):
    return nodes[host.ansible.get_variables()["groups"]["ray_head"][0]]


def reachable(host, ip, port):
    """A TCP connection from `host` to ip:port succeeds within 1 s (on one Docker bridge an
    open port answers in a millisecond; a dropped one never does)."""
    return host.run(f"timeout 1 bash -c '</dev/tcp/{ip}/{port}'").rc == 0


def reachable_from_controller(ip, port) -> bool:
    """The same from the controller, which runs the tests (an admin, not a scraper)."""
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


# The firewall's metrics zone: members, ray_firewall_metrics_cidrs and the monitoring group.
METRICS_PORTS = (
    "ray_metrics_export_port",
    "ray_dashboard_metrics_port",
    "ray_autoscaler_metrics_port",
    "ray_node_exporter_port",
    "ray_serve_haproxy_metrics_port",
)


def is_scraper(host) -> bool:
    """`host` is in the metrics zone: a host of group monitoring."""
    variables = host.ansible.get_variables()
    return variables["inventory_hostname"] in variables["groups"].get("monitoring", [])


def listening(node, ip) -> set[int]:
    """TCP ports `node` listens on where `ip` (its cluster address) can reach them."""
    ports = set()
    for addr in node.check_output("ss -ltnH | awk '{print $4}'").split():
        where, port = addr.rsplit(":", 1)
        if where.strip("[]") in ("0.0.0.0", "*", "::", ip):
            ports.add(int(port))
    return ports


def in_range(ports, spec) -> list[int]:
    low, high = (int(x) for x in str(spec).split("-"))
    return sorted(p for p in ports if low <= p <= high)


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
        "ray_runtime_env_agent_port",
        "ray_dashboard_agent_grpc_port",
        "ray_dashboard_agent_listen_port",
        "ray_metrics_export_port",
        "ray_dashboard_metrics_port",
        "ray_autoscaler_metrics_port",
        "ray_node_exporter_port",
        "ray_serve_haproxy_stats_port",
        "ray_serve_haproxy_metrics_port",
        "prometheus_port",
    ],
)
def test_outsider_cannot_reach_a_listening_control_port(host, nodes, rayvars, port_var):
    """The load balancer's host, or for the metrics ports, when that host is a scraper (the
    monitoring host), the controller."""
    port = rayvars[port_var]
    groups = host.ansible.get_variables()["groups"]
    if port_var == "prometheus_port" and not set(groups.get("monitoring", [])) <= set(nodes):
        pytest.skip("Prometheus runs outside the cluster, where ray_firewall does not run")
    from_controller = port_var in METRICS_PORTS and is_scraper(host)
    if port_var == "ray_dashboard_port" and is_proxy(host):
        pytest.skip("the load balancer reaches the dashboard (test_proxy_reaches_the_dashboard)")
    checked = []
    for name, ip in nodes.items():
        if port in listening(peer(host, name), ip):
            checked.append(name)
            if from_controller:
                assert not reachable_from_controller(ip, port), f"{name}:{port} ({port_var})"
            else:
                assert not reachable(host, ip, port), f"{name}:{port} ({port_var})"
    assert checked, f"{port_var}: no node listens on {port}, so nothing was proven"


def is_proxy(host) -> bool:
    """`host` is in the proxies' set: a host of group load_balancer."""
    variables = host.ansible.get_variables()
    return variables["inventory_hostname"] in variables["groups"].get("load_balancer", [])


def test_proxy_reaches_the_dashboard_and_not_the_ray_client(host, nodes, head_ip, rayvars):
    """The load balancer's host reaches the head's dashboard (it passes the admin networks'
    requests on) and still not the Ray Client port beside it, which test_outsider_... checks
    on every node too."""
    if not is_proxy(host):
        pytest.skip("this host is not a load balancer")
    head = peer(host, host.ansible.get_variables()["groups"]["ray_head"][0])
    listens = listening(head, head_ip)
    for var in ("ray_dashboard_port", "ray_client_server_port"):
        assert rayvars[var] in listens, f"the head does not listen on {var}: nothing is proven"
    assert reachable(host, head_ip, rayvars["ray_dashboard_port"])
    assert not reachable(host, head_ip, rayvars["ray_client_server_port"])


@pytest.mark.parametrize("port_var", METRICS_PORTS)
def test_monitoring_host_reaches_the_metrics_ports(host, nodes, rayvars, port_var):
    """The monitoring host outside the cluster (its ansible_host an IP) is a scraper."""
    if not is_scraper(host):
        pytest.skip("the load balancer's host is not the monitoring host")
    port = rayvars[port_var]
    checked = []
    for name, ip in nodes.items():
        if port in listening(peer(host, name), ip):
            checked.append(name)
            assert reachable(host, ip, port), f"{name}:{port} ({port_var})"
    assert checked, f"{port_var}: no node listens on {port}, so nothing was proven"


@pytest.mark.parametrize(
    "range_of",
    ["ray worker ports", "serve replica ports", "ephemeral ports"],
)
def test_outsider_cannot_reach_listeners_in_the_port_ranges(host, nodes, rayvars, range_of):
    """Ray's workers, Serve's replicas (direct ingress behind HAProxy) and the few listeners
    Ray leaves unpinned in the kernel's ephemeral range: each range has listeners on the
    nodes, and none of them answers an outsider."""
    spec = {
        "ray worker ports": f"{rayvars['ray_min_worker_port']}-{rayvars['ray_max_worker_port']}",
        "serve replica ports": (
            f"{rayvars['ray_serve_replica_min_http_port']}-"
            f"{rayvars['ray_serve_replica_max_http_port']}"
        ),
        "ephemeral ports": rayvars["ray_firewall_ephemeral_ports"],
    }[range_of]
    if range_of == "serve replica ports" and rayvars["ray_serve_proxy"] != "haproxy":
        pytest.skip("replicas listen on ports of their own only behind Serve's HAProxy")
    if range_of == "ephemeral ports" and not rayvars["ray_firewall_close_ephemeral_ports"]:
        pytest.skip("ray_firewall_close_ephemeral_ports is off")
    checked = 0
    for name, ip in nodes.items():
        for port in in_range(listening(peer(host, name), ip), spec):
            checked += 1
            assert not reachable(host, ip, port), f"{name}:{port} ({range_of} {spec})"
    assert checked, f"no node listens in {spec} ({range_of}), so nothing was proven"


def rule_ports(rule: str) -> list[tuple[int, int]]:
    """The port set of an nft rule line (`tcp dport { 1-3, 5 } ...`) as (low, high) pairs."""
    inner = rule.split("{", 1)[1].split("}", 1)[0]
    pairs = []
    for item in inner.split(","):
        low, _, high = item.strip().partition("-")
        pairs.append((int(low), int(high or low)))
    return pairs


def test_ray_ports_are_closed_over_ipv6_too(host, nodes, rayvars):
    """Ray listens on IPv4 only; the table still drops its ports over IPv6 (the lab's Docker
    network has no IPv6, so the rule is read back from the kernel, not probed)."""
    for name in nodes:
        ruleset = peer(host, name).check_output(
            f"nft list table inet {rayvars['ray_firewall_table']}"
        )
        v6 = [line.strip() for line in ruleset.splitlines() if "meta nfproto ipv6" in line]
        assert len(v6) == 1, f"{name}: no single IPv6 rule in\n{ruleset}"
        assert v6[0].endswith("drop"), v6[0]
        closed = rule_ports(v6[0])
        for var in (
            "ray_gcs_port",
            "ray_dashboard_port",
            "ray_client_server_port",
            "ray_node_manager_port",
            "ray_object_manager_port",
            "ray_metrics_export_port",
            "ray_node_exporter_port",
            "ray_dashboard_agent_listen_port",
            "ray_min_worker_port",
            "ray_max_worker_port",
        ):
            port = rayvars[var]
            assert any(low <= port <= high for low, high in closed), f"{name}: {var} {v6[0]}"


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


def test_rules_are_loaded_on_hosts_that_rebooted(host, nodes, rayvars):
    """The faults before rebooted hosts (test_faults.py); on each host whose boot came after
    the rules file was written, the table is loaded, so it came back with the boot."""
    rebooted = []
    for name in nodes:
        node = peer(host, name)
        assert node.service(rayvars["ray_firewall_service_name"]).is_enabled
        boot = float(node.check_output('date -d "$(ps -o lstart= -p 1)" +%s'))
        unit_file = node.check_output(
            f"systemctl show -p FragmentPath --value {rayvars['ray_firewall_service_name']}"
        )
        written = float(node.check_output(f"stat -c %Y {unit_file}"))
        if boot > written:
            rebooted.append(name)
            assert node.run(f"nft list table inet {rayvars['ray_firewall_table']}").rc == 0
    assert rebooted, "no host rebooted after its firewall was installed: nothing was proven"


def test_preflight_admits_a_member_the_head_firewall_lacks(host, nodes, rayvars):
    """A worker the head's firewall does not admit yet (a new worker, or addresses that moved):
    the preflight in check mode fails naming this project's firewall as what drops it; run for
    real, it adds the worker to the head's member set before the GCS probe, and passes."""
    groups = host.ansible.get_variables()["groups"]
    head = peer(host, groups["ray_head"][0])
    ip = nodes[groups["ray_workers"][-1]]
    members = f"inet {rayvars['ray_firewall_table']} members"
    element = f"{members} '{{ {ip} }}'"
    # The set merges neighbouring addresses into ranges, from which nft cannot delete one
    # address: the set is written anew without the worker, in one transaction.
    others = [a for a in nodes.values() if a != ip] + rayvars["ray_firewall_member_cidrs"]
    head.run_test(
        f"printf 'flush set %s\\nadd element %s {{ %s }}\\n' '{members}' '{members}' "
        f"'{', '.join(others)}' | nft -f -"
    )
    try:
        assert head.run(f"nft get element {element}").rc != 0
        dry = run_playbook(host, "playbooks/preflight.yml", "--check", check=False)
        out = " ".join(dry.stdout.split())
        assert dry.returncode != 0, out[-4000:]
        named = f"rayforge's own firewall on the head (its member set) does not admit {ip} yet"
        assert named in out, out[-4000:]
        run_playbook(host, "playbooks/preflight.yml")
        assert head.run(f"nft get element {element}").rc == 0
    finally:
        head.run(f"nft add element {element}")
