"""A bad inventory fails in the preflight, before any host changes.

Each case writes an inventory whose hosts are all this machine, reached with
``ansible_connection: local`` (head 127.0.0.1, worker1 127.0.0.2, worker2 127.0.0.3: several
inventory hosts on one machine are fine here, the preflight only reads), runs the real
``ansible-playbook site.yml -i <inventory>`` from the repository root, without tags, and asserts
that it exits 2 (a host failed) with the message that names the fix, that only the preflight
play started (the "Nodes" play never did) and that PLAY RECAP shows changed=0 for every host.
The good inventories (the same hosts, valid values) pass ``--tags preflight``: the bad cases
fail for their stated reason, not because local hosts are unsupported.

Cases that need more than a variable are made real on this one machine, loopback only:

* Unsupported Python: an older CPython found here (pyenv's 3.8 or 3.9) is the worker's
  ansible_python_interpreter, so the facts report it. Where there is none, the run narrows
  ``ray_supported_python_minors`` (role vars: only an extra var overrides them) so that this
  machine's Python is not in it: the same assert and message, reached by a different route.
* Unsupported OS: the worker's interpreter runs in a private mount namespace (``unshare
  --mount``) where /etc/os-release describes AlmaLinux; the setup module reads it and reports
  os_family RedHat. No other process sees that mount.
* A loopback address across machines: the worker's interpreter runs in a new, empty network
  namespace (``unshare --net``), so its 127.0.0.2 is not on the head's network.
* Workers that cannot reach the head's GCS port: the test listens on the head's GCS address
  and fills the accept queue, so the kernel drops further connections, as a firewall that drops
  packets does. The preflight sees a listener (a running head) and probes it from the workers,
  whose connects time out.

Argument validation (meta/argument_specs.yml) runs as the preflight play imports each role,
before the role's first task: a value of the wrong type (ray_gcs_port: abc) fails there, with
Ansible's own message, so the preflight's "non-numeric port" assert only ever sees numbers.

The harness (inventory writers, the runner, the output readers) is preflight_support.py; the
fixture that runs every selected case, a few at a time, is conftest.py's ``runs``. A guard
(callback_plugins/preflight_guard.py) ends any bad-case run whose preflight passed before the
next play could change this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from preflight_support import (
    FOREIGN_IP,
    MIB,
    NODES_BANNER,
    PER_NODE_KIND_TASKS,
    PREFLIGHT_PLAY,
    RAY_SETUP_TASKS,
    REPO,
    SUPPORTED_MINORS,
    SYSTEM_PYTHON,
    Case,
    Context,
    all_vars,
    answering_listener,
    describe,
    find_python,
    group,
    host,
    interpreter_wrapper,
    is_local_address,
    normalise,
    play_banners,
    python_version,
    recap,
    shm_bytes,
    task_banners,
    unresponsive_listener,
    unshare_works,
)

# --- The bad cases --------------------------------------------------------------------------


def no_head(inv: dict, ctx: Context) -> None:
    del inv["all"]["children"]["ray_head"]


def cluster_name_invalid(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_cluster_name"] = "prod/eu west"


def two_heads(inv: dict, ctx: Context) -> None:
    group(inv, "ray_head")["worker1"] = group(inv, "ray_workers").pop("worker1")


def host_in_both_groups(inv: dict, ctx: Context) -> None:
    group(inv, "ray_workers")["head"] = {}


def not_root(inv: dict, ctx: Context) -> None:
    """An operator account without become: here root acting as `nobody` through su."""
    all_vars(inv).update(
        ansible_become=True,
        ansible_become_method="su",
        ansible_become_user="nobody",
        ansible_become_flags="-s /bin/sh",
    )


def duplicate_ports(inv: dict, ctx: Context) -> None:
    all_vars(inv).update(ray_dashboard_port=18265, ray_serve_http_port=18265)


def node_exporter_port_taken(inv: dict, ctx: Context) -> None:
    """The node exporter's port is not one of Ray's, yet checked against them."""
    all_vars(inv).update(ray_metrics_export_port=18080, ray_node_exporter_port=18080)


def port_out_of_range(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_serve_http_port"] = 70000


def removing_the_head(inv: dict, ctx: Context) -> None:
    """remove-worker.yml's argument naming the head (site.yml checks it the same way)."""
    ctx.extra_args += ["-e", json.dumps({"ray_removed_workers": ["head"]})]


def port_not_numeric(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_serve_http_port"] = "8000/tcp"


def port_in_worker_range(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_serve_http_port"] = 10500  # default range 10002-10999


def worker_range_reversed(inv: dict, ctx: Context) -> None:
    all_vars(inv).update(ray_min_worker_port=11000, ray_max_worker_port=10002)


def gpus_without_a_gpu(inv: dict, ctx: Context) -> None:
    if list(Path("/dev").glob("nvidia[0-9]*")):
        pytest.skip("this machine has a GPU device: the worker would offer it")
    host(inv, "worker1")["ray_worker_num_gpus"] = 1


def throughput_optimized_without_haproxy(inv: dict, ctx: Context) -> None:
    all_vars(inv).update(ray_serve_proxy="python", ray_serve_throughput_optimized=True)


def ray_env_sets_serve_proxy(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_env"] = {"RAY_SERVE_ENABLE_HA_PROXY": "0"}


def replica_range_overlaps_worker_range(inv: dict, ctx: Context) -> None:
    all_vars(inv).update(
        ray_serve_replica_min_http_port=10500, ray_serve_replica_max_http_port=11500
    )


def two_apps_on_one_prefix(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_serve_applications"] = [
        {"name": "scorer", "route_prefix": "/", "import_path": "salience.deployment:app_builder"},
        {"name": "ranker", "route_prefix": "/", "import_path": "salience.deployment:app_builder"},
    ]


def duplicate_app_names(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_serve_applications"] = [
        {"name": "scorer", "route_prefix": "/a", "import_path": "salience.deployment:app_builder"},
        {"name": "scorer", "route_prefix": "/b", "import_path": "salience.deployment:app_builder"},
    ]


def unsupported_python(inv: dict, ctx: Context) -> None:
    old = find_python((9, 8))
    if old:
        host(inv, "worker1")["ansible_python_interpreter"] = old
        ctx.values["python"] = python_version(old)[2]
    else:  # no older CPython here: take this machine's out of the supported list instead
        version = python_version(SYSTEM_PYTHON)
        others = [minor for minor in SUPPORTED_MINORS if minor != version[1]]
        ctx.extra_args += ["-e", json.dumps({"ray_supported_python_minors": others})]
        ctx.values["python"] = version[2]


def mixed_python(inv: dict, ctx: Context) -> None:
    mine = python_version(SYSTEM_PYTHON)[1]
    other = find_python(tuple(minor for minor in SUPPORTED_MINORS if minor != mine))
    if not other:
        pytest.skip(
            "needs a second supported CPython (3.10-3.13, not this machine's) on this machine"
        )
    host(inv, "worker1")["ansible_python_interpreter"] = other


def worker_sees_os(ctx: Context, inv: dict, name: str, os_release: str) -> None:
    """worker1's python3 sees OS_RELEASE as /etc/os-release (a mount namespace of its own)."""
    if not unshare_works("--mount", "--propagation", "private"):
        pytest.skip("needs `unshare --mount` (root) to show the worker another /etc/os-release")
    fake = ctx.tmp / "os-release"
    fake.write_text(os_release)
    real = os.path.realpath("/etc/os-release")
    host(inv, "worker1")["ansible_python_interpreter"] = interpreter_wrapper(
        ctx,
        f"python-{name}",
        f"# python3 that sees a {name} /etc/os-release, in a mount namespace of its own\n"
        "exec unshare --mount --propagation private /bin/sh -c "
        f'\'mount --bind "$1" "$2" && shift 2 && exec "$@"\' sh {fake} {real} '
        f'{SYSTEM_PYTHON} "$@"',
    )


ALMALINUX = (
    'NAME="AlmaLinux"\nVERSION="9.4 (Seafoam Ocelot)"\nID="almalinux"\n'
    'ID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
)
UBUNTU = (
    'NAME="Ubuntu"\nVERSION="24.04.1 LTS (Noble Numbat)"\nID=ubuntu\nID_LIKE=debian\n'
    'VERSION_ID="24.04"\nVERSION_CODENAME=noble\n'
)


def unsupported_os(inv: dict, ctx: Context) -> None:
    worker_sees_os(ctx, inv, "almalinux", ALMALINUX)


def untested_os(inv: dict, ctx: Context) -> None:
    """A Debian-family OS the roles are not tested on."""
    worker_sees_os(ctx, inv, "ubuntu", UBUNTU)


def untested_os_accepted(inv: dict, ctx: Context) -> None:
    """The same, accepted by the operator's explicit choice."""
    worker_sees_os(ctx, inv, "ubuntu", UBUNTU)
    all_vars(inv)["ray_allow_untested_os"] = True


def auth_token_on_old_ray(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_version"] = "2.40.0"  # ray_auth_mode keeps its default, token


def ray_version_unquoted(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_version"] = 2.60  # what YAML makes of an unquoted 2.60


def shm_too_small(inv: dict, ctx: Context) -> None:
    shm = shm_bytes()
    all_vars(inv)["ray_object_store_memory"] = shm + 1024 * MIB
    ctx.values.update(shm_mib=shm // MIB, need_mib=(shm + 1024 * MIB) // MIB)


def shm_filled(inv: dict, ctx: Context) -> None:
    """/dev/shm is large enough, but another program filled it: 128 MiB held there for the
    run, and an object store 64 MiB below the file system's size. Ray compares the space
    available, so the store would fall back to disk."""
    fill = Path(f"/dev/shm/rayforge-preflight-test-{os.getpid()}-{ctx.gcs_port}")
    subprocess.run(["fallocate", "-l", str(128 * MIB), str(fill)], check=True)
    ctx.stack.callback(fill.unlink)
    shm = shm_bytes()
    all_vars(inv)["ray_object_store_memory"] = shm - 64 * MIB
    ctx.values.update(shm_mib=shm // MIB, need_mib=(shm - 64 * MIB) // MIB)


def address_not_on_host(inv: dict, ctx: Context) -> None:
    if is_local_address(FOREIGN_IP):
        pytest.skip(f"{FOREIGN_IP} is an address of this machine")
    host(inv, "worker1")["ray_node_ip_address"] = FOREIGN_IP


def loopback_across_machines(inv: dict, ctx: Context) -> None:
    if not unshare_works("--net"):
        pytest.skip("needs `unshare --net` (root) to put the worker on a network of its own")
    host(inv, "worker1")["ansible_python_interpreter"] = interpreter_wrapper(
        ctx,
        "python-own-network",
        "# python3 in a new, empty network namespace: another machine's loopback\n"
        f'exec unshare --net {SYSTEM_PYTHON} "$@"',
    )


def two_nodes_one_address(inv: dict, ctx: Context) -> None:
    host(inv, "worker1")["ray_node_ip_address"] = "127.0.0.1"  # the head's


def cluster_setting_differs(inv: dict, ctx: Context) -> None:
    host(inv, "worker1")["ray_gcs_port"] = ctx.gcs_port + 1
    ctx.values["other_port"] = ctx.gcs_port + 1


def dashboard_host_not_on_head(inv: dict, ctx: Context) -> None:
    if is_local_address(FOREIGN_IP):
        pytest.skip(f"{FOREIGN_IP} is an address of this machine")
    all_vars(inv)["ray_dashboard_host"] = FOREIGN_IP


def gcs_port_unreachable(inv: dict, ctx: Context) -> None:
    ctx.stack.enter_context(unresponsive_listener("127.0.0.1", ctx.gcs_port))


def index_without_url(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_node_install_method"] = "index"


def wrong_type(inv: dict, ctx: Context) -> None:
    all_vars(inv)["ray_object_store_memory"] = "2GiB"


def wheelhouse_cache_read_only(inv: dict, ctx: Context) -> None:
    """RAYFORGE_CACHE on a read-only file system: what stops even root from writing."""
    mount = ctx.tmp / "read-only"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "rayforge-test", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {made.stderr.decode().strip()}")
    ctx.stack.callback(subprocess.run, ["umount", str(mount)], check=False)
    ctx.env["RAYFORGE_CACHE"] = str(mount / "cache")
    ctx.values["cache"] = str(mount / "cache" / "wheelhouse")


def wheelhouse_cache_under_a_file(inv: dict, ctx: Context) -> None:
    """ray_node_wheelhouse_cache below a regular file: it can never be created."""
    (ctx.tmp / "a-file").write_text("")
    ctx.values["cache"] = str(ctx.tmp / "a-file" / "wheelhouse")
    all_vars(inv)["ray_node_wheelhouse_cache"] = ctx.values["cache"]


def left_out_by_name(inv: dict, ctx: Context, recorded: dict | None = None) -> None:
    """worker2 is down for repair and left out with --limit. The inventory names it by a DNS
    name (one that never resolves: Ansible cannot reach it) rather than by IP, so its address
    is in no inventory value; RECORDED, when given, is the head's record of the addresses."""
    config_dir = ctx.tmp / "etc"
    config_dir.mkdir()
    all_vars(inv)["ray_config_dir"] = str(config_dir)
    host(inv, "worker2").update(
        ansible_connection="ssh", ansible_host="worker2.rayforge.invalid", ansible_port=22
    )
    host(inv, "worker2").pop("ray_node_ip_address", None)
    ctx.extra_args += ["--limit", "all:!worker2"]
    ctx.values["left_out"] = "worker2"
    if recorded is not None:
        (config_dir / "node-addresses.json").write_text(json.dumps(recorded))


def left_out_by_name_unrecorded(inv: dict, ctx: Context) -> None:
    """The head has no record of worker2's address (it never took part in a run)."""
    left_out_by_name(inv, ctx)


def left_out_by_name_recorded(inv: dict, ctx: Context) -> None:
    """The head recorded worker2's address when it last took part in a run."""
    left_out_by_name(
        inv, ctx, {"head": "127.0.0.1", "worker1": "127.0.0.2", "worker2": "127.0.0.3"}
    )


def gcs_store_of_another_head(inv: dict, ctx: Context) -> None:
    """The head's GCS store was written by a head at another address (another cluster's, or
    this head's before its address changed)."""
    store = ctx.tmp / "gcs-store"
    store.mkdir()
    (ctx.tmp / "gcs-store.identity").write_text(
        json.dumps({"gcs_address": f"{FOREIGN_IP}:6379", "ray_version": "2.60.0"})
    )
    all_vars(inv)["ray_head_gcs_storage_path"] = str(store)


def ray_version_changed(inv: dict, ctx: Context) -> None:
    """The head runs another Ray release than the inventory's ray_version: site.yml refuses the
    change (upgrade.yml makes it). The head's Ray is a stand-in that tells its version."""
    ray = ctx.tmp / "venv" / "bin" / "ray"
    ray.parent.mkdir(parents=True)
    ray.write_text('#!/bin/sh\necho "ray, version 0.0.1"\n')
    ray.chmod(0o755)
    all_vars(inv)["ray_venv_dir"] = str(ctx.tmp / "venv")


def token_changed_in_vault(inv: dict, ctx: Context) -> None:
    """The vault's ray_auth_token was changed while the head runs with another one: site.yml
    would restart the nodes a group at a time with different tokens; rotate-token.yml changes
    it. The head's installed token is a file in a config directory of the case's own."""
    config_dir = ctx.tmp / "etc"
    config_dir.mkdir()
    (config_dir / "auth_token").write_text("installed-token-of-the-running-cluster\n")
    all_vars(inv).update(ray_config_dir=str(config_dir), ray_auth_token="a-new-vaulted-token")


def lb_host(inv: dict) -> dict:
    """A load balancer host of its own (group load_balancer), this machine too."""
    inv["all"]["children"]["load_balancer"] = {"hosts": {"lb": {"ansible_host": "127.0.0.9"}}}
    return host(inv, "lb")


def lb_certificate_missing(inv: dict, ctx: Context) -> None:
    lb_host(inv)["load_balancer_tls_certificate"] = str(ctx.tmp / "serve.pem")
    ctx.values["cert"] = str(ctx.tmp / "serve.pem")


def lb_admin_cidr_invalid(inv: dict, ctx: Context) -> None:
    lb_host(inv)["load_balancer_admin_cidrs"] = ["10.0.5.0/24", "10.0.6.0/33", "ops-vpn"]


def lb_on_head_takes_the_dashboard_port(inv: dict, ctx: Context) -> None:
    """The head is the load balancer too, with the admin ports published on it."""
    inv["all"]["children"]["load_balancer"] = {"hosts": {"head": {}}}
    all_vars(inv).update(
        ray_dashboard_port=18265,
        load_balancer_admin_cidrs=["10.0.5.0/24"],
        load_balancer_dashboard_port=18265,
    )


def grafana_without_admin_password(inv: dict, ctx: Context) -> None:
    """Grafana asked for (on the head: no monitoring group), its package named, no password."""
    all_vars(inv).update(grafana_enabled=True, grafana_package_deb="/srv/grafana.deb")


def grafana_on_prometheus_port(inv: dict, ctx: Context) -> None:
    all_vars(inv).update(grafana_port=19090, prometheus_port=19090)


BAD_CASES = [
    Case(
        "grafana-without-admin-password",
        grafana_without_admin_password,
        "grafana_enabled is true on head but grafana_admin_password is empty: set it in the "
        "inventory's vault",
    ),
    Case(
        "grafana-on-prometheus-port",
        grafana_on_prometheus_port,
        "grafana_port on head is 19090: it must be a port number from 1 to 65535 other than "
        "prometheus_port (19090)",
    ),
    Case(
        "lb-certificate-missing",
        lb_certificate_missing,
        "load_balancer_tls_certificate ({cert}) must be a PEM file on the controller",
    ),
    Case(
        "lb-admin-cidr-invalid",
        lb_admin_cidr_invalid,
        "load_balancer_admin_cidrs must list IPv4 addresses or CIDRs (10.0.5.0/24); not: "
        "10.0.6.0/33, ops-vpn.",
    ),
    Case(
        "lb-on-head-takes-the-dashboard-port",
        lb_on_head_takes_the_dashboard_port,
        "load_balancer_dashboard_port 18265 is ray_dashboard_port (the dashboard): give the "
        "load balancer's port another number",
    ),
    Case("no-head", no_head, "exactly one host in group 'ray_head'; it has 0 (none)"),
    Case("two-heads", two_heads, "it has 2 (head, worker1)"),
    Case(
        "cluster-name-invalid",
        cluster_name_invalid,
        "ray_cluster_name must be letters, digits, '.', '_' or '-', starting with a letter or "
        "digit (it labels every metric as ray_io_cluster and names a directory); got "
        '"prod/eu west".',
    ),
    Case("host-in-both-groups", host_in_both_groups, "head in both 'ray_head' and 'ray_workers'"),
    Case(
        "not-root",
        not_root,
        "Ansible acts as nobody (uid 65534) on head, not root: rayforge installs packages",
    ),
    Case(
        "gpus-without-a-gpu",
        gpus_without_a_gpu,
        "worker1 is told to offer 1 GPU(s) (ray-worker), but has no GPU device",
    ),
    Case(
        "duplicate-ports",
        duplicate_ports,
        "ray_dashboard_port and ray_serve_http_port share port 18265",
    ),
    Case(
        "node-exporter-port-taken",
        node_exporter_port_taken,
        "ray_metrics_export_port and ray_node_exporter_port share port 18080",
    ),
    Case(
        "port-out-of-range",
        port_out_of_range,
        "ray_serve_http_port=70000. Set each to a number between 1 and 65535",
    ),
    Case(
        "removing-the-head",
        removing_the_head,
        "ray_removed_workers must list inventory names of group 'ray_workers'",
    ),
    Case("port-not-numeric", port_not_numeric, "argument 'ray_serve_http_port' is of type str"),
    Case(
        "port-in-worker-range",
        port_in_worker_range,
        "(10002-10999) on head contains ray_serve_http_port=10500",
    ),
    Case("worker-range-reversed", worker_range_reversed, "(11000-10002) on head is reversed"),
    Case(
        "throughput-optimized-without-haproxy",
        throughput_optimized_without_haproxy,
        "ray_serve_throughput_optimized needs ray_serve_proxy: haproxy",
    ),
    Case(
        "ray-env-sets-serve-proxy",
        ray_env_sets_serve_proxy,
        "ray_env sets RAY_SERVE_ENABLE_HA_PROXY, which rayforge derives from ray_serve_proxy",
    ),
    Case(
        "replica-range-overlaps-worker-range",
        replica_range_overlaps_worker_range,
        "(10500-11500) on head must be ordered",
    ),
    Case("two-apps-one-prefix", two_apps_on_one_prefix, "/ used more than once"),
    Case("duplicate-app-names", duplicate_app_names, "names: scorer, scorer"),
    Case("unsupported-python", unsupported_python, "worker1 runs Python {python}"),
    Case("mixed-python", mixed_python, "Hosts differ in Python version or CPU architecture"),
    Case("unsupported-os", unsupported_os, "worker1 runs AlmaLinux 9.4 (OS family RedHat)"),
    Case(
        "untested-os",
        untested_os,
        "worker1 runs Ubuntu 24.04 (OS family Debian); rayforge is tested on Debian 12 and 13 only."
        " Move the host to a tested release, leave it out of the inventory, or set"
        " ray_allow_untested_os: true",
    ),
    Case(
        "auth-on-old-ray",
        auth_token_on_old_ray,
        "token auth needs Ray >= 2.52; raise ray_version or set ray_auth_mode: disabled"
        " (not recommended)",
    ),
    Case("ray-version-unquoted", ray_version_unquoted, "is 2.6 (float), not a release number"),
    Case(
        "shm-too-small",
        shm_too_small,
        "On head, /dev/shm: the object store needs {need_mib} MiB, Ray can use",
    ),
    Case(
        "shm-filled",
        shm_filled,
        "free of {shm_mib} MiB). Free /dev/shm (delete what other programs left there), grow "
        "it (docker: --shm-size) or set ray_object_store_memory (bytes) to what fits.",
    ),
    Case(
        "address-not-on-host",
        address_not_on_host,
        f"worker1 advertises {FOREIGN_IP} (ray_node_ip_address),"
        " which is not an address of that host",
    ),
    Case(
        "loopback-across-machines",
        loopback_across_machines,
        "worker1 advertises 127.0.0.2 (its inventory address), a loopback address,"
        " but the cluster's hosts do not share one network stack",
    ),
    Case("two-nodes-one-address", two_nodes_one_address, "head and worker1 advertise 127.0.0.1"),
    Case(
        "cluster-setting-differs",
        cluster_setting_differs,
        "ray_gcs_port differs between hosts (head: {gcs_port}, worker1: {other_port})",
    ),
    Case(
        "dashboard-host-not-on-head",
        dashboard_host_not_on_head,
        f"ray_dashboard_host is {FOREIGN_IP}, not an address of head, the head",
    ),
    Case(
        "gcs-port-unreachable",
        gcs_port_unreachable,
        "worker1 cannot reach 127.0.0.1:{gcs_port}, the head's GCS address it would join",
    ),
    Case(
        "index-without-url",
        index_without_url,
        "ray_node_install_method is 'index' but ray_node_index_url is empty",
    ),
    Case(
        "left-out-by-name-unrecorded",
        left_out_by_name_unrecorded,
        "The address of worker2 is unknown: outside this run (--limit), named by"
        " worker2.rayforge.invalid rather than an IPv4 address, not in the head's record",
        workers=2,
    ),
    Case(
        "gcs-store-of-another-head",
        gcs_store_of_another_head,
        f"was written by the head at {FOREIGN_IP}:6379, not this cluster's 127.0.0.1:{{gcs_port}}",
    ),
    Case(
        "ray-version-changed",
        ray_version_changed,
        "The head runs Ray 0.0.1; the inventory asks for Ray",
    ),
    Case("wrong-type", wrong_type, "argument 'ray_object_store_memory' is of type str"),
    Case(
        "token-changed-in-vault",
        token_changed_in_vault,
        "ray_auth_token differs from the token the cluster on head runs with",
    ),
    Case(
        "wheelhouse-cache-read-only",
        wheelhouse_cache_read_only,
        "Read-only file system: the controller cannot create or write the wheelhouse cache "
        "{cache}. Set the environment variable RAYFORGE_CACHE",
    ),
    Case(
        "wheelhouse-cache-under-a-file",
        wheelhouse_cache_under_a_file,
        "Not a directory: the controller cannot create or write the wheelhouse cache {cache}. "
        "Set the environment variable RAYFORGE_CACHE",
    ),
]


# --- The good cases -------------------------------------------------------------------------


def fresh_cluster(inv: dict, ctx: Context) -> None:
    """Nothing on the GCS port: a stand-in listens there while the workers probe it."""


def running_head(inv: dict, ctx: Context) -> None:
    """A head already answers on its GCS port: the workers probe it directly."""
    ctx.stack.enter_context(answering_listener("127.0.0.1", ctx.gcs_port))


def single_host(inv: dict, ctx: Context) -> None:
    """No workers: nothing to probe."""
    del inv["all"]["children"]["ray_workers"]


def wheelhouse_cache_missing(inv: dict, ctx: Context) -> None:
    """A fresh controller: the cache root does not exist yet (the preflight creates it)."""
    ctx.env["RAYFORGE_CACHE"] = str(ctx.tmp / "fresh" / "cache")
    ctx.values["cache"] = str(ctx.tmp / "fresh" / "cache" / "wheelhouse")


def lean_controller(inv: dict, ctx: Context) -> None:
    """The controller's Ansible as the README installs it: `scripts/bootstrap.sh --controller`
    from an empty cache root, and nothing of the development venv on PATH."""
    cache = ctx.tmp / "cache"
    built = subprocess.run(
        [str(REPO / "scripts/bootstrap.sh"), "--controller"],
        env={**os.environ, "RAYFORGE_CACHE": str(cache)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    venv = Path(built.stdout.strip().splitlines()[-1])
    ctx.env["PATH"] = f"{venv}/bin:/usr/local/bin:/usr/bin:/bin"
    ctx.env["RAYFORGE_CACHE"] = str(cache)
    ctx.values["venv"] = str(venv)


def with_load_balancer(inv: dict, ctx: Context) -> None:
    """A load balancer host of its own with TLS (a certificate and key made here) and admin
    networks: its checks pass, and site.yml's later plays reach it with --tags preflight."""
    cert, key = ctx.tmp / "serve.pem", ctx.tmp / "serve.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=lb", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    lb_host(inv).update(
        load_balancer_tls_certificate=str(cert),
        load_balancer_tls_key=str(key),
        load_balancer_admin_cidrs=["10.0.5.0/24", "10.0.6.7"],
    )
    ctx.values["extra_hosts"] = ["lb"]


GOOD_CASES = [
    Case(
        "with-load-balancer",
        with_load_balancer,
        "TASK [load_balancer : Load balancer checks passed for this host",
        good=True,
    ),
    Case(
        "untested-os-accepted",
        untested_os_accepted,
        "TASK [ray : Each host's settings, system and memory pass the checks",
        good=True,
    ),
    Case(
        "lean-controller",
        lean_controller,
        "TASK [ray : Controller runs the ansible-core the roles need",
        good=True,
        slow=True,
    ),
    Case(
        "left-out-by-name-recorded",
        left_out_by_name_recorded,
        "TASK [ray : Recorded addresses are noted",
        workers=2,
        # Never contacted: the recorded address is used, no fact gathering was tried.
        absent="worker2.rayforge.invalid",
        good=True,
    ),
    Case(
        "fresh-cluster",
        fresh_cluster,
        "TASK [ray : A stand-in listens on the head's GCS address",
        workers=2,
        good=True,
    ),
    Case(
        "running-head",
        running_head,
        "TASK [ray : Each worker connects to the head's GCS address",
        absent="TASK [ray : A stand-in listens on the head's GCS address",
        good=True,
    ),
    Case(
        "single-host",
        single_host,
        "TASK [ray : Inventory has exactly one head",
        workers=0,
        absent="TASK [ray : Listeners on the head's GCS port are read",
        good=True,
    ),
    Case(
        "wheelhouse-cache-missing",
        wheelhouse_cache_missing,
        "TASK [ray_node : Wheelhouse cache on the controller is a writable directory",
        good=True,
    ),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda case: case.id)
def test_bad_inventory_fails_in_preflight(case: Case, runs: dict) -> None:
    run = runs[case.id].result()
    expected = case.expect.format(**run.values)
    assert run.rc == 2, describe(run)
    assert normalise(expected) in normalise(run.output), describe(run)
    assert NODES_BANNER not in run.stdout, describe(run)
    assert all(name.startswith(PREFLIGHT_PLAY) for name in play_banners(run.stdout)), describe(run)
    hosts = recap(run.stdout)
    assert hosts, describe(run)
    assert {name: counts["changed"] for name, counts in hosts.items()} == dict.fromkeys(hosts, 0)


@pytest.mark.parametrize(
    "case", [case for case in GOOD_CASES if case.id == "wheelhouse-cache-missing"], ids=str
)
def test_preflight_creates_a_missing_wheelhouse_cache(case: Case, runs: dict) -> None:
    run = runs[case.id].result()
    assert run.rc == 0, describe(run)
    cache = Path(str(run.values["cache"]))
    assert cache.is_dir(), describe(run)
    assert list(cache.iterdir()) == [], "the probe's file is left behind"


@pytest.mark.parametrize(
    "case", [case for case in GOOD_CASES if case.id == "lean-controller"], ids=str
)
def test_the_lean_controller_has_what_the_playbooks_need_and_no_more(
    case: Case, runs: dict
) -> None:
    """Its preflight passed (test_good_inventory_passes_preflight) without a Python warning
    (a dependency's deprecation printed at every run); and none of the development tools is
    in it."""
    run = runs[case.id].result()
    assert run.rc == 0, describe(run)
    assert "Warning:" not in run.stderr, run.stderr[-3000:]
    listed = subprocess.run(
        [f"{run.values['venv']}/bin/python", "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "ansible-core" in names, names
    assert not names & {"ray", "molecule", "pytest", "ansible-lint", "rayforge-salience"}, names


@pytest.mark.parametrize("case", GOOD_CASES, ids=lambda case: case.id)
def test_good_inventory_passes_preflight(case: Case, runs: dict) -> None:
    run = runs[case.id].result()
    assert run.rc == 0, describe(run)
    assert normalise(case.expect) in normalise(run.stdout), describe(run)
    if case.absent:
        assert normalise(case.absent) not in normalise(run.stdout), describe(run)
    hosts = recap(run.stdout)
    expected = {"head", *(f"worker{n}" for n in range(1, case.workers + 1))}
    expected.discard(run.values.get("left_out"))
    expected |= set(run.values.get("extra_hosts", []))
    assert set(hosts) == expected, describe(run)
    assert {name: counts["changed"] for name, counts in hosts.items()} == dict.fromkeys(hosts, 0)


@pytest.mark.parametrize("case", GOOD_CASES, ids=lambda case: case.id)
def test_every_check_runs_once(case: Case, runs: dict) -> None:
    """A good run with --tags preflight goes through every play of site.yml: the Preflight
    play runs each role's checks, and each role's main.yml in the later plays (its preflight
    include is tagged preflight too) skips them, as they passed for the host in this run. So no
    task banner repeats but those of the ray role's setup, which every play runs again, and
    the argument validation of the ray and ray_serve roles' main entry points (dependencies of
    the roles of every play)."""
    run = runs[case.id].result()
    assert run.rc == 0, describe(run)
    repeated = sorted(
        name
        for name, count in Counter(task_banners(run.stdout)).items()
        if count > 1
        and name not in RAY_SETUP_TASKS
        and name not in PER_NODE_KIND_TASKS
        and not name.startswith("ray : Validating arguments against arg spec 'main'")
        and not name.startswith("ray_serve : Validating arguments against arg spec 'main'")
    )
    assert repeated == [], describe(run)
    assert "TASK [ray_node : Install method is usable]" in run.stdout, describe(run)
