"""The log pruner (roles/ray/files/rayforge_log_prune.py) on a temp dir shaped like Ray's
--temp-dir, with real processes.

Proves: earlier sessions beyond --keep-sessions go, newest kept, never the live one (the target
of session_latest) nor one a live process has a file open in; in the live session's logs/ the
oldest files go first until --max-files and --max-bytes hold, and files older than
--max-age-days go; a file a live child process holds open, one named with a live pid and the
rotated copies of an open file survive (and still count); --dry-run removes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOLD = "import sys, time; f = open(sys.argv[1], 'a'); print('ready', flush=True); time.sleep(60)"


@pytest.fixture
def holder():
    """Starts a child process that keeps PATH open; killed at the end of the test."""
    children = []

    def start(path: Path) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
        )
        children.append(child)
        assert child.stdout.readline().strip() == "ready"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write(path: Path, size: int, age_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def session(temp: Path, name: str, live: bool = False) -> Path:
    d = temp / name
    (d / "logs").mkdir(parents=True)
    if live:
        (temp / "session_latest").symlink_to(d)
    return d


def run(log_prune, temp: Path, *extra: str) -> list[str]:
    lines: list[str] = []
    args = log_prune.parse_args([f"--temp-dir={temp}", *extra])
    pids = log_prune.live_pids()
    opened = log_prune.open_files(pids)
    live = log_prune.prune_sessions(temp, args.keep_sessions, opened, args.dry_run, lines.append)
    log_prune.prune_logs(live / "logs", args, pids, opened, lines.append)
    return lines


def names(logs: Path) -> set[str]:
    return {str(p.relative_to(logs)) for p in logs.rglob("*") if p.is_file()}


def test_earlier_sessions_beyond_the_kept_go_newest_kept_live_never(log_prune, tmp_path):
    old = [session(tmp_path, f"session_2026-0{m}-01_10-00-00_000000_1") for m in (1, 2, 3)]
    live = session(tmp_path, "session_2025-12-01_10-00-00_000000_1", live=True)
    run(log_prune, tmp_path, "--keep-sessions=1")
    assert not old[0].exists()
    assert not old[1].exists()
    assert old[2].exists()  # the newest earlier session
    assert live.exists()  # older by name, but session_latest points to it
    run(log_prune, tmp_path, "--keep-sessions=0")
    assert not old[2].exists()
    assert live.exists()


def test_an_earlier_session_a_live_process_writes_in_is_kept(log_prune, tmp_path, holder):
    old = session(tmp_path, "session_2026-01-01_10-00-00_000000_1")
    session(tmp_path, "session_2026-02-01_10-00-00_000000_1", live=True)
    holder(write(old / "logs" / "raylet.out", 10, 0))
    lines = run(log_prune, tmp_path, "--keep-sessions=0")
    assert old.exists()
    assert any("a live process has a file open" in line for line in lines)


def test_oldest_files_go_first_until_both_caps_hold(log_prune, tmp_path):
    logs = session(tmp_path, "session_2026-01-01_10-00-00_000000_1", live=True) / "logs"
    gone = dead_pid()
    for i in range(10):  # worker-9 is the newest
        write(logs / f"worker-{i:02x}-01000000-{gone}.out", 100, age_s=1000 - i)
    write(logs / "serve" / "replica_app_Echo_abcd1234.log", 100, age_s=2000)  # oldest of all
    run(log_prune, tmp_path, "--max-files=6", "--max-bytes=100000")
    left = names(logs)
    assert len(left) == 6
    assert "serve/replica_app_Echo_abcd1234.log" not in left
    assert {f"worker-{i:02x}-01000000-{gone}.out" for i in range(5, 10)} <= left
    run(log_prune, tmp_path, "--max-bytes=350")
    assert names(logs) == {f"worker-{i:02x}-01000000-{gone}.out" for i in range(7, 10)}


def test_files_older_than_the_age_cap_go(log_prune, tmp_path):
    logs = session(tmp_path, "session_2026-01-01_10-00-00_000000_1", live=True) / "logs"
    write(logs / "runtime_env_setup-01000000.log", 10, age_s=3 * 86400)
    write(logs / "runtime_env_setup-02000000.log", 10, age_s=3600)
    run(log_prune, tmp_path, "--max-age-days=2")
    assert names(logs) == {"runtime_env_setup-02000000.log"}


def test_files_in_use_survive_and_still_count(log_prune, tmp_path, holder):
    logs = session(tmp_path, "session_2026-01-01_10-00-00_000000_1", live=True) / "logs"
    # Oldest of all, held open by a live process that is not named in it.
    raylet = write(logs / "raylet.out", 1000, age_s=9000)
    child = holder(raylet)
    # Rotated copies of the open file, Python's and Ray's C++ naming.
    rotated = [write(logs / "raylet.out.1", 1000, 8000), write(logs / "raylet.1.out", 1000, 8000)]
    # Closed, but named with the live child's pid (a worker between two writes), and its copy.
    named = write(logs / f"python-core-worker-0a1b_{child.pid}.log", 1000, 8500)
    named_rotated = write(logs / f"python-core-worker-0a1b_{child.pid}.log.1", 1000, 8500)
    gone = dead_pid()
    dead = [write(logs / f"worker-{i}-01000000-{gone}.err", 1000, 100 - i) for i in range(3)]
    lines = run(log_prune, tmp_path, "--max-files=2", "--max-bytes=1")
    for path in [raylet, *rotated, named, named_rotated]:
        assert path.exists(), path
    assert not any(path.exists() for path in dead)
    assert "5 files (5000 bytes) left, 5 of them in use" in lines[-2]
    assert "still above the caps" in lines[-1]
    child.kill()
    child.wait()
    run(log_prune, tmp_path, "--max-files=2")
    assert names(logs) == {"raylet.out.1", "raylet.1.out"}  # the newest two


def test_dry_run_removes_nothing(log_prune, tmp_path):
    old = session(tmp_path, "session_2026-01-01_10-00-00_000000_1")
    logs = session(tmp_path, "session_2026-02-01_10-00-00_000000_1", live=True) / "logs"
    write(logs / f"worker-1-01000000-{dead_pid()}.out", 10, 3600)
    lines = run(
        log_prune,
        tmp_path,
        "--keep-sessions=0",
        "--max-files=0",
        "--max-age-days=0.0001",
        "--dry-run",
    )
    assert old.exists()
    assert len(names(logs)) == 1
    assert "would remove 1 files" in lines[-1]


def test_main_prunes_the_real_tree_and_says_so(log_prune, tmp_path, capsys):
    logs = session(tmp_path, "session_2026-02-01_10-00-00_000000_1", live=True) / "logs"
    pid = dead_pid()
    for i in range(3):
        write(logs / f"worker-{i}-01000000-{pid}.out", 10, 100 - i)
    assert log_prune.main([f"--temp-dir={tmp_path}", "--max-files=1"]) == 0
    assert names(logs) == {f"worker-2-01000000-{pid}.out"}
    assert "removed 2 files (20 bytes); 1 files (10 bytes) left" in capsys.readouterr().out


def test_no_temp_dir_or_no_live_session_is_nothing_to_do(log_prune, tmp_path, capsys):
    assert log_prune.main([f"--temp-dir={tmp_path / 'none'}"]) == 0
    assert log_prune.main([f"--temp-dir={tmp_path}"]) == 0
    assert "no live session" in capsys.readouterr().out


def test_negative_caps_are_refused(log_prune, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        log_prune.parse_args([f"--temp-dir={tmp_path}", "--max-files=-1"])
    assert exit_.value.code == 2
