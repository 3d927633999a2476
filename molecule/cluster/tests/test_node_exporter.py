"""Prometheus' node exporter (roles/prometheus_node_exporter) runs on every cluster node, on the
port the scenario's inventory moved it to, at the node's advertised address; the monitoring host
reaches it, and it reports /dev/shm and the root filesystem, and the *.prom files the ray user
writes into the textfile directory.
"""

from __future__ import annotations

import re

import pytest

from conftest import peer

testinfra_hosts = ["ansible://ray_head", "ansible://ray_workers"]

UNIT = "prometheus-node-exporter"


def journal(host) -> str:
    return host.run(f"journalctl -u {UNIT} -n 40 --no-pager").stdout


@pytest.fixture
def metrics(host, node_ip, rayvars) -> str:
    """This node's exporter's /metrics, asked from the monitoring host as Prometheus asks."""
    groups = host.ansible.get_variables()["groups"]
    monitor = peer(host, (groups.get("monitoring") or groups["ray_head"])[0])
    out = monitor.run(
        f"curl -sf -m 10 http://{node_ip}:{rayvars['ray_node_exporter_port']}/metrics"
    )
    assert out.rc == 0, f"{out.stderr}\n{journal(host)}"
    return out.stdout


def test_node_exporter_enabled_and_active(host):
    unit = host.service(UNIT)
    assert unit.is_enabled, journal(host)
    assert unit.is_running, journal(host)


def test_node_exporter_listens_on_the_node_address_and_inventory_port(host, node_ip, rayvars):
    port = rayvars["ray_node_exporter_port"]
    assert host.socket(f"tcp://{node_ip}:{port}").is_listening, journal(host)
    # Only there: not on every address, nor on Debian's default port.
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket("tcp://0.0.0.0:9100").is_listening


def test_package_came_without_its_recommends(host):
    assert host.package("prometheus-node-exporter").is_installed
    assert not host.package("prometheus-node-exporter-collectors").is_installed


def filesystem_sizes(metrics: str) -> dict[str, float]:
    """node_filesystem_size_bytes by mount point."""
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'^node_filesystem_size_bytes\{[^}]*mountpoint="([^"]+)"[^}]*\} (\S+)$',
            metrics,
            re.MULTILINE,
        )
    }


def test_filesystems_include_dev_shm_and_root(host, metrics):
    """/dev/shm (Ray's object store), which Debian's defaults exclude, and the root filesystem
    (overlay in these containers), at the sizes the host reports."""
    sizes = filesystem_sizes(metrics)
    for mount in ("/dev/shm", "/"):
        assert mount in sizes, sorted(sizes)
        df = int(host.check_output(f"df -B1 --output=size {mount} | tail -1"))
        assert sizes[mount] == df, (mount, sizes[mount], df)
    # Only /dev/shm of /dev's mounts.
    assert not [m for m in sizes if m.startswith("/dev") and m != "/dev/shm"], sorted(sizes)


def test_memory_metrics_are_exported(metrics):
    for name in ("node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"):
        assert re.search(rf"^{name} \S+$", metrics, re.MULTILINE), name


def test_textfile_directory_is_writable_by_the_ray_group(host, rayvars):
    folder = host.file(rayvars["ray_metrics_textfile_dir"])
    assert folder.is_directory
    assert folder.user == "root"
    assert folder.group == rayvars["ray_group"]
    assert folder.mode == 0o2775


def test_a_file_the_ray_user_writes_is_exported(host, node_ip, rayvars):
    """A *.prom file written as the ray user (to a temporary name, then renamed, as rayforge's
    units write theirs) shows in /metrics; it is removed again."""
    folder = rayvars["ray_metrics_textfile_dir"]
    url = f"http://{node_ip}:{rayvars['ray_node_exporter_port']}/metrics"
    path = f"{folder}/rayforge_molecule_probe.prom"
    write = (
        f"printf 'rayforge_molecule_probe 42\\n' > {folder}/.probe.tmp"
        f" && mv {folder}/.probe.tmp {path}"
    )
    with host.sudo(rayvars["ray_user"]):
        host.run_test(f'sh -c "{write}"')
    try:
        assert host.file(path).group == rayvars["ray_group"]
        out = host.check_output(f"curl -sf -m 10 {url}")
        assert re.search(r"^rayforge_molecule_probe 42$", out, re.MULTILINE), journal(host)
        assert not re.search(r"^node_textfile_scrape_error 1$", out, re.MULTILINE)
    finally:
        host.run(f"rm -f {path}")


def test_not_on_the_monitoring_host_outside_the_cluster(host):
    """The node exporter is a node's: a monitoring host that is no node gets none."""
    groups = host.ansible.get_variables()["groups"]
    nodes = groups["ray_head"] + groups.get("ray_workers", [])
    outside = [name for name in groups.get("monitoring", []) if name not in nodes]
    if not outside:
        pytest.skip("no monitoring host outside the cluster")
    for name in outside:
        other = peer(host, name)
        assert not other.package("prometheus-node-exporter").is_installed, name
