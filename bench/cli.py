"""The command line of the benchmark driver: its subcommands, their arguments and defaults.

Run as ``python -m bench`` from the repository root (bench/run.sh) or as ``bench/bench.py``
(playbooks/benchmark.yml); both take the same arguments and print the same usage.
"""

from __future__ import annotations

import argparse
import os

from .docs import run_docs
from .files import DOC
from .machine import run_machine
from .provision import run_provision
from .render import run_render
from .serve import run_serve

# The name usage and error messages give the command, however it was started.
PROG = "bench.py"
DESCRIPTION = "rayforge benchmark driver (standard library only; bench/run.sh is the front end)."


def default_cache() -> str:
    """The controller's wheelhouse cache: ``$RAYFORGE_CACHE/wheelhouse``, by default
    ``~/.cache/rayforge/wheelhouse`` (the cache the ray_node role fills)."""
    return os.path.join(
        os.environ.get("RAYFORGE_CACHE", os.path.expanduser("~/.cache/rayforge")), "wheelhouse"
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``bench.py {serve,render,provision,machine,docs} ...``.

    Each subcommand sets ``command`` (its name) and ``func`` (the function that runs it,
    taking the parsed arguments and returning the exit status). Comma-separated options
    (``--connections``, ``--batch-items``, ``--scenarios``, ``--workers``) stay text. The
    ``--cache`` default is read from the environment when the parser is built.
    """
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="Serve vs bare uvicorn (run by playbooks/benchmark.yml)")
    p.add_argument("--context", required=True, help="JSON written by playbooks/benchmark.yml")
    p.add_argument("--out", required=True, help="markdown report (a .json goes beside it)")
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--connections", default="1,32")
    p.add_argument("--batch-items", default="1000,10000")
    p.add_argument("--batch-connections", type=int, default=4)
    p.add_argument("--scenarios", default="small,batch")
    p.set_defaults(func=run_serve)

    p = sub.add_parser("render", help="print a report again from its .json")
    p.add_argument("json")
    p.set_defaults(func=run_render)

    p = sub.add_parser("provision", help="cold rollout and no-change re-run per lab size")
    p.add_argument("-i", "--inventory", default="inventories/lab")
    p.add_argument("--workers", default="2,4", help="worker counts, one lab each")
    p.add_argument("--cache", default=default_cache())
    p.add_argument("--out", required=True)
    p.add_argument("--reruns", type=int, default=3, help="no-change re-runs per size (median)")
    p.add_argument(
        "ansible_args", nargs="*", help="passed to every site.yml run (after --), e.g. -e x=y"
    )
    p.set_defaults(func=run_provision)

    p = sub.add_parser("machine", help="describe the controller")
    p.set_defaults(func=run_machine)

    p = sub.add_parser("docs", help="copy a report into docs/benchmarks.md")
    p.add_argument("report")
    p.add_argument("--section", required=True, choices=["serve", "provision"])
    p.add_argument("--doc", default=str(DOC))
    p.set_defaults(func=run_docs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the subcommand; returns its exit
    status. argparse exits with status 2 on a usage error, 0 after --help."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
