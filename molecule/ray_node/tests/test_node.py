"""ray_node installs Ray and the app for an unprivileged user, and starts nothing."""


def test_ray_user_is_a_system_account_without_login(host, rayvars):
    user = host.user(rayvars["ray_user"])
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"


def test_ray_is_pinned_in_the_venv(host, rayvars):
    pip = f"{rayvars['ray_venv_dir']}/bin/pip"
    frozen = host.check_output(f"{pip} freeze")
    assert f"ray=={rayvars['ray_version']}" in frozen.splitlines()


def test_serve_extra_and_app_import(host, rayvars):
    python = f"{rayvars['ray_venv_dir']}/bin/python"
    host.run_test(f"{python} -c 'import ray.serve, fastapi, salience.deployment'")


def test_wheelhouse_is_local_and_installed_build_recorded(host, rayvars):
    wheelhouse = host.file(f"{rayvars['ray_install_dir']}/wheelhouse")
    assert wheelhouse.is_directory
    assert host.check_output(f"find {wheelhouse.path} -name 'ray-*.whl' | wc -l") == "1"
    assert host.file(f"{rayvars['ray_venv_dir']}/.rayforge-installed").content_string.strip()


def test_data_dir_is_private_to_ray(host, rayvars):
    data = host.file(rayvars["ray_data_dir"])
    assert data.user == rayvars["ray_user"]
    assert data.mode == 0o750


def test_open_file_limit_raised(host, rayvars):
    limits = host.file("/etc/security/limits.d/90-rayforge.conf").content_string
    assert f"{rayvars['ray_user']} hard nofile {rayvars['ray_nofile_limit']}" in limits


def test_nothing_runs_yet(host):
    assert not host.process.filter(comm="raylet")
