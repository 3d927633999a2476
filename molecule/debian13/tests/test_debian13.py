"""site.yml on a Debian 13 host: Ray's venv runs the host's Python 3.13 with the inventory's Ray,
the head unit runs, the inventory's application answers its smoke request on the Serve port,
the node exporter answers, and the wheelhouse holds no wheel above the host's glibc."""

from __future__ import annotations

import re

from conftest import smoke


def test_host_is_debian_13_with_python_3_13(host):
    assert host.system_info.distribution == "debian"
    assert host.file("/etc/debian_version").content_string.startswith("13.")
    assert host.check_output("python3 -c 'import sys; print(*sys.version_info[:2])'") == "3 13"


def test_ray_venv_runs_the_hosts_python_and_ray_version(host, rayvars):
    python = f"{rayvars['ray_venv_dir']}/bin/python"
    out = host.check_output(
        f"{python} -c 'import sys, ray; print(*sys.version_info[:2], ray.__version__)'"
    )
    assert out == f"3 13 {rayvars['ray_version']}"


def test_head_unit_is_active(host, rayvars):
    unit = host.service(rayvars["ray_head_service_name"])
    assert unit.is_enabled
    assert unit.is_running


def test_application_answers_its_smoke_request(node_ip, rayvars):
    for application in rayvars["ray_serve_applications"]:
        status, body = smoke(node_ip, rayvars, application)
        assert status == application["smoke_test"].get("status", 200), (application["name"], body)
        for key, value in application["smoke_test"]["expect"].items():
            assert body[key] == value, (application["name"], body)


def test_node_exporter_answers(host, node_ip, rayvars):
    out = host.run(f"curl -sf -m 10 http://{node_ip}:{rayvars['ray_node_exporter_port']}/metrics")
    assert out.rc == 0, out.stderr
    assert re.search(r"^node_memory_MemAvailable_bytes \S+$", out.stdout, re.MULTILINE)


def test_wheels_stop_at_the_hosts_glibc(host, rayvars):
    """ray_node derived the wheelhouse's platform tags from this host's glibc: no wheel needs
    a newer one. Prints the newest manylinux tag the wheelhouse holds."""
    glibc = host.check_output("getconf GNU_LIBC_VERSION")
    minor = int(re.fullmatch(r"glibc 2\.(\d+)", glibc)[1])
    names = host.check_output(
        f"find {rayvars['ray_install_dir']}/wheelhouse -name '*.whl' -printf '%f\\n'"
    ).split()
    needs = [int(n) for name in names for n in re.findall(r"manylinux_2_(\d+)", name)]
    assert needs, names
    print(f"{glibc}; {len(names)} wheels, newest tag manylinux_2_{max(needs)}")
    assert max(needs) <= minor, [n for n in names if f"manylinux_2_{max(needs)}" in n]
