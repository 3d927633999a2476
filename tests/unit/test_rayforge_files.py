"""The rayforge_files module (roles/ray/library/rayforge_files.py), run as Ansible runs it (its
main() with module arguments), on real files in a temporary directory.

Proves: directories and files are created with their content and mode; a second run with
the same list changes nothing and says so; a drifted mode or changed content is corrected and
reported, path by path; check mode reports what would change and changes nothing; a failing
validate command fails the task and leaves the old file as it was (no temporary file left); a
secret's content is never in the result; state=absent removes files and empty directories.
Owner and group are the current user's, so the tests run as root or not.

A new 0600 secret file is never readable by others, not even for a moment: it takes its path
with its final mode.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat

import pytest
from unit_support import run_module

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def item(path, **extra) -> dict:
    return {"path": str(path), "owner": OWNER, "group": GROUP, **extra}


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def run(rayforge_files, capsys, files, **flags) -> dict:
    return run_module(rayforge_files, {"files": files, **flags}, capsys)


@pytest.fixture(autouse=True)
def umask_022():
    """New files would get 0644 from the umask: every mode asserted below is the module's."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def layout(tmp_path):
    conf = tmp_path / "etc" / "rayforge"
    return {
        "dir": conf,
        "file": conf / "ray.env",
        "files": [
            item(conf, state="directory", mode="0750"),
            item(conf / "ray.env", content="RAY_PORT=6379\n", mode="0640"),
        ],
    }


def test_creates_directories_and_files_with_mode(rayforge_files, capsys, layout):
    result = run(rayforge_files, capsys, layout["files"])
    assert result["rc"] == 0, result
    assert result["changed"] is True
    assert result["changed_paths"] == [str(layout["dir"]), str(layout["file"])]
    assert layout["file"].read_text() == "RAY_PORT=6379\n"
    assert mode_of(layout["dir"]) == 0o750
    assert mode_of(layout["file"]) == 0o640
    assert os.stat(layout["file"]).st_uid == os.getuid()
    assert sorted(os.listdir(layout["dir"])) == ["ray.env"]  # no temporary file left


def test_second_run_changes_nothing(rayforge_files, capsys, layout):
    run(rayforge_files, capsys, layout["files"])
    inode = os.stat(layout["file"]).st_ino
    result = run(rayforge_files, capsys, layout["files"])
    assert (result["rc"], result["changed"], result["changed_paths"]) == (0, False, [])
    assert os.stat(layout["file"]).st_ino == inode  # not rewritten


def test_drifted_mode_is_corrected(rayforge_files, capsys, layout):
    run(rayforge_files, capsys, layout["files"])
    os.chmod(layout["file"], 0o666)
    result = run(rayforge_files, capsys, layout["files"])
    assert (result["changed"], result["changed_paths"]) == (True, [str(layout["file"])])
    assert mode_of(layout["file"]) == 0o640
    assert layout["file"].read_text() == "RAY_PORT=6379\n"


def test_changed_content_is_rewritten_with_a_diff(rayforge_files, capsys, layout):
    run(rayforge_files, capsys, layout["files"])
    files = [layout["files"][0], dict(layout["files"][1], content="RAY_PORT=6380\n")]
    result = run(rayforge_files, capsys, files, _ansible_diff=True)
    assert (result["changed"], result["changed_paths"]) == (True, [str(layout["file"])])
    assert layout["file"].read_text() == "RAY_PORT=6380\n"
    assert mode_of(layout["file"]) == 0o640
    assert result["diff"] == [
        {
            "before_header": str(layout["file"]),
            "after_header": str(layout["file"]),
            "before": "RAY_PORT=6379\n",
            "after": "RAY_PORT=6380\n",
        }
    ]


def test_check_mode_changes_nothing_but_reports_changed(rayforge_files, capsys, layout):
    result = run(rayforge_files, capsys, layout["files"], _ansible_check_mode=True)
    assert result["rc"] == 0, result
    assert result["changed"] is True
    assert result["changed_paths"] == [str(layout["dir"]), str(layout["file"])]
    assert not layout["dir"].exists()

    run(rayforge_files, capsys, layout["files"])
    os.chmod(layout["file"], 0o600)
    files = [layout["files"][0], dict(layout["files"][1], content="RAY_PORT=6380\n")]
    result = run(rayforge_files, capsys, files, _ansible_check_mode=True)
    assert (result["changed"], result["changed_paths"]) == (True, [str(layout["file"])])
    assert layout["file"].read_text() == "RAY_PORT=6379\n"
    assert mode_of(layout["file"]) == 0o600


def test_failing_validate_leaves_the_old_file(rayforge_files, capsys, layout):
    run(rayforge_files, capsys, layout["files"])
    inode = os.stat(layout["file"]).st_ino
    bad = item(
        layout["file"], content="RAY_PORT=oops\n", mode="0640", validate="grep -q '=[0-9]*$' %s"
    )
    result = run(rayforge_files, capsys, [bad])
    assert result["rc"] == 1
    assert result["msg"].startswith(f"{layout['file']}: validation failed (grep -q ")
    assert layout["file"].read_text() == "RAY_PORT=6379\n"
    assert os.stat(layout["file"]).st_ino == inode
    assert sorted(os.listdir(layout["dir"])) == ["ray.env"]  # the temporary file is gone

    good = dict(bad, content="RAY_PORT=6380\n")
    result = run(rayforge_files, capsys, [good])
    assert (result["rc"], result["changed"]) == (0, True)
    assert layout["file"].read_text() == "RAY_PORT=6380\n"


def test_validate_without_placeholder_fails(rayforge_files, capsys, layout):
    run(rayforge_files, capsys, layout["files"][:1])
    bad = item(layout["file"], content="x\n", mode="0640", validate="true")
    result = run(rayforge_files, capsys, [bad])
    assert result["rc"] == 1
    assert result["msg"] == f"{layout['file']}: validate must contain %s: true"
    assert not layout["file"].exists()
    assert os.listdir(layout["dir"]) == []


def test_secret_content_is_never_in_the_result(rayforge_files, capsys, layout):
    token = item(layout["dir"] / "auth_token", secret_content="tok-5f3a9c1e", mode="0600")
    result = run(rayforge_files, capsys, [layout["files"][0], token], _ansible_diff=True)
    assert result["rc"] == 0, result
    assert "tok-5f3a9c1e" not in repr(result)
    assert "diff" not in result
    assert (layout["dir"] / "auth_token").read_text() == "tok-5f3a9c1e"
    assert mode_of(layout["dir"] / "auth_token") == 0o600


def test_state_absent(rayforge_files, capsys, layout):
    run(rayforge_files, capsys, layout["files"])
    gone = [item(layout["file"], state="absent"), item(layout["dir"], state="absent")]

    result = run(rayforge_files, capsys, gone, _ansible_check_mode=True)
    assert (result["changed"], result["changed_paths"]) == (
        True,
        [str(layout["file"]), str(layout["dir"])],
    )
    assert layout["file"].exists()

    result = run(rayforge_files, capsys, gone)
    assert (result["rc"], result["changed"]) == (0, True)
    assert not layout["dir"].exists()

    result = run(rayforge_files, capsys, gone)
    assert (result["rc"], result["changed"], result["changed_paths"]) == (0, False, [])


def test_mode_is_required_unless_absent(rayforge_files, capsys, layout):
    result = run(rayforge_files, capsys, [item(layout["dir"], state="directory")])
    assert result["rc"] == 1
    assert result["msg"] == f"{layout['dir']}: mode is required for state=directory"
    assert not layout["dir"].exists()


def test_file_where_a_directory_should_be_fails(rayforge_files, capsys, layout):
    layout["dir"].parent.mkdir()
    layout["dir"].write_text("not a directory")
    result = run(rayforge_files, capsys, layout["files"][:1])
    assert result["rc"] == 1
    assert result["msg"] == f"{layout['dir']} exists and is not a directory"


def test_new_secret_file_is_never_readable_by_others(rayforge_files, capsys, layout, monkeypatch):
    run(rayforge_files, capsys, layout["files"][:1])
    token_path = layout["dir"] / "auth_token"
    seen_after_rename = []
    replace = os.replace

    def spy(src, dest, *args, **kwargs):
        replace(src, dest, *args, **kwargs)
        if os.fspath(dest) == str(token_path):
            seen_after_rename.append(mode_of(dest))  # at its path, with the new secret

    monkeypatch.setattr(os, "replace", spy)
    token = item(token_path, secret_content="tok-5f3a9c1e", mode="0600")
    result = run(rayforge_files, capsys, [token])
    assert result["rc"] == 0, result
    assert mode_of(token_path) == 0o600  # in the end
    assert seen_after_rename == [0o600]  # and from the moment it is there
