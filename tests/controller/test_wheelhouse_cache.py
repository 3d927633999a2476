"""Two rollouts that share one fresh wheelhouse cache at once both succeed.

Runs tests/controller/wheelhouse.yml (ray_node's preflight and wheelhouse entry points, on
this machine as the only host) twice at the same moment with one RAYFORGE_CACHE that does not
exist yet, as two operators or a lab and a test run on one controller would. Both must
succeed, and the cache must hold exactly one app build, one dependency download and one
archive, with no half-written leftover (``*.partial.*``) and an archive holding Ray and the
app wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).resolve().parent / "wheelhouse.yml"
RUNS = 2
TIMEOUT_S = 900  # two Ray downloads at once, from pip's cache or the index
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def write_inventory(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": SYSTEM_PYTHON,
                        # The token is read from the head: there is none, and none is needed.
                        "ray_auth_mode": "disabled",
                    },
                    "children": {"ray_head": {"hosts": {"head": {"ansible_host": "127.0.0.1"}}}},
                }
            }
        )
    )
    return path


def test_two_runs_sharing_a_fresh_cache_both_succeed(tmp_path: Path) -> None:
    cache_root = tmp_path / "fresh" / "cache"
    inventory = write_inventory(tmp_path / "inventory.yml")
    env = dict(
        os.environ,
        RAYFORGE_CACHE=str(cache_root),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    logs = [tmp_path / f"run{n}.log" for n in range(RUNS)]
    procs = []
    for log in logs:
        with log.open("w") as out:
            procs.append(
                subprocess.Popen(
                    ["ansible-playbook", str(PLAYBOOK), "-i", str(inventory)],
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        codes = [proc.wait(timeout=TIMEOUT_S) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    output = "\n".join(f"--- {log.name}\n{log.read_text()}" for log in logs)
    assert codes == [0] * RUNS, output

    wheelhouse = cache_root / "wheelhouse"
    names = sorted(entry.name for entry in wheelhouse.iterdir())
    assert not [name for name in names if ".partial." in name or ".rayforge-probe" in name], names
    apps = [name for name in names if name.startswith("app-")]
    deps = [name for name in names if name.startswith("deps-")]
    archives = [name for name in names if name.startswith("wheelhouse-")]
    assert (len(apps), len(deps), len(archives)) == (1, 1, 1), names
    with tarfile.open(wheelhouse / archives[0]) as tar:
        members = tar.getnames()
    assert any(m.startswith(f"{apps[0]}/rayforge_salience-") for m in members), members
    assert any(m.startswith(f"{deps[0]}/ray-") and m.endswith(".whl") for m in members), members
