"""The repository files the benchmarks use, as absolute paths (they work from any directory)."""

from __future__ import annotations

from pathlib import Path

# The repository: ansible-playbook and git run here.
ROOT = Path(__file__).resolve().parent.parent
# wrk's request script: a valid body of N items, built once per thread.
LUA = ROOT / "bench" / "lua" / "salience.lua"
# The page `bench.py docs` writes a report into, between its `bench:` markers.
DOC = ROOT / "docs" / "benchmarks.md"
# The lab's floor: no-op module runs on every host, relative to ROOT (ansible-playbook's cwd).
FLOOR_PLAYBOOK = "bench/floor.yml"
# bench/floor.yml's task count: about the module runs a worker makes in a no-change re-run.
FLOOR_TASKS = 14
