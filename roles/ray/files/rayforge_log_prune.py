#!/usr/bin/env python3
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""Keeps Ray's session directories on this node within bounds (the unit <ray unit>-log-prune,
run by its timer).

Ray rotates each log file of a live process (RAY_ROTATION_MAX_BYTES, RAY_ROTATION_BACKUP_COUNT
in the unit's environment) but never removes one: every worker, runtime-env setup and Serve
replica that ever ran leaves its own files (worker-<id>-<job>-<pid>.out/.err,
python-core-worker-<id>_<pid>.log, serve/replica_*.log ...) in the session's logs/, and a head
whose GCS state persists keeps reusing one session for months. Nor does Ray remove the
session directories of earlier starts. So, each run:

* session directories under --temp-dir (session_*) other than the live one (the target of
  session_latest) are removed, all but the newest --keep-sessions of them, and never one a
  live process has a file open in;
* in the live session's logs/ (all of it, subdirectories too), files older than
  --max-age-days are removed, then the oldest until the directory holds at most --max-files
  files and --max-bytes bytes. Never removed: a file a live process has open (every
  /proc/<pid>/fd this user may read), a file whose name ends in the pid of a live process
  (Ray writes the pid into the names of per-process logs: a worker between two writes), and
  a rotated copy (name.1, name.1.log) of such a file. Those count towards the caps all the
  same; when they alone exceed them, the run says so and leaves them. Ray's log monitor
  keeps up to 200 worker logs open (RAY_LOG_MONITOR_MAX_OPEN_FILES), dead workers' too, until
  it lets go of them all at once and moves the dead ones to logs/old/: a floor under the caps.

Why not a well-kept tool: systemd-tmpfiles removes by age only (no count or size cap, no
notion of a file a process has open or of the session Ray uses), and logrotate rotates
files it is told the names of, which here are new for every process, and removes none of a
dead process. This script does only what they cannot, and nothing else.

It runs as the ray user (whose processes write these files, mode 0640): a process of
another user cannot write them, and one that reads them keeps its descriptor when the name
goes. Every removal and the totals go to stdout, which is the journal. Exit status 0, also
when the caps cannot be met (the next run tries again); 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# A pid at the end of a log file's name, before its extension: worker-<id>-<job>-1234.out,
# python-core-worker-<id>_1234.log, serve/controller_1234.log.
PID_IN_NAME = re.compile(r"[-_](\d+)\.[A-Za-z]+$")
# A rotated copy: Python's handlers append .N, Ray's C++ logger inserts .N before the extension.
ROTATED = (re.compile(r"\.\d+$"), re.compile(r"\.\d+(?=\.[A-Za-z]+$)"))


@dataclass
class LogFile:
    path: Path
    size: int
    mtime: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temp-dir", type=Path, required=True, help="Ray's --temp-dir")
    parser.add_argument(
        "--keep-sessions", type=int, default=1, help="earlier session directories kept"
    )
    parser.add_argument(
        "--max-files", type=int, default=0, help="files in the live logs/ (0: no cap)"
    )
    parser.add_argument(
        "--max-bytes", type=int, default=0, help="bytes in the live logs/ (0: no cap)"
    )
    parser.add_argument(
        "--max-age-days", type=float, default=0, help="age of a log file (0: no cap)"
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would go, remove none")
    args = parser.parse_args(argv)
    for name in ("keep_sessions", "max_files", "max_bytes", "max_age_days"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    return args


def live_pids(proc: Path = Path("/proc")) -> set[int]:
    return {int(entry.name) for entry in proc.iterdir() if entry.name.isdigit()}


def open_files(pids: set[int], proc: Path = Path("/proc")) -> set[str]:
    """Paths that the live processes PIDS have open (those whose fd/ this user may read)."""
    found: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(proc / str(pid) / "fd")
        except OSError:  # gone meanwhile, or another user's
            continue
        for fd in fds:
            try:
                target = os.readlink(proc / str(pid) / "fd" / fd)
            except OSError:
                continue
            if target.startswith("/"):
                found.add(target)
    return found


def base_name(name: str) -> str:
    """NAME without a rotation number: raylet.out.1 and raylet.1.out are raylet.out's."""
    for pattern in ROTATED:
        name = pattern.sub("", name, count=1)
    return name


def name_pid(name: str) -> int | None:
    match = PID_IN_NAME.search(base_name(name))
    return int(match[1]) if match else None


def in_use(path: Path, pids: set[int], opened: set[str]) -> bool:
    """Whether a live process has PATH (or the file it is a rotated copy of) open, or PATH's
    name carries a live pid."""
    real = os.path.realpath(path)
    if real in opened or os.path.join(os.path.dirname(real), base_name(path.name)) in opened:
        return True
    return name_pid(path.name) in pids


def prune_sessions(temp_dir: Path, keep: int, opened: set[str], dry_run: bool, say) -> Path | None:
    """Removes the earlier session directories but the newest KEEP; returns the live one."""
    latest = temp_dir / "session_latest"
    live = latest.resolve() if latest.is_symlink() else None
    earlier = sorted(
        (
            d
            for d in temp_dir.glob("session_*")
            if d.is_dir() and not d.is_symlink() and d.resolve() != live
        ),
        key=lambda d: d.name,  # session_<date>_<time>_<micro>_<pid>: oldest first
        reverse=True,
    )
    for session in earlier[keep:]:
        prefix = str(session.resolve()) + os.sep
        if any(path.startswith(prefix) for path in opened):
            say(f"kept {session}: a live process has a file open in it")
            continue
        say(f"{'would remove' if dry_run else 'removed'} earlier session {session}")
        if not dry_run:
            shutil.rmtree(session, ignore_errors=True)
    return live


def log_files(logs: Path) -> list[LogFile]:
    files = []
    for root, _dirs, names in os.walk(logs):
        for name in names:
            path = Path(root) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if path.is_file() and not path.is_symlink():
                files.append(LogFile(path, st.st_size, st.st_mtime))
    return files


def prune_logs(
    logs: Path,
    args: argparse.Namespace,
    pids: set[int],
    opened: set[str],
    say,
    now: float | None = None,
) -> tuple[int, int]:
    """Removes what the caps ask of LOGS, oldest first, never a file in use. Returns the
    (files, bytes) left."""
    now = time.time() if now is None else now
    files = log_files(logs)
    count, size = len(files), sum(f.size for f in files)
    removable = sorted(
        (f for f in files if not in_use(f.path, pids, opened)), key=lambda f: f.mtime
    )
    gone_files = gone_bytes = 0
    for f in removable:
        too_old = args.max_age_days > 0 and now - f.mtime > args.max_age_days * 86400
        too_many = args.max_files > 0 and count > args.max_files
        too_big = args.max_bytes > 0 and size > args.max_bytes
        if not (too_old or too_many or too_big):
            continue
        if not args.dry_run:
            with contextlib.suppress(FileNotFoundError):
                f.path.unlink()
        count -= 1
        size -= f.size
        gone_files += 1
        gone_bytes += f.size
    verb = "would remove" if args.dry_run else "removed"
    say(
        f"{logs}: {verb} {gone_files} files ({gone_bytes} bytes); {count} files ({size} bytes)"
        f" left, {len(files) - len(removable)} of them in use"
    )
    if (args.max_files and count > args.max_files) or (args.max_bytes and size > args.max_bytes):
        say(
            f"{logs}: still above the caps ({args.max_files or '-'} files, "
            f"{args.max_bytes or '-'} bytes): what is left is in use by live processes"
        )
    return count, size


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    if not args.temp_dir.is_dir():
        say(f"{args.temp_dir} does not exist: nothing to prune")
        return 0
    pids = live_pids()
    pids.discard(os.getpid())
    opened = open_files(pids)
    live = prune_sessions(args.temp_dir, args.keep_sessions, opened, args.dry_run, say)
    if live is not None and (live / "logs").is_dir():
        prune_logs(live / "logs", args, pids, opened, say)
    else:
        say(f"{args.temp_dir}: no live session (session_latest): no logs to prune")
    return 0


if __name__ == "__main__":
    sys.exit(main())
