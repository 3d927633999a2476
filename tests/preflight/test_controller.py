"""The controller check: an ansible-core older than the roles' min_ansible_version fails the
preflight first, before any host is contacted, and names the fix.

A real older ansible-core (2.16, the last release line before the one the roles need that
still runs on this Python) is installed from the package index into a virtualenv of the
test's own, and runs playbooks/preflight.yml against an inventory whose hosts cannot be
reached (TEST-NET-1 addresses): a check that ran after contacting a host would fail on the
unreachable host instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
OLD_ANSIBLE_CORE = "ansible-core>=2.16,<2.17"
MIN_ANSIBLE = yaml.safe_load((REPO / "roles/ray/meta/main.yml").read_text())["galaxy_info"][
    "min_ansible_version"
]


def test_an_older_ansible_core_fails_first_and_names_the_fix(tmp_path: Path) -> None:
    venv = tmp_path / "old-ansible"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [venv / "bin/pip", "install", "--quiet", "--disable-pip-version-check", OLD_ANSIBLE_CORE],
        check=True,
        timeout=600,
    )
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "ray_head": {"hosts": {"head": {"ansible_host": "192.0.2.10"}}},
                        "ray_workers": {"hosts": {"worker": {"ansible_host": "192.0.2.11"}}},
                    }
                }
            }
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    run = subprocess.run(
        [venv / "bin/ansible-playbook", "playbooks/preflight.yml", "-i", str(inventory)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0, out
    assert "This controller runs ansible-core 2.16." in out, out
    assert f"need ansible-core >= {MIN_ANSIBLE}" in out, out
    assert 'PATH="$(scripts/bootstrap.sh --controller)/bin:$PATH"' in out, out
    assert "UNREACHABLE" not in out, out
    assert "192.0.2.10" not in out, out  # no host was contacted
