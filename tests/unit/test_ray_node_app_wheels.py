"""The ray_node_app_wheels module (roles/ray_node/library/ray_node_app_wheels.py).

Proves: the sources key changes with any file a build could take (any layout, package data,
pyproject.toml) and not with what tools write into a project; a build is named by what its
wheels hold, not by when they were zipped; the module builds once per sources, reuses a
build whose wheels hold the same files (a docs change rolls nothing out), names a new one
when a packaged file changes, and fails naming the project or leaving no half-built
directory behind. The builds run a stand-in for ``python -m pip wheel`` (FAKE_PIP below) that
packs a project's ``pkg/`` into a real wheel zip with a RECORD, so no network is needed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import time
import zipfile
from pathlib import Path

import pytest
from unit_support import run_module

# Stands in for `python -m pip wheel --quiet --no-deps --wheel-dir DIR PROJECT...`: packs each
# project's pkg/ (and its version from pyproject.toml) into DIR/<name>-<version>-py3-none-any.whl
# with a RECORD, zipped with the current time; logs each call to $FAKE_PIP_LOG; a project
# holding a file named FAIL fails the build.
FAKE_PIP = """\
import base64, hashlib, os, pathlib, sys, time, zipfile
args = sys.argv[1:]
assert args[:5] == ["-m", "pip", "wheel", "--quiet", "--no-deps"], args
out = pathlib.Path(args[6])
with open(os.environ["FAKE_PIP_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
for project in map(pathlib.Path, args[7:]):
    if (project / "FAIL").exists():
        sys.exit("error: build backend failed")
    meta = dict(line.split(" = ") for line in (project / "pyproject.toml").read_text().splitlines())
    name, version = meta["name"].strip('"'), meta["version"].strip('"')
    dist = f"{name}-{version}.dist-info"
    files = {p.relative_to(project).as_posix(): p.read_bytes()
             for p in sorted((project / "pkg").rglob("*")) if p.is_file()}
    deps = [r for r in meta.get("requires", '""').strip('"').split(",") if r]
    headers = [f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in deps)]
    files[f"{dist}/METADATA"] = ("\\n".join(headers) + "\\n\\nA description.\\n").encode()
    def digest(data):
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record = "".join(f"{path},sha256={digest(data)},{len(data)}\\n" for path, data in files.items())
    record += f"{dist}/RECORD,,\\n"
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(out / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        for path, data in [*files.items(), (f"{dist}/RECORD", record.encode())]:
            whl.writestr(zipfile.ZipInfo(path, stamp), data)
"""


def make_project(root: Path, version: str = "1.0.0", requires: str = "numpy>=2") -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'name = "demo"\nversion = "{version}"\nrequires = "{requires}"\n'
    )
    (root / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / "pkg" / "model.bin").write_bytes(b"\x00weights-v1")
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text("# demo\n")
    return root


@pytest.fixture
def fake_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(an executable standing in for the controller's Python, the log of its builds)."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!{sys.executable}\n{FAKE_PIP}")
    script.chmod(0o755)
    log = tmp_path / "pip.log"
    log.write_text("")
    monkeypatch.setenv("FAKE_PIP_LOG", str(log))
    return script, log


def build(app_build, capsys, project: Path, cache: Path, python: Path) -> dict:
    return run_module(
        app_build,
        {"projects": [str(project)], "cache_dir": str(cache), "python": str(python)},
        capsys,
    )


def builds(log: Path) -> int:
    return len(log.read_text().splitlines())


# Files a build could take (any layout, package data, the build's own files) and files tools
# write into a project, which no build takes from there.
BUILD_INPUTS = [
    "pkg/__init__.py",
    "flat_module.py",
    "src/demo/core.py",
    "pkg/data/model.bin",
    "pyproject.toml",
    "setup.py",
    "pkg/build/step.py",
]
TOOL_OUTPUTS = [
    "pkg/__pycache__/x.cpython-311.pyc",
    "pkg/stale.pyc",
    "build/lib/pkg/__init__.py",
    "dist/demo-1.0.0.whl",
    "demo.egg-info/PKG-INFO",
    "src/demo.egg-info/SOURCES.txt",
    ".git/HEAD",
    "pkg/.pytest_cache/v",
    ".ruff_cache/x",
    ".hypothesis/examples/x",
    ".venv/bin/python",
    ".tox/py/x",
]


@pytest.mark.parametrize(
    ("path", "counts"),
    [(path, True) for path in BUILD_INPUTS] + [(path, False) for path in TOOL_OUTPUTS],
)
def test_the_sources_key_changes_with_what_a_build_could_take_only(
    app_build, tmp_path, path, counts
):
    project = make_project(tmp_path / "p")
    before = app_build.sources_key([str(project)])
    target = project / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((target.read_bytes() if target.exists() else b"") + b"# changed\n")
    assert (app_build.sources_key([str(project)]) != before) == counts, path


def test_the_same_files_elsewhere_have_the_same_sources_key(app_build, tmp_path):
    one, two = make_project(tmp_path / "one"), make_project(tmp_path / "two" / "deeper")
    assert app_build.sources_key([str(one)]) == app_build.sources_key([str(two)])


def test_a_build_is_named_by_what_its_wheels_hold_not_when_they_were_zipped(app_build, tmp_path):
    def wheel(directory: Path, stamp: tuple, data: bytes) -> Path:
        directory.mkdir()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record = f"pkg/a.py,sha256={digest},{len(data)}\ndemo-1.dist-info/RECORD,,\n"
        with zipfile.ZipFile(directory / "demo-1-py3-none-any.whl", "w") as whl:
            whl.writestr(zipfile.ZipInfo("pkg/a.py", stamp), data)
            whl.writestr(zipfile.ZipInfo("demo-1.dist-info/RECORD", stamp), record)
        return directory

    early = wheel(tmp_path / "early", (2020, 1, 1, 0, 0, 0), b"A = 1\n")
    late = wheel(tmp_path / "late", (2026, 11, 30, 12, 0, 0), b"A = 1\n")
    other = wheel(tmp_path / "other", (2020, 1, 1, 0, 0, 0), b"A = 2\n")
    assert app_build.build_name(str(early)) == app_build.build_name(str(late))
    assert app_build.build_name(str(early)) != app_build.build_name(str(other))
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"A = 1\n").digest()).rstrip(b"=")
    assert app_build.wheel_contents(str(early / "demo-1-py3-none-any.whl")) == [
        f"pkg/a.py,sha256={digest.decode()}"  # RECORD's own line and the sizes left out
    ]


def test_builds_once_per_sources_and_rolls_out_only_what_the_wheels_carry(
    app_build, capsys, tmp_path, fake_python
):
    python, log = fake_python
    project, cache = make_project(tmp_path / "app"), tmp_path / "fresh" / "cache"

    first = build(app_build, capsys, project, cache, python)
    assert (first["rc"], first["changed"], first["built"]) == (0, True, True), first
    assert first["wheels"] == ["demo-1.0.0-py3-none-any.whl"]
    assert first["requires"] == ["numpy>=2"]
    assert first["app_dir"] == str(cache / f"app-{first['build']}")
    assert (Path(first["app_dir"]) / first["wheels"][0]).is_file()

    again = build(app_build, capsys, project, cache, python)
    assert (again["changed"], again["built"], again["build"]) == (False, False, first["build"])
    assert builds(log) == 1  # the sources were known: no second build

    time.sleep(1.1)  # the new build's zip entries get another time stamp
    (project / "docs" / "index.md").write_text("# demo, better explained\n")
    docs = build(app_build, capsys, project, cache, python)
    assert (docs["changed"], docs["built"], docs["build"]) == (False, True, first["build"])
    assert builds(log) == 2

    (project / "pkg" / "model.bin").write_bytes(b"\x00weights-v2")
    model = build(app_build, capsys, project, cache, python)
    assert (model["changed"], model["built"]) == (True, True)
    assert model["build"] != first["build"]
    assert model["requires"] == first["requires"]  # the same dependencies: no new download

    (project / "pyproject.toml").write_text(
        'name = "demo"\nversion = "1.0.0"\nrequires = "numpy>=2,pandas==2.2.3"\n'
    )
    deps = build(app_build, capsys, project, cache, python)
    assert deps["requires"] == ["numpy>=2", "pandas==2.2.3"], deps

    names = sorted(os.listdir(cache))
    assert not [n for n in names if ".partial." in n], names
    assert [n for n in names if n.startswith("app-")] == sorted(
        {f"app-{first['build']}", f"app-{model['build']}", f"app-{deps['build']}"}
    )


def test_a_removed_build_is_built_again(app_build, capsys, tmp_path, fake_python):
    python, log = fake_python
    project, cache = make_project(tmp_path / "app"), tmp_path / "cache"
    first = build(app_build, capsys, project, cache, python)
    for wheel in Path(first["app_dir"]).iterdir():
        wheel.unlink()
    Path(first["app_dir"]).rmdir()
    again = build(app_build, capsys, project, cache, python)
    assert (again["changed"], again["build"], builds(log)) == (True, first["build"], 2)


def test_a_project_without_pyproject_is_named(app_build, capsys, tmp_path, fake_python):
    python, log = fake_python
    bare = tmp_path / "bare"
    bare.mkdir()
    result = build(app_build, capsys, bare, tmp_path / "cache", python)
    assert result["rc"] == 1, result
    assert f"{bare}: not a directory with a pyproject.toml" in result["msg"], result
    assert builds(log) == 0


def test_a_failed_build_leaves_no_half_built_directory(app_build, capsys, tmp_path, fake_python):
    python, _ = fake_python
    project, cache = make_project(tmp_path / "app"), tmp_path / "cache"
    (project / "FAIL").write_text("")
    result = build(app_build, capsys, project, cache, python)
    assert result["rc"] == 1, result
    assert "build backend failed" in result["msg"], result
    assert os.listdir(cache) == [], os.listdir(cache)
