"""The `render` subcommand: print a report again from its .json (after a change to the
report's layout), serve or provision alike."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .provision_report import render_provision
from .serve_report import render_serve
from .stats import summarise_load
from .wrk import WrkRun


def render_report(data: dict) -> str:
    """The markdown report of a report's .json ``data``: a provisioning report when it has
    ``rows``, else a serve report, whose summaries are computed again from its ``runs``.
    Raises KeyError or TypeError when ``data`` is not such a .json."""
    if "rows" in data:
        return render_provision(data["meta"], data["rows"])
    runs = [WrkRun(**r) for r in data["runs"]]
    summaries = []
    for sm in data["summaries"]:
        serve = [r for r in runs if r.scenario == sm["scenario"] and r.target == "serve"]
        bare = [r for r in runs if r.scenario == sm["scenario"] and r.target == "bare"]
        summaries.append(
            summarise_load(sm["scenario"], sm["kind"], sm["items"], sm["connections"], serve, bare)
        )
    return render_serve(data["context"], data["meta"], summaries, runs, data["correctness"])


def run_render(args: argparse.Namespace) -> int:
    """`bench.py render REPORT.json`: print :func:`render_report` of ``args.json``; exit
    status 0. Raises OSError or ValueError when the file cannot be read as JSON."""
    print(render_report(json.loads(Path(args.json).read_text())))
    return 0
