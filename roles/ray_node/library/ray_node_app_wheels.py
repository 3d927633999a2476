#!/usr/bin/python
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""Build the app projects' wheels on the controller and name the build by what they hold."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ray_node_app_wheels
short_description: Build the app wheels once per change and fingerprint them by their contents
description:
  - Names an app build by what its wheels hold - every file path and SHA-256 their
    C(*.dist-info/RECORD) lists, with the wheels' file names - so any change a wheel carries
    (a module in any layout, package data, a model file shipped in the package, the version,
    the dependencies) gives a new RV(build), and a change no wheel carries (tests, docs, an
    inventory next to the project) gives the same one. ray_node installs a new build on every
    host and ray_serve rolls it out to the replicas; the same build is never rolled out twice.
  - Building takes seconds (C(pip wheel --no-deps), which may fetch the build backend), so the
    module first hashes every file of the projects (paths relative to each project, and
    contents: RV(sources)) and reuses the build it recorded for those sources in
    O(cache_dir). Only new sources are built; a build whose wheels hold what an earlier one
    held reuses that one's directory and reports no change.
  - Not hashed, as no build takes them from the project as they are - at any depth C(.git),
    C(__pycache__), C(*.pyc), C(*.egg-info), C(.pytest_cache), C(.mypy_cache),
    C(.ruff_cache), C(.hypothesis); at a project's top C(build), C(dist), C(.venv), C(venv),
    C(.tox), C(.nox). A symbolic link to a file counts with its target's contents; one to a
    directory is not followed.
  - Each build is made in a temporary sibling and renamed into place, and each record is
    written whole, so two runs sharing one cache at once, or an interrupted one, never leave
    a half-written build behind.
  - Why a module and not C(find), C(stat) and C(command) - those take one round trip per file,
    cannot prune a directory or read a wheel's RECORD; this is one task on the controller.
options:
  projects:
    type: list
    elements: path
    required: true
    description: >-
      Directories of Python projects (each with a C(pyproject.toml)), in the order of
      ray_node_app_projects.
  cache_dir:
    type: path
    required: true
    description: >-
      The wheelhouse cache; builds go to C(app-<build>/), records to C(sources-<sources>).
      Created when missing.
  python:
    type: path
    required: true
    description: The controller's Python whose pip builds the wheels.
"""

RETURN = r"""
build:
  description: >-
    The build's name, the first 16 hex digits of a SHA-256 over the wheels' names and RECORD
    entries (see the description).
  type: str
  returned: success
app_dir:
  description: The directory holding the build's wheels, C(<cache_dir>/app-<build>).
  type: str
  returned: success
wheels:
  description: The wheels' file names in RV(app_dir), sorted.
  type: list
  elements: str
  returned: success
sources:
  description: The first 16 hex digits of a SHA-256 over the projects' hashed files.
  type: str
  returned: success
built:
  description: Whether the wheels were built in this run (new sources).
  type: bool
  returned: success
requires:
  description: >-
    The wheels' dependencies (their C(Requires-Dist) entries), sorted, without duplicates:
    what the downloaded dependencies are keyed on, whatever file of a project declares them.
  type: list
  elements: str
  returned: success
changed:
  description: True when this run added a build to the cache (wheels no earlier build held).
  type: bool
  returned: always
"""

EXAMPLES = r"""
- name: App wheels are built (once per change) and named by their contents
  ray_node_app_wheels:
    projects: "{{ ray_node_app_projects }}"
    cache_dir: "{{ ray_node_wheelhouse_cache }}"
    python: "{{ ray_node_controller_python }}"
  delegate_to: localhost
  run_once: true
  register: app
"""

import csv
import hashlib
import io
import os
import shutil
import tempfile
import zipfile

from ansible.module_utils.basic import AnsibleModule

# Written into a project by tools, never taken by a build as it is: skipped at any depth.
SKIP_ANYWHERE = {
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
}
SKIP_SUFFIXES = (".egg-info", ".pyc")
# Written by builds and environments at a project's top: skipped there only (a package may
# have a subpackage called build).
SKIP_AT_TOP = {"build", "dist", ".venv", "venv", ".tox", ".nox"}
CHUNK_BYTES = 1 << 20
DIGITS = 16


def hashed(name: str, top: bool) -> bool:
    """Whether directory entry NAME (at a project's top when TOP) goes into RV(sources)."""
    if name in SKIP_ANYWHERE or name.endswith(SKIP_SUFFIXES):
        return False
    return not (top and name in SKIP_AT_TOP)


def project_files(project: str) -> list[str]:
    """The hashed files of PROJECT, as sorted POSIX paths relative to it."""
    found = []
    for root, dirs, files in os.walk(project):
        rel = os.path.relpath(root, project)
        top = rel == "."
        dirs[:] = [d for d in dirs if hashed(d, top)]
        for name in files:
            if hashed(name, top):
                found.append((name if top else os.path.join(rel, name)).replace(os.sep, "/"))
    return sorted(found)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sources_key(projects: list[str]) -> str:
    """RV(sources) of PROJECTS. Raises ValueError naming a project that is not a directory
    with a pyproject.toml; OSError for a file that cannot be read."""
    total = hashlib.sha256()
    for index, project in enumerate(projects):
        if not os.path.isfile(os.path.join(project, "pyproject.toml")):
            raise ValueError(f"{project}: not a directory with a pyproject.toml")
        total.update(f"project {index}\n".encode())
        for rel in project_files(project):
            path = os.path.join(project, rel)
            if os.path.exists(path):  # a dangling link holds nothing a build could read
                total.update(f"{rel}\0{file_sha256(path)}\n".encode())
    return total.hexdigest()[:DIGITS]


def wheels_in(directory: str) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".whl"))


def dist_info_file(wheel: zipfile.ZipFile, name: str) -> tuple[str, str]:
    """(member name, text) of the wheel's single *.dist-info/NAME. Raises ValueError."""
    found = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}") and n.count("/") == 1]
    if len(found) != 1:
        raise ValueError(f"{wheel.filename}: not a wheel (no single *.dist-info/{name})")
    return found[0], wheel.read(found[0]).decode()


def wheel_requires(path: str) -> list[str]:
    """The Requires-Dist entries of wheel PATH's METADATA."""
    with zipfile.ZipFile(path) as wheel:
        _, metadata = dist_info_file(wheel, "METADATA")
    headers = metadata.split("\n\n", 1)[0].splitlines()
    return [line.split(":", 1)[1].strip() for line in headers if line.startswith("Requires-Dist:")]


def wheel_contents(path: str) -> list[str]:
    """The RECORD entries of wheel PATH (path and hash, without sizes or RECORD's own line),
    sorted. Raises ValueError when the wheel has no RECORD."""
    with zipfile.ZipFile(path) as wheel:
        record, text = dist_info_file(wheel, "RECORD")
    rows = csv.reader(io.StringIO(text))
    return sorted(f"{row[0]},{row[1]}" for row in rows if row and row[0] != record)


def build_name(directory: str) -> str:
    """RV(build) of the wheels in DIRECTORY."""
    total = hashlib.sha256()
    for name in wheels_in(directory):
        total.update(f"wheel {name}\n".encode())
        for entry in wheel_contents(os.path.join(directory, name)):
            total.update(f"{entry}\n".encode())
    return total.hexdigest()[:DIGITS]


def write_whole(path: str, text: str) -> None:
    """Writes TEXT to PATH through a temporary sibling renamed over it."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{name}.partial.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def recorded_build(cache_dir: str, sources: str) -> str | None:
    """The build recorded for SOURCES, when its directory is still in the cache."""
    try:
        with open(os.path.join(cache_dir, f"sources-{sources}")) as f:
            build = f.read().strip()
    except FileNotFoundError:
        return None
    return build if build and os.path.isdir(os.path.join(cache_dir, f"app-{build}")) else None


def run(module: AnsibleModule) -> dict:
    projects, cache_dir = module.params["projects"], module.params["cache_dir"]
    sources = sources_key(projects)
    os.makedirs(cache_dir, exist_ok=True)
    build, built, changed = recorded_build(cache_dir, sources), False, False
    if build is None:
        tmp = tempfile.mkdtemp(prefix="app.partial.", dir=cache_dir)
        try:
            pip_wheel = [module.params["python"], "-m", "pip", "wheel", "--quiet", "--no-deps"]
            module.run_command([*pip_wheel, "--wheel-dir", tmp, *projects], check_rc=True)
            build, built = build_name(tmp), True
            target = os.path.join(cache_dir, f"app-{build}")
            if not os.path.isdir(target):
                try:
                    os.rename(tmp, target)
                    changed = True
                except OSError:  # another run renamed the same build into place first
                    if not os.path.isdir(target):
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        write_whole(os.path.join(cache_dir, f"sources-{sources}"), build + "\n")
    app_dir = os.path.join(cache_dir, f"app-{build}")
    wheels = wheels_in(app_dir)
    requires = {req for name in wheels for req in wheel_requires(os.path.join(app_dir, name))}
    return {
        "changed": changed,
        "build": build,
        "app_dir": app_dir,
        "wheels": wheels,
        "sources": sources,
        "built": built,
        "requires": sorted(requires),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "projects": {"type": "list", "elements": "path", "required": True},
            "cache_dir": {"type": "path", "required": True},
            "python": {"type": "path", "required": True},
        },
        # It writes the controller's cache only, never a host: the task runs it in check mode
        # too (check_mode: false), so that a --check run sees the build it would install.
        supports_check_mode=False,
    )
    try:
        result = run(module)
    except (OSError, ValueError) as err:
        module.fail_json(msg=f"app wheels cannot be built: {err}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
