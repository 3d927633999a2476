"""Running one ansible-playbook (or ansible) command for the provisioning benchmark, timed,
and reading its output: the PLAY RECAP, the hosts that unpacked the wheelhouse, and the
profile_tasks times."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .cpu_load import cpu_times
from .files import ROOT
from .progress import log


@dataclass
class PlaybookRun:
    """One timed ansible-playbook run.

    ``label`` names it in the progress lines; ``wall_s`` is its wall time (seconds); ``rc``
    the exit status (-1 when it hit its timeout); ``changed`` and ``failed`` (failed plus
    unreachable) are summed over the hosts of the PLAY RECAP; ``unpacked_hosts`` counts the
    hosts where the wheelhouse was unpacked (changed); ``tasks`` is profile_tasks' list of
    (task name, seconds), slowest first; ``log`` the path of its output.
    """

    label: str
    wall_s: float
    rc: int
    changed: int
    failed: int
    unpacked_hosts: int
    tasks: list[tuple[str, float]]
    log: str
    # CPU time the whole machine spent busy during the run, and what its CPUs could give.
    cpu_busy_s: float = 0.0
    cpu_capacity_s: float = 0.0


_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
_TASK_TIME = re.compile(r"^(.+?) -+ ([\d.]+)s$")
# The ray_node task whose "changed" means the wheelhouse archive was shipped to that host.
_UNPACK_TASK = "Wheelhouse is unpacked on the host"


def parse_playbook_log(text: str) -> tuple[int, int, int, list[tuple[str, float]]]:
    """Read an ansible-playbook log (no colours; profile_tasks enabled).

    Returns (changed, failed + unreachable, hosts that unpacked the wheelhouse, task times):
    the first two summed over every PLAY RECAP line, the third the ``changed: [host]`` lines
    under the TASK "Wheelhouse is unpacked on the host", the last profile_tasks' lines after
    "TASKS RECAP" as (task name, seconds) in the log's order ([] without that section).
    """
    changed = failed = unpacked = 0
    for line in text.splitlines():
        if m := _RECAP.match(line):
            changed += int(m.group(3))
            failed += int(m.group(4)) + int(m.group(5))
    current = ""
    for line in text.splitlines():
        if line.startswith("TASK ["):
            current = line
        elif _UNPACK_TASK in current and line.startswith("changed: ["):
            unpacked += 1
    tasks: list[tuple[str, float]] = []
    if "TASKS RECAP" in text:
        for line in text.split("TASKS RECAP", 1)[1].splitlines():
            if m := _TASK_TIME.match(line.strip()):
                tasks.append((m.group(1).strip(), float(m.group(2))))
    return changed, failed, unpacked, tasks


def run_playbook(argv: list[str], log_path: Path, label: str, timeout_s: int) -> PlaybookRun:
    """Run ``argv`` (an ansible-playbook command line) from the repository root, its output
    (stdout and stderr, no colours, every profile_tasks line) written to ``log_path``.

    Times the run (wall seconds, and the machine's busy and total CPU seconds meanwhile) and
    reads the log with :func:`parse_playbook_log`. A run still going after ``timeout_s``
    seconds is killed and gets rc -1. Never raises for a failed playbook (its rc says so);
    raises OSError when ``log_path`` cannot be written or the command cannot be started.
    """
    env = dict(
        os.environ,
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        PROFILE_TASKS_TASK_OUTPUT_LIMIT="all",
    )
    log(f"{label}: {' '.join(argv)}")
    busy0, total0 = cpu_times()
    start = time.monotonic()
    with log_path.open("w") as fh:
        try:
            proc = subprocess.run(
                argv,
                cwd=ROOT,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout_s,
                check=False,
            )
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = -1
    wall = time.monotonic() - start
    busy1, total1 = cpu_times()
    changed, failed, unpacked, tasks = parse_playbook_log(log_path.read_text())
    log(f"{label}: {wall:.1f}s, rc={rc}, changed={changed}, failed={failed}")
    return PlaybookRun(
        label,
        wall,
        rc,
        changed,
        failed,
        unpacked,
        tasks,
        str(log_path),
        cpu_busy_s=busy1 - busy0,
        cpu_capacity_s=total1 - total0,
    )
