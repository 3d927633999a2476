"""The `machine` subcommand, and the description of the controller every report carries:
CPUs, RAM, OS, kernel, Docker and wrk versions, and the repository's git commit."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from pathlib import Path

from .files import ROOT


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict:
    """This machine (the controller): ``nproc``, ``cpu`` (model name), ``ram_gib`` (GiB, one
    decimal; None when unknown), ``kernel``, ``os`` (PRETTY_NAME), ``docker`` (the server's
    version) and ``wrk`` (its version); "?" or "-" for what cannot be read or is missing."""
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.M)
    docker = ""
    if shutil.which("docker"):
        proc = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        docker = proc.stdout.strip()
    wrk_version = ""
    if shutil.which("wrk"):
        proc = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        wrk_version = (proc.stdout + proc.stderr).split(" [")[0].replace("wrk ", "").strip()
    os_release = re.search(r'^PRETTY_NAME="?([^"\n]+)', _read("/etc/os-release"), re.M)
    return {
        "nproc": os.cpu_count(),
        "cpu": model.group(1).strip() if model else "?",
        "ram_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": os.uname().release,
        "os": os_release.group(1) if os_release else "?",
        "docker": docker or "-",
        "wrk": wrk_version or "-",
    }


def machine_line(m: dict) -> str:
    """One line describing a :func:`machine` dict, as the reports print it."""
    return (
        f"{m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, {m['os']}, kernel "
        f"{m['kernel']}, Docker {m['docker']}, wrk {m['wrk']}"
    )


def git_describe() -> str:
    """``git describe --always --dirty`` of the repository; "?" when git cannot tell."""
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "?"


def run_machine(_: argparse.Namespace) -> int:
    """`bench.py machine`: print :func:`machine_line` of this machine; exit status 0."""
    print(machine_line(machine()))
    return 0
