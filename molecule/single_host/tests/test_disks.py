"""Ray's logs stay within the inventory's caps under churn: thousands of short tasks, fresh
worker processes that exit, a Serve application redeployed again and again (churn_driver.py,
run on the head as the ray user); then the node's log pruner, started by hand as its timer
would, brings the live session's logs/ under ray_log_max_files and ray_log_max_session_bytes,
removes earlier sessions beyond ray_log_keep_sessions, and removes no file a live process
has open. The scenario's own applications are left alone (the churn has its own name and
route, deleted at the end).

The /proc of Ray's processes is read as the ray user: the container's root lacks
CAP_SYS_PTRACE, so it may not read another user's open files.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from pathlib import Path

import pytest

CHURN_APP = "rf-disk-churn"
CHURN_ROUTE = "/rf-disk-churn"
# 2,000 short tasks; 2 x 60 tasks in a fresh worker each, the first 60 printing 150 kB each
# (a job's output); 10 redeploys of a one-replica application. 100 redeploys took about 6 s
# each on the shared 2-core host (10 minutes): ten leave the same kind of files behind in the
# suite; RAYFORGE_CHURN_REDEPLOYS=100 runs the full churn by hand.
REDEPLOYS = int(os.environ.get("RAYFORGE_CHURN_REDEPLOYS", "10"))
CHURN_ARGS = [2000, 60, 150_000, REDEPLOYS, 1, CHURN_APP, CHURN_ROUTE]
DRIVER = "/tmp/rayforge-churn-driver.py"
# Old sessions the test makes, older than any real one.
FAKE_SESSIONS = ["session_2000-01-01_00-00-00_000000_1", "session_2000-01-02_00-00-00_000000_1"]


def as_ray(rayvars, command: str) -> str:
    return f"runuser -u {rayvars['ray_user']} -- sh -c {shlex.quote(command)}"


@pytest.fixture
def temp_dir(rayvars) -> str:
    return f"{rayvars['ray_data_dir']}/tmp"


@pytest.fixture
def prune_unit(rayvars) -> str:
    return f"{rayvars['ray_head_service_name']}-log-prune"


def live_logs(host, temp_dir) -> str:
    return host.check_output(f"readlink -f {temp_dir}/session_latest") + "/logs"


def usage(host, rayvars, logs) -> tuple[int, int]:
    """(files, bytes) under LOGS."""
    sizes = host.check_output(as_ray(rayvars, f"find {logs} -type f -printf '%s\\n'")).split()
    return len(sizes), sum(int(s) for s in sizes)


def open_logs(host, rayvars, logs) -> set[tuple[int, str]]:
    """(pid, path) of every file under LOGS a process has open."""
    out = host.run(
        as_ray(rayvars, f"find /proc/[0-9]*/fd -lname '{logs}/*' -printf '%h %l\\n' 2>/dev/null")
    ).stdout
    return {
        (int(d.split("/")[2]), path)
        for d, path in (line.split(" ", 1) for line in out.splitlines())
    }


def sessions(host, temp_dir) -> list[str]:
    out = host.check_output(
        f"find {temp_dir} -maxdepth 1 -type d -name 'session_*' -printf '%f\\n'"
    )
    return sorted(out.split())


def test_ray_rotates_its_logs_at_the_inventory_settings(host, rayvars):
    """Ray passes RAY_ROTATION_* on to the processes it starts (the raylet's command line
    carries them for the workers)."""
    raylet = host.check_output("pgrep -u ray -f -o 'core/src/ray/raylet/raylet'")
    cmdline = host.file(f"/proc/{raylet}/cmdline").content_string
    assert f"--logging-rotate-bytes={rayvars['ray_log_rotation_max_bytes']}" in cmdline
    assert f"--logging-rotate-backup-count={rayvars['ray_log_rotation_backup_count']}" in cmdline


def test_the_pruner_timer_runs(host, prune_unit):
    timer = host.service(f"{prune_unit}.timer")
    assert timer.is_enabled
    assert timer.is_running


@pytest.fixture
def timer_held(host, prune_unit):
    """The pruner's timer stopped while a test churns (a run of its own in the middle would
    prune before the test takes stock), started again after."""
    host.check_output(f"systemctl stop {prune_unit}.timer")
    yield
    host.check_output(f"systemctl start {prune_unit}.timer")


def test_churn_is_pruned_to_the_caps_and_no_open_file_goes(
    host, rayvars, node_ip, temp_dir, prune_unit, timer_held
):
    started = time.monotonic()
    max_files, max_bytes = rayvars["ray_log_max_files"], rayvars["ray_log_max_session_bytes"]
    source = Path(__file__).with_name("churn_driver.py").read_text()
    host.check_output(f"cat > {DRIVER} <<'RAYFORGE_EOF'\n{source}RAYFORGE_EOF\nchmod 0644 {DRIVER}")
    env = {
        "RAY_ADDRESS": f"{node_ip}:{rayvars['ray_gcs_port']}",
        "RAY_AUTH_MODE": rayvars["ray_auth_mode"],
        "RAY_AUTH_TOKEN_PATH": f"{rayvars['ray_config_dir']}/auth_token",
    }
    args = " ".join(shlex.quote(str(a)) for a in CHURN_ARGS)
    churn = host.run(
        f"cd {rayvars['ray_data_dir']} && timeout 900 runuser -u {rayvars['ray_user']} -- env "
        + " ".join(f"{k}={v}" for k, v in env.items())
        + f" {rayvars['ray_venv_dir']}/bin/python {DRIVER} {args}"
    )
    assert churn.rc == 0, churn.stdout[-3000:] + churn.stderr[-3000:]
    timings = json.loads(churn.stdout.strip().splitlines()[-1])
    churned = time.monotonic()
    for name in FAKE_SESSIONS:
        host.check_output(as_ray(rayvars, f"mkdir -p {temp_dir}/{name}/logs"))
        host.check_output(as_ray(rayvars, f"echo old > {temp_dir}/{name}/logs/raylet.out"))
    logs = live_logs(host, temp_dir)
    live_session = Path(logs).parent.name
    # Let the deleted application's replicas exit, then take stock.
    time.sleep(5)
    before = usage(host, rayvars, logs)
    earlier = [s for s in sessions(host, temp_dir) if s != live_session]
    opened = open_logs(host, rayvars, logs)
    assert before[0] > max_files, f"the churn left {before} (files, bytes): not above the caps"
    assert before[1] > max_bytes, f"the churn left {before} (files, bytes): not above the caps"

    pruned = host.run(f"systemctl start {prune_unit}.service")
    assert pruned.rc == 0, pruned.stderr
    journal = host.check_output(f"journalctl -u {prune_unit}.service -n 5 -o cat --no-pager")
    after = usage(host, rayvars, logs)
    if after[0] > max_files or after[1] > max_bytes:
        # Above the caps only with files live processes write (Ray's rotation bounds each of
        # those): every file left is open now, or names a live process.
        alive = {int(p) for p in host.check_output("ls /proc | grep -E '^[0-9]+$'").split()}
        held = {path for _, path in open_logs(host, rayvars, logs)}
        left = host.check_output(as_ray(rayvars, f"find {logs} -type f")).split()
        free = [
            path
            for path in left
            if path not in held
            and not any(
                int(pid) in alive for pid in re.findall(r"[-_](\d+)\.(?:log|out|err)", path)
            )
        ]
        assert not free, (after, free[:20], journal)
        assert "in use by live processes" in journal, (after, journal)
    # A process alive now was alive while the pruner ran: what it had open is still there.
    alive = {int(p) for p in host.check_output("ls /proc | grep -E '^[0-9]+$'").split()}
    kept = sorted({path for pid, path in opened if pid in alive})
    missing = host.run(
        "for p in " + " ".join(shlex.quote(p) for p in kept) + '; do [ -e "$p" ] || echo "$p"; done'
    ).stdout.split()
    assert not missing, missing
    # Earlier sessions: the newest ray_log_keep_sessions are left, the live one always.
    left = [s for s in sessions(host, temp_dir) if s != live_session]
    keep = rayvars["ray_log_keep_sessions"]
    assert left == sorted(earlier)[max(0, len(earlier) - keep) :], journal
    assert live_session in sessions(host, temp_dir)
    print(
        f"churn {timings}; churn {churned - started:.0f} s, all {time.monotonic() - started:.0f} s;"
        f" logs/ before {before[0]} files {before[1]} bytes, after {after[0]} files"
        f" {after[1]} bytes; {len(kept)} open files kept; earlier sessions {earlier} -> {left};"
        f"\n{journal}"
    )
