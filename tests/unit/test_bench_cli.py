"""The command line of the benchmark driver (bench/cli.py, bench/options.py, the loads of
bench/serve.py) and its two ways in: ``python -m bench`` (bench/run.sh) and
``bench/bench.py`` (playbooks/benchmark.yml).

Proves: every subcommand's defaults are the documented ones, ansible arguments after -- go
to provision, the wheelhouse cache follows RAYFORGE_CACHE, a wrong section or a missing
subcommand is a usage error; comma-separated options are read as integers; the loads are
built in order from --scenarios, --connections and --batch-items; both entry points print
the same usage under the name bench.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench.cli import build_parser
from bench.docs import run_docs
from bench.options import parse_ints
from bench.provision import run_provision
from bench.serve import Scenario, run_serve, scenarios

REPO = Path(__file__).resolve().parents[2]


def test_serve_defaults():
    args = build_parser().parse_args(["serve", "--context", "c.json", "--out", "o.md"])
    assert vars(args) == {
        "command": "serve",
        "context": "c.json",
        "out": "o.md",
        "duration": 10,
        "warmup": 2,
        "reps": 3,
        "connections": "1,32",
        "batch_items": "1000,10000",
        "batch_connections": 4,
        "scenarios": "small,batch",
        "func": run_serve,
    }


def test_provision_defaults_and_ansible_arguments(monkeypatch):
    monkeypatch.setenv("RAYFORGE_CACHE", "/srv/cache")
    args = build_parser().parse_args(
        ["provision", "--out", "p.md", "--reruns", "5", "--", "-e", "ray_version=2.0"]
    )
    assert args.func is run_provision
    assert args.inventory == "inventories/lab"
    assert args.workers == "2,4"
    assert args.reruns == 5
    assert args.cache == "/srv/cache/wheelhouse"
    assert args.ansible_args == ["-e", "ray_version=2.0"]


def test_provision_cache_defaults_to_the_home_cache(monkeypatch):
    monkeypatch.delenv("RAYFORGE_CACHE", raising=False)
    monkeypatch.setenv("HOME", "/home/ops")
    args = build_parser().parse_args(["provision", "--out", "p.md"])
    assert args.cache == "/home/ops/.cache/rayforge/wheelhouse"


def test_docs_defaults_to_the_benchmarks_page():
    args = build_parser().parse_args(["docs", "r.md", "--section", "provision"])
    assert args.func is run_docs
    assert Path(args.doc) == REPO / "docs" / "benchmarks.md"


@pytest.mark.parametrize(
    "argv",
    [[], ["docs", "r.md", "--section", "tuning"], ["serve", "--out", "o.md"], ["render"]],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("usage: bench.py")


def test_parse_ints():
    assert parse_ints("1,32") == [1, 32]
    assert parse_ints("2,,4, ") == [2, 4]
    assert parse_ints(4) == [4]
    assert parse_ints("") == []
    with pytest.raises(ValueError, match="invalid literal for int"):
        parse_ints("2,four")


def test_scenarios_in_order():
    assert scenarios("small,batch", "1,32", "1000,10000", 4) == [
        Scenario("1 item, 1 conn", "small", 1, 1),
        Scenario("1 item, 32 conn", "small", 1, 32),
        Scenario("1,000 items, 4 conn", "batch", 1000, 4),
        Scenario("10,000 items, 4 conn", "batch", 10000, 4),
    ]


def test_scenarios_of_one_kind():
    assert scenarios("batch", "1,32", "500", 2) == [Scenario("500 items, 2 conn", "batch", 500, 2)]
    assert [s.name for s in scenarios("small", "8", "1000", 4)] == ["1 item, 8 conn"]
    assert scenarios("", "1", "1", 1) == []


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "bench"],
        [sys.executable, "bench/bench.py"],
        [sys.executable, str(REPO / "bench" / "bench.py")],
    ],
)
@pytest.mark.parametrize("subcommand", ["serve", "render", "provision", "machine", "docs"])
def test_every_entry_point_prints_the_same_usage(command, subcommand, tmp_path):
    # The absolute path runs from elsewhere, as playbooks/benchmark.yml may.
    cwd = tmp_path if command[-1].startswith("/") else REPO
    proc = subprocess.run(
        [*command, subcommand, "--help"], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: bench.py {subcommand} [-h]")
    expected = build_parser()._subparsers._group_actions[0].choices[subcommand].format_help()
    assert proc.stdout == expected


def test_run_sh_runs_the_package():
    text = (REPO / "bench" / "run.sh").read_text()
    assert 'driver=("$python" -m bench)' in text
    assert "bench/bench.py" not in text
