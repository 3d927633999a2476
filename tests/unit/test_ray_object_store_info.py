"""The ray_object_store_info module (roles/ray/library/ray_object_store_info.py).

Proves, on a fake /proc and on this machine's own processes (nothing of Ray runs): with a
unit, the raylet is found among its main process's descendants only; without one, a raylet
whose /dev/shm is not this host's (a container's) is skipped; the raylet's
--plasma_directory says whether the store fell back to disk; the bytes its plasma file holds
in /dev/shm are measured through its open descriptor, each file once, and added to the
available space; the verdict names both sizes in MiB and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from unit_support import run_module

MIB = 1024 * 1024


def fake_proc(root: Path, procs: dict[int, tuple[int, str, list[str]]]) -> str:
    """A /proc with pid -> (ppid, comm, argv)."""
    for pid, (ppid, comm, argv) in procs.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(f"{pid} ({comm}) S {ppid} 1 1 0 -1\n")
        (d / "comm").write_text(comm + "\n")
        (d / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    (root / "self").mkdir()
    return str(root)


RAYLET_ARGV = [
    "/opt/rayforge/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet",
    "--object_store_memory=536870912",
    "--plasma_directory=/dev/shm",
    "--fallback_directory=/var/lib/ray/tmp/session_x",
]


def test_raylet_is_found_under_the_unit_only(object_store_info, tmp_path):
    proc = fake_proc(
        tmp_path,
        {
            100: (1, "ray", ["ray", "start", "--block"]),
            101: (100, "gcs_server", ["gcs_server"]),
            102: (100, "raylet", RAYLET_ARGV),
            # Another container's raylet, seen from the machine: not under the unit.
            200: (1, "containerd-shim", ["shim"]),
            201: (200, "raylet", RAYLET_ARGV),
        },
    )
    assert object_store_info.find_raylet(100, proc) == 102
    assert object_store_info.find_raylet(0, proc) is None  # no such unit: MainPID 0
    assert object_store_info.find_raylet(101, proc) is None
    flags = object_store_info.raylet_flags(102, proc)
    assert flags["plasma_directory"] == "/dev/shm"
    assert flags["object_store_memory"] == "536870912"


def test_comm_with_spaces_and_parentheses_is_read(object_store_info, tmp_path):
    proc = fake_proc(tmp_path, {5: (1, "a) (b", ["x"]), 6: (5, "raylet", RAYLET_ARGV)})
    assert object_store_info.find_raylet(5, proc) == 6


def test_held_bytes_are_measured_through_the_descriptor(object_store_info, tmp_path):
    """A child holds an unlinked 3 MiB file open (as the raylet holds its plasma file): it
    counts once, whatever its descriptors; the measure runs as the process's user."""
    shm = tmp_path / "shm"
    shm.mkdir()
    code = (
        "import os, sys, time\n"
        f"p = {str(shm / 'plasmaXXXX')!r}\n"
        "fd = os.open(p, os.O_RDWR | os.O_CREAT)\n"
        f"os.write(fd, b'x' * {3 * MIB})\n"
        "os.dup(fd); os.unlink(p)\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        ours, held = object_store_info.measure(child.pid, str(shm))
        assert ours is True
        assert 3 * MIB <= held < 4 * MIB
        (tmp_path / "elsewhere").mkdir()
        assert object_store_info.measure(child.pid, str(tmp_path / "elsewhere")) == (True, 0)
    finally:
        child.kill()
        child.wait()


def shm(size_mib: int, free_mib: int) -> dict:
    return {"path": "/dev/shm", "size_bytes": size_mib * MIB, "available_bytes": free_mib * MIB}


def raylet(directory: str = "/dev/shm", held_mib: int = 0) -> dict:
    return {
        "pid": 7,
        "plasma_directory": directory,
        "object_store_bytes": 512 * MIB,
        "shm_bytes": held_mib * MIB,
    }


def test_running_store_is_not_counted_against_itself(object_store_info):
    # 1024 MiB shm; the running store holds 400 MiB of it, 600 MiB free: 1000 MiB usable.
    got = object_store_info.verdict(shm(1024, 600), raylet(held_mib=400), 900 * MIB)
    assert (got["usable_bytes"], got["fits"], got["fell_back"], got["problem"]) == (
        1000 * MIB,
        True,
        False,
        "",
    )
    assert got["summary"] == "in /dev/shm, 400/512 MiB used there, 600 MiB free"


def test_too_little_space_names_both_numbers_and_the_fix(object_store_info):
    got = object_store_info.verdict(shm(1024, 100), {}, 512 * MIB)
    assert got["fits"] is False
    assert got["problem"] == (
        "/dev/shm: the object store needs 512 MiB, Ray can use 100 MiB there (100 MiB free "
        "of 1024 MiB). Free /dev/shm (delete what other programs left there), grow it "
        "(docker: --shm-size) or set ray_object_store_memory (bytes) to what fits."
    )
    assert got["summary"] == "not running, 100 MiB usable in /dev/shm"


def test_space_held_by_the_running_store_is_named(object_store_info):
    got = object_store_info.verdict(shm(1024, 100), raylet(held_mib=400), 900 * MIB)
    assert got["problem"].startswith(
        "/dev/shm: the object store needs 900 MiB, Ray can use 500 MiB there (100 MiB free of "
        "1024 MiB, plus 400 MiB its running object store holds). Free /dev/shm"
    )


def test_store_on_disk_is_a_problem_whatever_the_space_now(object_store_info):
    got = object_store_info.verdict(shm(1024, 1000), raylet("/var/lib/ray/tmp"), None)
    assert got["fell_back"] is True
    assert got["fits"] is None
    assert got["problem"].startswith(
        "Ray's object store fell back to disk (/var/lib/ray/tmp instead of /dev/shm): "
        "/dev/shm had less than its 512 MiB available when Ray started (now 1000 MiB usable)."
    )
    assert "ray_object_store_memory (bytes) to what fits, then restart Ray" in got["problem"]
    assert got["summary"] == "ON DISK in /var/lib/ray/tmp, not /dev/shm"


def test_module_without_the_unit_reads_shm_only(object_store_info, capsys):
    unit = f"rayforge-no-such-unit-{os.getpid()}"
    args = {"unit": unit, "object_store_bytes": 1, "_ansible_check_mode": True}
    result = run_module(object_store_info, args, capsys)
    assert result["rc"] == 0, result
    assert (result["changed"], result["raylet"], result["fell_back"]) == (False, {}, False)
    st = os.statvfs("/dev/shm")
    assert result["shm"]["size_bytes"] == st.f_blocks * st.f_frsize
    assert abs(result["usable_bytes"] - st.f_bavail * st.f_bsize) < 64 * MIB
    assert (result["fits"], result["problem"]) == (True, "")


def test_raylets_of_every_container_are_candidates(object_store_info, tmp_path):
    proc = fake_proc(
        tmp_path,
        {9: (1, "raylet", RAYLET_ARGV), 3: (1, "raylet", RAYLET_ARGV), 4: (1, "bash", ["bash"])},
    )
    assert object_store_info.all_raylets(proc) == [3, 9]


def test_module_without_a_unit_skips_a_raylet_of_another_shm(
    object_store_info, capsys, monkeypatch
):
    """Without a unit the module looks at every raylet; here, this process stands in for one
    whose /dev/shm is not this host's (a container's, seen from the machine): skipped."""
    monkeypatch.setattr(object_store_info, "all_raylets", lambda: [os.getpid()])
    monkeypatch.setattr(object_store_info, "measure", lambda pid, path: (False, 5 * MIB))
    result = run_module(object_store_info, {"object_store_bytes": 1}, capsys)
    assert result["rc"] == 0, result
    assert (result["raylet"], result["fell_back"], result["fits"]) == ({}, False, True)


def test_without_root_another_users_raylet_is_skipped_not_fatal(
    object_store_info, capsys, monkeypatch
):
    """Run as a user other than root (the preflight then refuses the run, and must get that
    far), a raylet of another user cannot be measured: it is named as unreadable, not a
    failure; the module's own user's raylets are still measured."""
    me = os.geteuid()
    monkeypatch.setattr(object_store_info.os, "geteuid", lambda: me + 1)
    with pytest.raises(PermissionError, match=f"runs as uid {me + 1}"):
        object_store_info.measure(os.getpid(), "/dev/shm")
    monkeypatch.setattr(object_store_info, "all_raylets", lambda: [os.getpid()])
    result = run_module(object_store_info, {"object_store_bytes": 1}, capsys)
    assert result["rc"] == 0, result
    assert (result["raylet"], result["unreadable"], result["fits"]) == ({}, [os.getpid()], True)
