"""What ray_node installs, on the host site.yml converged: Ray and the app for an unprivileged
user (a system account without login, Ray pinned in the venv with Serve and the apps, the
wheelhouse local and the installed build recorded, the data directory private to it, its
open-file limit raised).

Runs in file order before test_lifecycle.py, whose teardown keeping the install checks the
same install again (KEPT_BY_TEARDOWN) with nothing of Ray running (ray_processes). Values come
from the scenario's inventory over the role defaults (rayvars).
"""

from __future__ import annotations

import pytest


def ray_user_is_a_system_account_without_login(host, rayvars) -> None:
    user = host.user(rayvars["ray_user"])
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"


def ray_is_pinned_in_the_venv(host, rayvars) -> None:
    pip = f"{rayvars['ray_venv_dir']}/bin/pip"
    frozen = host.check_output(f"{pip} freeze")
    assert f"ray=={rayvars['ray_version']}" in frozen.splitlines()


def serve_extra_and_app_import(host, rayvars) -> None:
    python = f"{rayvars['ray_venv_dir']}/bin/python"
    host.run_test(f"{python} -c 'import ray.serve, fastapi, salience.deployment'")


def wheelhouse_is_local_and_installed_build_recorded(host, rayvars) -> None:
    wheelhouse = host.file(f"{rayvars['ray_install_dir']}/wheelhouse")
    assert wheelhouse.is_directory
    assert host.check_output(f"find {wheelhouse.path} -name 'ray-*.whl' | wc -l") == "1"
    assert host.file(f"{rayvars['ray_venv_dir']}/.rayforge-installed").content_string.strip()


def open_file_limit_raised(host, rayvars) -> None:
    limits = host.file("/etc/security/limits.d/90-rayforge.conf").content_string
    assert f"{rayvars['ray_user']} hard nofile {rayvars['ray_nofile_limit']}" in limits


def data_dir_is_private_to_ray(host, rayvars) -> None:
    data = host.file(rayvars["ray_data_dir"])
    assert data.user == rayvars["ray_user"]
    assert data.mode == 0o750


# What playbooks/teardown.yml with teardown_keep_install=true leaves (all but the data
# directory, which goes with the configuration).
KEPT_BY_TEARDOWN = (
    ray_user_is_a_system_account_without_login,
    ray_is_pinned_in_the_venv,
    serve_extra_and_app_import,
    wheelhouse_is_local_and_installed_build_recorded,
    open_file_limit_raised,
)


def ray_processes(host, rayvars) -> list:
    """Every process of Ray on the host: the ray user's (the units run as it), and any raylet
    or GCS server whoever runs it."""
    return [
        *host.process.filter(user=rayvars["ray_user"]),
        *host.process.filter(comm="raylet"),
        *host.process.filter(comm="gcs_server"),
    ]


@pytest.mark.parametrize(
    "check", [*KEPT_BY_TEARDOWN, data_dir_is_private_to_ray], ids=lambda check: check.__name__
)
def test_install(host, rayvars, check):
    check(host, rayvars)
