#!/usr/bin/python
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
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
  - Reads C(/dev/shm)'s size and available space, and, when this host's raylet runs, the
    directory Ray gave it (its C(--plasma_directory)) and the bytes its plasma file already
    holds in C(/dev/shm). That file is unlinked and only reachable through the raylet's open
    descriptor, so it is measured by a forked child that takes the raylet's user (root in a
    container lacks CAP_SYS_PTRACE to read another user's descriptors).
  - RV(usable_bytes) is what a (re)start of Ray on this host could use; a running node's own
    store is not counted against itself.
  - Read-only; supports check mode (it runs the same and changes nothing).
options:
  unit:
    type: str
    description: >-
      The systemd unit running Ray on this host (C(ray start --block)), such as C(ray-head)
      or C(ray-worker): its raylet is the one among the unit's processes. Omitted, any
      raylet whose O(shm_path) is this host's (so not one of a container on the host).
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
unreadable:
  description: >-
    Pids of raylets another user runs, which the module cannot read without root and so
    does not count (empty as root).
  type: list
  elements: int
  returned: always
raylet:
  description: This host's raylet (of O(unit) when given); empty when none runs.
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

from ansible.module_utils.basic import AnsibleModule

MIB = 1024 * 1024


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
        if is_raylet(pid, proc):
            return pid
        todo.extend(tree.get(pid, []))
    return None


def all_raylets(proc: str = "/proc") -> list[int]:
    """Every process named raylet this host's /proc shows (containers' included), by pid."""
    return sorted(int(e) for e in os.listdir(proc) if e.isdigit() and is_raylet(int(e), proc))


def is_raylet(pid: int, proc: str = "/proc") -> bool:
    try:
        with open(f"{proc}/{pid}/comm", encoding="utf-8") as fh:
            return fh.read().strip() == "raylet"
    except OSError:
        return False


def raylet_flags(pid: int, proc: str = "/proc") -> dict[str, str]:
    """The raylet's ``--name=value`` arguments, by name."""
    with open(f"{proc}/{pid}/cmdline", "rb") as fh:
        args = fh.read().decode(errors="replace").split("\0")
    return dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)


def _read_as_owner(pid: int, shm_path: str) -> dict:
    """Whether process PID sees this host's SHM_PATH as its own (a container's raylet, seen
    from the machine, has another; a systemd unit's private mount namespace has the same),
    and each of its descriptors that leads to a file under SHM_PATH as {target: [inode,
    allocated bytes]}. Needs the rights of PID's user (or root with CAP_SYS_PTRACE)."""
    root = shm_path.rstrip("/") + "/"
    same = os.stat(f"/proc/{pid}/root{shm_path}").st_dev == os.stat(shm_path).st_dev
    files = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            target = os.readlink(path)
            if target.startswith(root):
                st = os.stat(path)
                files[target] = [st.st_ino, st.st_blocks * 512]
        except OSError:  # a descriptor closed meanwhile
            pass
    return {"same_shm": same, "files": files}


def measure(pid: int, shm_path: str, proc: str = "/proc") -> tuple[bool, int]:
    """(whether process PID uses this host's SHM_PATH, the bytes the files it holds open
    under SHM_PATH occupy there, each file once), read by a forked child that takes PID's
    user and group: root in a container lacks CAP_SYS_PTRACE, which reading another user's
    descriptors takes. Raises PermissionError without root for another user's process (it
    cannot take that user), OSError when it cannot be read."""
    st = os.stat(f"{proc}/{pid}")
    if os.geteuid() != 0 and st.st_uid != os.geteuid():
        raise PermissionError(
            f"process {pid} is uid {st.st_uid}'s, this module runs as uid {os.geteuid()}"
        )
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's own coverage is not collected
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(st.st_gid, st.st_gid, st.st_gid)
            os.setresuid(st.st_uid, st.st_uid, st.st_uid)
            data = _read_as_owner(pid, shm_path)
        except BaseException as err:  # every failure goes to the parent
            data, code = {"error": f"{type(err).__name__}: {err}"}, 1
        with os.fdopen(write_end, "w") as fh:
            fh.write(json.dumps(data))
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as fh:
        answer = fh.read()
    os.waitpid(child, 0)
    found = json.loads(answer or '{"error": "no answer"}')
    if "error" in found:
        raise OSError(f"reading /proc/{pid} as uid {st.st_uid}: {found['error']}")
    return found["same_shm"], sum(dict(found["files"].values()).values())


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
            f"set ray_object_store_memory (bytes) to what fits, then restart Ray on the node."
        )
    elif fits is False:
        problem = (
            f"{shm['path']}: the object store needs {needed // MIB} MiB, Ray can use "
            f"{usable // MIB} MiB there ({shm['available_bytes'] // MIB} MiB free of "
            f"{shm['size_bytes'] // MIB} MiB"
            + (f", plus {held // MIB} MiB its running object store holds" if held >= MIB else "")
            + f"). Free {shm['path']} (delete what other programs left there), grow it "
            f"(docker: --shm-size) or set ray_object_store_memory (bytes) to what fits."
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


def candidates(module: AnsibleModule) -> list[int]:
    """The raylets that may be this host's: the one of module.params["unit"], or all."""
    if not module.params["unit"]:
        return all_raylets()
    # No systemd (a container without it): no unit, so no running Ray of ours.
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return []
    rc, out, _ = module.run_command(
        [systemctl, "show", "--property=MainPID", "--value", module.params["unit"]]
    )
    pid = find_raylet(int(out.strip()) if rc == 0 and out.strip().isdigit() else 0)
    return [] if pid is None else [pid]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "unit": {"type": "str"},
            "shm_path": {"type": "path", "default": "/dev/shm"},
            "object_store_bytes": {"type": "int"},
        },
        supports_check_mode=True,
    )
    p = module.params
    size, available = statvfs_bytes(p["shm_path"])
    shm = {"path": p["shm_path"], "size_bytes": size, "available_bytes": available}

    raylet: dict = {}
    unreadable: list[int] = []
    try:
        for pid in candidates(module):
            try:
                ours, held = measure(pid, p["shm_path"])
            except PermissionError:
                # Without root only the module user's own raylets can be read. Another user's
                # is not counted (whether it is this host's is unknown): a run without root
                # is refused by the preflight, which must still get to say so.
                unreadable.append(pid)
                continue
            if not ours:
                continue  # a container's raylet, seen from the machine
            flags = raylet_flags(pid)
            raylet = {
                "pid": pid,
                "plasma_directory": flags.get("plasma_directory", ""),
                "object_store_bytes": int(flags.get("object_store_memory", "0") or 0),
                "shm_bytes": held,
            }
            break
    except (OSError, ValueError) as err:
        module.fail_json(msg=f"cannot read this host's raylet: {err}")
    needed = p["object_store_bytes"] or raylet.get("object_store_bytes") or None
    module.exit_json(
        changed=False, shm=shm, raylet=raylet, unreadable=unreadable, **verdict(shm, raylet, needed)
    )


if __name__ == "__main__":
    main()
