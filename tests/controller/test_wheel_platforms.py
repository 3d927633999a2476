"""The wheelhouse's platform tags follow the hosts' glibc (ray_node's wheel_platforms.yml).

Each case runs the real entry point (``include_role`` ray_node, ``tasks_from:
wheel_platforms``) with ``ansible-playbook`` on inventory hosts that are this machine
(``ansible_connection: local``). Each host's interpreter is a wrapper that puts a stand-in
``getconf`` first on PATH, so the role reads the glibc version the case gives that host (Debian
12's 2.36, Debian 13's 2.41) with the command it uses on real hosts. The tags the play settled
on are written to a file and compared: the lowest glibc of the hosts wins, an explicit
ray_node_wheel_platforms is taken as it is (getconf never asked), and a host whose getconf
answers nothing useful stops the run naming the variable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from controller_support import run_play

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
LEGACY = ["manylinux1", "manylinux2010", "manylinux2014"]


def tags_up_to(minor: int) -> list[str]:
    return LEGACY + [f"manylinux_2_{n}" for n in range(17, minor + 1)]


def interpreter(tmp_path: Path, host: str, answer: str) -> str:
    """A python3 for HOST whose PATH starts with a getconf that prints ANSWER (or fails,
    when ANSWER is empty)."""
    bin_dir = tmp_path / f"bin-{host}"
    bin_dir.mkdir()
    getconf = bin_dir / "getconf"
    body = f"echo '{answer}'" if answer else "echo 'getconf: no such variable' >&2; exit 1"
    getconf.write_text(f"#!/bin/sh\n{body}\n")
    getconf.chmod(0o755)
    python = tmp_path / f"python-{host}"
    python.write_text(f'#!/bin/sh\nPATH={bin_dir}:$PATH exec {SYSTEM_PYTHON} "$@"\n')
    python.chmod(0o755)
    return str(python)


def run(tmp_path: Path, glibc: dict[str, str], extra: dict | None = None):
    """(the run, the tags it settled on or None) for hosts whose getconf answers GLIBC."""
    hosts = {
        name: {
            "ansible_host": f"127.0.0.{n + 1}",
            "ansible_python_interpreter": interpreter(tmp_path, name, answer),
        }
        for n, (name, answer) in enumerate(glibc.items())
    }
    names = list(hosts)
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ray_auth_mode": "disabled", **(extra or {})},
            "children": {
                "ray_head": {"hosts": {names[0]: hosts[names[0]]}},
                "ray_workers": {"hosts": {name: hosts[name] for name in names[1:]}},
            },
        }
    }
    out = tmp_path / "tags.json"
    play = [
        {
            "name": "Wheel platform tags",
            "hosts": "ray_head:ray_workers",
            "gather_facts": False,
            # As site.yml's plays: one host's failure stops every host.
            "any_errors_fatal": True,
            "tasks": [
                {
                    "name": "Tags are derived",
                    "ansible.builtin.include_role": {
                        "name": "ray_node",
                        "tasks_from": "wheel_platforms",
                    },
                },
                {
                    "name": "Tags are written",
                    "ansible.builtin.copy": {
                        "content": "{{ _ray_node_wheel_tags | to_json }}",
                        "dest": str(out),
                        "mode": "0600",
                    },
                    "delegate_to": "localhost",
                    "run_once": True,
                },
            ],
        }
    ]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    done = run_play(tmp_path, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return done, (json.loads(out.read_text()) if out.exists() else None)


@pytest.mark.parametrize(
    ("glibc", "minor"),
    [
        ({"bookworm": "glibc 2.36"}, 36),
        ({"trixie": "glibc 2.41"}, 41),
        ({"trixie": "glibc 2.41", "bookworm": "glibc 2.36"}, 36),
    ],
    ids=["debian12", "debian13", "mixed-lowest-wins"],
)
def test_tags_derived_from_the_lowest_glibc(tmp_path: Path, glibc: dict, minor: int) -> None:
    done, tags = run(tmp_path, glibc)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert tags == tags_up_to(minor)


def test_an_explicit_list_is_taken_as_it_is(tmp_path: Path) -> None:
    """getconf fails on this host: it is not asked."""
    wanted = ["manylinux2014", "manylinux_2_28"]
    done, tags = run(tmp_path, {"odd": ""}, {"ray_node_wheel_platforms": wanted})
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert tags == wanted


def test_a_host_without_a_glibc_version_is_refused_naming_the_variable(tmp_path: Path) -> None:
    done, tags = run(tmp_path, {"bookworm": "glibc 2.36", "odd": ""})
    assert done.returncode == 2, done.stdout[-4000:]
    assert tags is None
    assert "odd did not tell its glibc version" in done.stdout, done.stdout[-4000:]
    assert "Set ray_node_wheel_platforms" in done.stdout, done.stdout[-4000:]
