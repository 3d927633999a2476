"""Bytes downloaded, built and shipped: the controller's wheelhouse cache before and after a
rollout, what the head installed, and the size of the archive the ray_node role ships."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .files import ROOT


def cache_entries(cache: Path) -> dict[str, int]:
    """Bytes of each entry of the wheelhouse cache directory ``cache``, by entry name.

    A directory counts the files under it; entries still being written (``*.partial``,
    ``*.partial.*``) are left out. Returns {} when ``cache`` is not a directory.
    """
    out: dict[str, int] = {}
    if not cache.is_dir():
        return out
    for entry in cache.iterdir():
        if entry.name.endswith(".partial") or ".partial." in entry.name:
            continue
        if entry.is_dir():
            out[entry.name] = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        elif entry.is_file():
            out[entry.name] = entry.stat().st_size
    return out


def installed_wheelhouse(inventory: str, extra: list[str]) -> list[str]:
    """Names of the wheelhouse directories installed on the ray_head host (``app-*``,
    ``deps-*``), sorted, found with the ``ansible`` command (``ansible.builtin.find``) and the
    extra arguments ``extra``. Returns [] when none is found or the command fails (2 min
    bound)."""
    proc = subprocess.run(
        [
            "ansible",
            "-i",
            inventory,
            "ray_head",
            "-o",
            "-m",
            "ansible.builtin.find",
            "-a",
            "paths={{ ray_install_dir | default('/opt/rayforge') }}/wheelhouse file_type=directory",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return sorted(set(re.findall(r'"path":\s*"[^"]*/((?:app|deps)-[^"/]+)"', proc.stdout)))


def archive_bytes(cache: Path, members: list[str]) -> int:
    """Bytes of the archive the ray_node role ships for ``members`` (directories of
    ``cache``), packed as the role packs it (tar, sorted names, mtime 0, owner 0).

    Returns 0 when ``members`` is empty or one of them is not a directory of ``cache``.
    """
    if not members or not all((cache / m).is_dir() for m in members):
        return 0
    tar = subprocess.Popen(
        [
            "tar",
            "--create",
            "--file=-",
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            f"--directory={cache}",
            *members,
        ],
        stdout=subprocess.PIPE,
    )
    assert tar.stdout is not None
    size = 0
    while chunk := tar.stdout.read(1 << 20):
        size += len(chunk)
    tar.wait(timeout=120)
    return size
