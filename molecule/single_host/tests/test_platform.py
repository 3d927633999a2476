"""The host's platform as the scenario's inventory names it (rf_debian_release: this scenario
runs on Debian 13, the cluster scenario on Debian 12): Ray's venv runs the host's own Python
with the inventory's Ray, and the wheelhouse holds no wheel above the host's glibc."""

from __future__ import annotations

import re


def test_host_runs_the_scenarios_debian_release(host, rayvars):
    release = rayvars["rf_debian_release"]
    assert host.system_info.distribution == "debian"
    assert host.file("/etc/debian_version").content_string.startswith(f"{release}.")


def test_ray_venv_runs_the_hosts_python_and_ray_version(host, rayvars):
    own = host.check_output("python3 -c 'import sys; print(*sys.version_info[:2])'")
    python = f"{rayvars['ray_venv_dir']}/bin/python"
    out = host.check_output(
        f"{python} -c 'import sys, ray; print(*sys.version_info[:2], ray.__version__)'"
    )
    assert out == f"{own} {rayvars['ray_version']}"


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
