#!/usr/bin/python
# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""Puts several directories and small files in place on a host in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rayforge_files
short_description: Directories and small files with owner, group and mode, in one run
description:
  - >-
    Makes a list of directories and files what they should be, in order, in a single module
    run on the host: each C(copy), C(template) or C(file) task costs a module run (and a copy
    task two, plus a temporary directory), so a role that places a handful of small files
    spends most of a no-change re-run on round trips. Content is rendered on the controller
    (for example with C(lookup('template', ...))) and passed here.
  - >-
    Why a module of its own: the same tasks written with the built-in modules made a
    no-change re-run of the 3-host lab measurably slower, side by side (numbers in
    docs/benchmarks.md, "Provisioning"). It lives in the ray role, which every
    rayforge role depends on, so every role finds it; tests/unit/test_rayforge_files.py runs it
    as Ansible does.
  - >-
    Files are written atomically (temporary file in the same directory, validated when
    C(validate) is given, then renamed over the old one), owner, group and mode corrected
    whenever they drift. Supports check mode and diff mode.
options:
  files:
    description: What to put in place, in this order (create a directory before its files).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path on the host.
        type: path
        required: true
      state:
        description: C(file), C(directory) or C(absent) (file or empty directory removed).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: Content of a file (C(state=file)); shown in diffs.
        type: str
      secret_content:
        description: Content of a file that is never logged nor shown in diffs (a token).
        type: str
      owner:
        description: Owner (name).
        type: str
        default: root
      group:
        description: Group (name).
        type: str
        default: root
      mode:
        description: Octal mode as a string, for example C("0644"); required unless absent.
        type: str
      validate:
        description: >-
          Command run on the new content before it replaces the file, C(%s) standing for
          the temporary file's path; a non-zero exit fails the task and leaves the file as
          it was.
        type: str
"""

RETURN = r"""
changed_paths:
  description: Paths that were created, rewritten, re-permissioned or removed.
  type: list
  elements: str
  returned: always
"""

import os
import shlex
import tempfile

from ansible.module_utils.basic import AnsibleModule


def _attrs(module, path, item, changed):
    changed = module.set_owner_if_different(path, item["owner"], changed)
    changed = module.set_group_if_different(path, item["group"], changed)
    return module.set_mode_if_different(path, item["mode"], changed)


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _put_file(module, item, diffs):
    path = item["path"]
    secret = item.get("secret_content") is not None
    text = item["secret_content"] if secret else item.get("content")
    if text is None:
        module.fail_json(msg=f"{path}: state=file needs content or secret_content")
    want = text.encode("utf-8")
    have = _read(path)
    if have == want:
        return _attrs(module, path, item, False)
    if module._diff and not secret:
        diffs.append(
            {
                "before_header": path,
                "after_header": path,
                "before": "" if have is None else have.decode("utf-8", "replace"),
                "after": text,
            }
        )
    if module.check_mode:
        return True
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        module.fail_json(msg=f"{path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(want)
        if item.get("validate"):
            command = item["validate"]
            if "%s" not in command:
                module.fail_json(msg=f"{path}: validate must contain %s: {command}")
            command = command.replace("%s", shlex.quote(tmp))
            rc, out, err = module.run_command(command, use_unsafe_shell=True)
            if rc != 0:
                why = (err or out).strip()
                module.fail_json(msg=f"{path}: validation failed ({command}): {why}", rc=rc)
        # The temporary file has its final owner, group and mode before it takes the path, and a
        # rename in one directory keeps them: the file is never readable by anyone it should
        # not be (atomic_move would give it the umask's or the old file's mode until the chmod
        # after it, a window in which a new 0600 token file was world-readable).
        _attrs(module, tmp, item, True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _attrs(module, path, item, True)
    return True


def _put_directory(module, item):
    path = item["path"]
    if os.path.isdir(path):
        return _attrs(module, path, item, False)
    if os.path.lexists(path):
        module.fail_json(msg=f"{path} exists and is not a directory")
    if module.check_mode:
        return True
    os.makedirs(path)
    _attrs(module, path, item, True)
    return True


def _remove(module, item):
    path = item["path"]
    if not os.path.lexists(path):
        return False
    if not module.check_mode:
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)
    return True


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "path", "required": True},
                    "state": {
                        "type": "str",
                        "choices": ["file", "directory", "absent"],
                        "default": "file",
                    },
                    "content": {"type": "str"},
                    "secret_content": {"type": "str", "no_log": True},
                    "owner": {"type": "str", "default": "root"},
                    "group": {"type": "str", "default": "root"},
                    "mode": {"type": "str"},
                    "validate": {"type": "str"},
                },
                "mutually_exclusive": [["content", "secret_content"]],
            }
        },
        supports_check_mode=True,
    )
    changed_paths, diffs = [], []
    for item in module.params["files"]:
        if item["state"] != "absent" and not item["mode"]:
            module.fail_json(msg=f"{item['path']}: mode is required for state={item['state']}")
        if item["state"] == "directory":
            changed = _put_directory(module, item)
        elif item["state"] == "absent":
            changed = _remove(module, item)
        else:
            changed = _put_file(module, item, diffs)
        if changed:
            changed_paths.append(item["path"])
    result = {"changed": bool(changed_paths), "changed_paths": changed_paths}
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
