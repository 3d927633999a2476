"""What the controller tests share: running a play of TMP_PATH (play.yml with inventory.yml)
with the repository's ansible.cfg and roles, as the playbooks run them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_play(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """ansible-playbook on TMP_PATH/play.yml with TMP_PATH/inventory.yml, the repository's
    ansible.cfg and roles, ENV added to the environment; the run is returned, not checked."""
    return subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            **env,
        },
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
