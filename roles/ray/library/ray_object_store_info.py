#!/usr/bin/python
# Copyright: rayforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read where this node's Ray object store lives and how much of /dev/shm Ray can use."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ray_object_store_info
short_description: Read how much of /dev/shm Ray's object store can use, and if it fell back to disk
description:
  - Ray puts a node's object store (plasma) in C(/dev/shm) when the space available there
    (C(statvfs) C(f_bavail), not the file system's size) holds C(--object-store-memory);
    otherwise it falls back to its temp dir on disk, logging "The object store is using ...
    instead of /dev/shm", or refuses to start above 10 GB (Ray 2.60,
    C(ray._private.services.determine_plasma_store_config)).
  - Reads C(/dev/shm)'s size and available space, and, when the raylet of O(unit) runs, the
    directory Ray gave it (its C(--plasma_directory)) and the bytes its plasma file already
    holds in C(/dev/shm). That file is unlinked and only reachable through the raylet's open
    descriptor, so it is measured by a child process running as the raylet's user (root in a
    container lacks CAP_SYS_PTRACE to read another user's descriptors).
  - RV(usable_bytes) is what a (re)start of Ray on this host could use; a running node's own
    store is not counted against itself.
  - Read-only; supports check mode (it runs the same and changes nothing).
options:
  unit:
    type: str
    required: true
    description: >-
      The systemd unit running Ray on this host (C(ray start --block)), such as C(ray-head)
      or C(ray-worker).
  shm_path:
    type: path
    default: /dev/shm
    description: The shared-memory file system Ray prefers for the object store.
  object_store_bytes:
    type: int
    description: >-
      Bytes the object store needs (the node's C(--object-store-memory)). With it, RV(fits)
      and RV(problem) say whether RV(usable_bytes) holds it. Omitted: the running raylet's
      C(--object_store_memory) when it runs.
"""

RETURN = r"""
shm:
  description: The shared-memory file system.
  type: dict
  returned: always
  contains:
    path: {description: O(shm_path)., type: str}
    size_bytes: {description: Its size in bytes (0 when it cannot be read)., type: int}
    available_bytes:
      description: >-
        Bytes available to an unprivileged process (C(f_bavail)), Ray's own measure.
      type: int
raylet:
  description: The raylet of O(unit); empty when none runs.
  type: dict
  returned: always
  contains:
    pid: {description: Its process id., type: int}
    plasma_directory:
      description: >-
        Where Ray put the object store (C(/dev/shm), or the temp dir on disk).
      type: str
    object_store_bytes:
      description: >-
        Its C(--object_store_memory) in bytes (0 when not on its command line).
      type: int
    shm_bytes:
      description: >-
        Bytes its object store holds in O(shm_path) now (allocated blocks of its plasma files).
      type: int
usable_bytes:
  description: RV(shm.available_bytes) plus RV(raylet.shm_bytes), in bytes.
  type: int
  returned: always
fell_back:
  description: Whether the running raylet's object store is outside O(shm_path) (on disk).
  type: bool
  returned: always
fits:
  description: Whether RV(usable_bytes) holds the object store; null when its size is unknown.
  type: bool
  returned: always
problem:
  description: >-
    What is wrong (a fallen-back store, or too little space), with both sizes in MiB and the
    fix; empty when nothing is.
  type: str
  returned: always
summary:
  description: One line for a report, such as C(in /dev/shm, 0/512 MiB used there, 1023 MiB free).
  type: str
  returned: always
"""

import json
import os
import subprocess
import sys

from ansible.module_utils.basic import AnsibleModule

MIB = 1024 * 1024
# Run as the raylet's user: each of its descriptors that leads to a file under the path in
# argv[2], as {target: [inode, allocated bytes]}.
_MEASURE = r"""
import json, os, sys
pid, root = sys.argv[1], sys.argv[2].rstrip("/") + "/"
out = {}
for fd in os.listdir(f"/proc/{pid}/fd"):
    path = f"/proc/{pid}/fd/{fd}"
    try:
        target = os.readlink(path)
        if target.startswith(root):
            st = os.stat(path)
            out[target] = [st.st_ino, st.st_blocks * 512]
    except OSError:
        pass
print(json.dumps(out))
"""


def statvfs_bytes(path: str) -> tuple[int, int]:
    """(size, available) of the file system at PATH in bytes, as Ray measures it
    (``f_bsize * f_bavail``); (0, 0) when it cannot be read."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0, 0
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_bsize


def children(proc: str = "/proc") -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/<pid>/stat."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat", encoding="utf-8") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid follows it.
        ppid = int(stat.rpartition(")")[2].split()[1])
        out.setdefault(ppid, []).append(int(entry))
    return out


def find_raylet(main_pid: int, proc: str = "/proc") -> int | None:
    """The pid of a process named raylet among MAIN_PID's descendants, else None."""
    if main_pid <= 0:
        return None
    tree = children(proc)
    todo = list(tree.get(main_pid, []))
    while todo:
        pid = todo.pop(0)
        try:
            with open(f"{proc}/{pid}/comm", encoding="utf-8") as fh:
                if fh.read().strip() == "raylet":
                    return pid
        except OSError:
            pass
        todo.extend(tree.get(pid, []))
    return None


def raylet_flags(pid: int, proc: str = "/proc") -> dict[str, str]:
    """The raylet's ``--name=value`` arguments, by name."""
    with open(f"{proc}/{pid}/cmdline", "rb") as fh:
        args = fh.read().decode(errors="replace").split("\0")
    return dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)


def shm_held(pid: int, shm_path: str, proc: str = "/proc") -> int:
    """Bytes the plasma files that process PID holds open under SHM_PATH occupy there (each
    file once), measured by a child process running as PID's user."""
    st = os.stat(f"{proc}/{pid}")
    answer = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(pid), shm_path],
        user=st.st_uid,
        group=st.st_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    files = json.loads(answer)
    return sum(dict(files.values()).values())


def verdict(shm: dict, raylet: dict, needed: int | None) -> dict:
    """usable_bytes, fell_back, fits, problem and summary from what was read."""
    held = raylet.get("shm_bytes", 0)
    usable = shm["available_bytes"] + held
    fell_back = bool(raylet) and raylet["plasma_directory"].rstrip("/") != shm["path"].rstrip("/")
    fits = None if not needed else usable >= needed
    problem = ""
    if fell_back:
        problem = (
            f"Ray's object store fell back to disk ({raylet['plasma_directory']} "
            f"instead of {shm['path']}): {shm['path']} had less than its "
            f"{raylet['object_store_bytes'] // MIB} MiB available when Ray started (now "
            f"{usable // MIB} MiB usable). Free {shm['path']}, grow it (docker: --shm-size) or "
            f"lower ray_object_store_memory, then restart Ray on the node."
        )
    elif fits is False:
        problem = (
            f"{shm['path']} has {usable // MIB} MiB usable by Ray ("
            f"{shm['available_bytes'] // MIB} MiB free of {shm['size_bytes'] // MIB} MiB"
            + (f", plus {held // MIB} MiB held by Ray's running object store" if held else "")
            + f"), the object store needs {needed // MIB} MiB. Free {shm['path']} (delete what "
            f"other programs left there), grow it (docker: --shm-size) or lower "
            f"ray_object_store_memory (bytes)."
        )
    if not raylet:
        summary = f"not running, {usable // MIB} MiB usable in {shm['path']}"
    elif fell_back:
        summary = f"ON DISK in {raylet['plasma_directory']}, not {shm['path']}"
    else:
        summary = (
            f"in {shm['path']}, {held // MIB}/{raylet['object_store_bytes'] // MIB} MiB used "
            f"there, {shm['available_bytes'] // MIB} MiB free"
        )
    return {
        "usable_bytes": usable,
        "fell_back": fell_back,
        "fits": fits,
        "problem": problem,
        "summary": summary,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str", "required": True},
            "shm_path": {"type": "path", "default": "/dev/shm"},
            "object_store_bytes": {"type": "int"},
        },
        supports_check_mode=True,
    )
    p = module.params
    size, available = statvfs_bytes(p["shm_path"])
    shm = {"path": p["shm_path"], "size_bytes": size, "available_bytes": available}

    # No systemd (a container without it): no unit, so no running Ray of ours.
    systemctl = module.get_bin_path("systemctl")
    main_pid = 0
    if systemctl:
        rc, out, _ = module.run_command(
            [systemctl, "show", "--property=MainPID", "--value", p["unit"]]
        )
        main_pid = int(out.strip()) if rc == 0 and out.strip().isdigit() else 0
    raylet: dict = {}
    pid = find_raylet(main_pid)
    if pid is not None:
        try:
            flags = raylet_flags(pid)
            raylet = {
                "pid": pid,
                "plasma_directory": flags.get("plasma_directory", ""),
                "object_store_bytes": int(flags.get("object_store_memory", "0") or 0),
                "shm_bytes": shm_held(pid, p["shm_path"]),
            }
        except (OSError, ValueError, subprocess.SubprocessError) as err:
            module.fail_json(msg=f"cannot read the raylet (pid {pid}) of {p['unit']}: {err}")
    needed = p["object_store_bytes"] or raylet.get("object_store_bytes") or None
    module.exit_json(changed=False, shm=shm, raylet=raylet, **verdict(shm, raylet, needed))


if __name__ == "__main__":
    main()
