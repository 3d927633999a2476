"""The harness of the bad-inventory tests (tests/preflight): what a case can ask of this
machine, the inventory it edits, running ``ansible-playbook site.yml`` with it, and reading
the run's output. The cases themselves are in test_bad_inventories.py; the fixture that runs
them is in conftest.py.

Every inventory's hosts are this machine, reached with ``ansible_connection: local`` (head
127.0.0.1, worker1 127.0.0.2, worker2 127.0.0.3: several inventory hosts on one machine are
fine here, the preflight only reads). A run is the real ``ansible-playbook site.yml -i
<inventory>`` from the repository root: without tags for a bad case, whose run a guard
(callback_plugins/preflight_guard.py) ends should its preflight pass before the next play
could change this machine; with ``--tags preflight`` for a good case. Each run's inventory,
stdout and stderr stay in its pytest tmp directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GUARD_DIR = Path(__file__).resolve().parent / "callback_plugins"
# The banner of site.yml's first play after the preflight: a bad run must never show it.
NODES_BANNER = "Nodes - Ray and the apps are installed"
# Plays whose name starts with this are the preflight.
PREFLIGHT_PLAY = "Preflight"
# Runs at a time (RAYFORGE_PREFLIGHT_JOBS, default 3).
JOBS = int(os.environ.get("RAYFORGE_PREFLIGHT_JOBS", "3"))
# Seconds one ansible-playbook run may take.
RUN_TIMEOUT = 600
MIB = 1024 * 1024
# The interpreter the local "hosts" use: Debian's, as on a real node.
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
# The CPython minors the role supports, read from the role (never restated here).
SUPPORTED_MINORS = tuple(
    yaml.safe_load((REPO / "roles/ray/vars/main.yml").read_text())["ray_supported_python_minors"]
)
# TEST-NET-2 (RFC 5737): documentation only, never an address of this machine.
FOREIGN_IP = "198.51.100.7"


# --- What a case can ask of this machine ----------------------------------------------------


def python_version(python: str) -> tuple[int, int, str] | None:
    """(major, minor, full version) of an interpreter that runs, else None."""
    try:
        out = subprocess.run(
            [
                python,
                "-c",
                "import platform, sys; print(*sys.version_info[:2], platform.python_version())",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out[0]), int(out[1]), out[2]


def find_python(minors: tuple[int, ...]) -> str | None:
    """A real CPython 3.<minor> binary on this machine (pyenv's or the system's), else None."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for minor in minors:
        candidates = sorted(pyenv.glob(f"3.{minor}.*/bin/python3.{minor}"), reverse=True)
        candidates += [Path(f"/usr/bin/python3.{minor}"), Path(f"/usr/local/bin/python3.{minor}")]
        for candidate in candidates:
            version = python_version(str(candidate)) if candidate.exists() else None
            if version and version[:2] == (3, minor):
                return str(candidate)
    return None


def unshare_works(*flags: str) -> bool:
    try:
        return (
            subprocess.run(["unshare", *flags, "true"], capture_output=True, timeout=30).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def is_local_address(ip: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((ip, 0))
        except OSError:
            return False
    return True


def shm_bytes() -> int:
    stat = os.statvfs("/dev/shm")
    return stat.f_blocks * stat.f_frsize


def free_ports(count: int) -> list[int]:
    """Distinct ports nothing listens on now (all held until every one is chosen)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@contextlib.contextmanager
def unresponsive_listener(ip: str, port: int) -> Iterator[None]:
    """A listener whose accept queue is full: new connections time out (SYNs are dropped)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ip, port))
    server.listen(0)
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((ip, port))
            fillers.append(filler)
        time.sleep(0.3)
        with contextlib.suppress(TimeoutError, OSError), socket.create_connection((ip, port), 1):
            raise RuntimeError(f"{ip}:{port} still accepts connections: cannot simulate a drop")
        yield
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@contextlib.contextmanager
def answering_listener(ip: str, port: int) -> Iterator[None]:
    """A listener that accepts and closes every connection, like a running head's GCS port."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ip, port))
    server.listen(64)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = server.accept()
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        server.close()


# --- Inventories ----------------------------------------------------------------------------


@dataclass
class Context:
    """What a case's edit gets: a directory of its own, its GCS port, and room for more."""

    tmp: Path
    gcs_port: int
    stack: contextlib.ExitStack
    values: dict[str, object] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    # Environment of ansible-playbook, over this process's.
    env: dict[str, str] = field(default_factory=dict)


def inventory(gcs_port: int, workers: int) -> dict:
    """Head 127.0.0.1 and workers 127.0.0.2.., all this machine, with valid values."""
    return {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": SYSTEM_PYTHON,
                "ray_gcs_port": gcs_port,
                # Small enough for any /dev/shm a machine running these tests has.
                "ray_object_store_memory": 64 * MIB,
            },
            "children": {
                "ray_head": {"hosts": {"head": {"ansible_host": "127.0.0.1"}}},
                "ray_workers": {
                    "hosts": {
                        f"worker{n}": {"ansible_host": f"127.0.0.{n + 1}"}
                        for n in range(1, workers + 1)
                    }
                },
            },
        }
    }


def all_vars(inv: dict) -> dict:
    return inv["all"]["vars"]


def group(inv: dict, name: str) -> dict:
    return inv["all"]["children"][name]["hosts"]


def host(inv: dict, name: str) -> dict:
    for members in inv["all"]["children"].values():
        if name in members["hosts"]:
            return members["hosts"][name]
    raise KeyError(name)


def interpreter_wrapper(ctx: Context, name: str, script: str) -> str:
    """An executable that stands in for python3 as a host's ansible_python_interpreter."""
    path = ctx.tmp / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


# --- Cases and runs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One inventory: the valid one with ``workers`` workers, changed by ``edit``."""

    id: str
    edit: Callable[[dict, Context], None]
    # Substring of the output (whitespace-insensitive); {gcs_port} and Context.values fill it.
    expect: str
    workers: int = 1
    # Good cases: a task banner that must not appear (a path the run must not take).
    absent: str | None = None
    # A good case passes the preflight (run with --tags preflight, without the guard); a bad
    # one fails in it.
    good: bool = False
    # Its edit takes long (builds a venv): started first.
    slow: bool = False


@dataclass(frozen=True)
class Run:
    """One finished ansible-playbook run: exit status, output, seconds it took, and the
    values its case noted (Context.values) for the expected message."""

    rc: int
    stdout: str
    stderr: str
    seconds: float
    values: dict[str, object]

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr


def run_case(case: Case, tmp: Path, gcs_port: int) -> Run:
    """Builds the case's inventory in TMP (a directory of its own) with the head's GCS on
    GCS_PORT and runs site.yml with it (a good case: --tags preflight). Raises
    pytest.skip.Exception when the case's edit skips, subprocess.TimeoutExpired after
    RUN_TIMEOUT seconds."""
    with contextlib.ExitStack() as stack:
        ctx = Context(tmp=tmp, gcs_port=gcs_port, stack=stack, values={"gcs_port": gcs_port})
        inv = inventory(gcs_port, case.workers)
        case.edit(inv, ctx)
        inventory_path = tmp / "inventory.yml"
        inventory_path.write_text(yaml.safe_dump(inv, sort_keys=False))
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            **ctx.env,
        )
        if not case.good:
            env["ANSIBLE_CALLBACK_PLUGINS"] = str(GUARD_DIR)
        command = ["ansible-playbook", "site.yml", "-i", str(inventory_path), *ctx.extra_args]
        if case.good:
            command += ["--tags", "preflight"]
        start = time.monotonic()
        proc = subprocess.run(
            command,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        seconds = time.monotonic() - start
    (tmp / "stdout.txt").write_text(proc.stdout)
    (tmp / "stderr.txt").write_text(proc.stderr)
    return Run(proc.returncode, proc.stdout, proc.stderr, seconds, ctx.values)


# --- Reading a run's output ------------------------------------------------------------------


def normalise(text: str) -> str:
    return " ".join(text.split())


def _task_names(tasks: list) -> set[str]:
    names = set()
    for task in tasks or []:
        if "name" in task:
            names.add(task["name"])
        for key in ("block", "rescue", "always"):
            names |= _task_names(task.get(key, []))
    return names


# The ray role's own setup (roles/ray/tasks/main.yml and what it imports: facts of every
# cluster host, the cluster token), as "ray : <name>" banners. Every role depends on the ray
# role, so each play runs it again: these banners repeat in a run, and are no checks.
RAY_SETUP_TASKS = frozenset(
    f"ray : {name}"
    for path in ("main.yml", "node_addresses.yml", "auth_token.yml")
    for name in _task_names(yaml.safe_load((REPO / "roles/ray/tasks" / path).read_text()))
)
# The ray role's GPU check, included by the head's and by the workers' preflight, each for its
# own hosts: its banners show once per node kind, never twice for a host.
PER_NODE_KIND_TASKS = frozenset(
    [
        *(
            f"ray : {name}"
            for name in _task_names(
                yaml.safe_load((REPO / "roles/ray/tasks/unit_gpus.yml").read_text())
            )
        ),
        "ray : Validating arguments against arg spec 'unit_gpus' - "
        "Find the GPU device nodes a Ray node's unit gets",
    ]
)


def task_banners(stdout: str) -> list[str]:
    """The "role : task" name of every TASK banner, in order (a task run twice: twice)."""
    return re.findall(r"^TASK \[(.*)\] \**$", stdout, flags=re.MULTILINE)


def play_banners(stdout: str) -> list[str]:
    return re.findall(r"^PLAY \[(.*)\] \**$", stdout, flags=re.MULTILINE)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP: host -> {ok, changed, unreachable, failed, ...}."""
    _, _, tail = stdout.rpartition("PLAY RECAP")
    hosts = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", tail, flags=re.MULTILINE):
        hosts[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


def describe(run: Run) -> str:
    return (
        f"exit {run.rc} after {run.seconds:.0f} s\n"
        f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    )
