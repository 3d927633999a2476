"""The `serve` subcommand: wrk against Ray Serve's HTTP endpoint and the same app under bare
uvicorn, alternating (S,B then B,S ...), one-item requests and large batches; writes the
markdown report and a JSON file of every run. Run by playbooks/benchmark.yml with the
context it collected on the head."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .answer_check import check_answer
from .cells import fmt_ms
from .machine import git_describe, machine
from .options import parse_ints
from .progress import log, set_log_file
from .serve_report import render_serve
from .stats import Summary, summarise_load
from .wrk import WrkRun, run_wrk


@dataclass
class Scenario:
    """One load: its name in the report, ``kind`` "small" (one-item requests) or "batch",
    the ``items`` per request and wrk's ``connections``."""

    name: str
    kind: str  # small or batch
    items: int
    connections: int


def scenarios(
    kinds: str, connections: str, batch_items: str, batch_connections: int
) -> list[Scenario]:
    """The loads to measure, in order: one-item requests at each of ``connections`` when
    ``kinds`` names "small", then each of ``batch_items`` per request at
    ``batch_connections`` when it names "batch".

    ``kinds`` is the --scenarios text (e.g. "small,batch"; a part runs when its name appears
    in it); ``connections`` and ``batch_items`` are comma-separated integers. Raises
    ValueError when one of those is not an integer.
    """
    loads: list[Scenario] = []
    if "small" in kinds:
        loads += [Scenario(f"1 item, {c} conn", "small", 1, c) for c in parse_ints(connections)]
    if "batch" in kinds:
        loads += [
            Scenario(f"{n:,} items, {batch_connections} conn", "batch", n, batch_connections)
            for n in parse_ints(batch_items)
        ]
    return loads


def run_serve(args: argparse.Namespace) -> int:
    """`bench.py serve`: measure every load of ``args`` on both targets and write the report.

    ``args.context`` is the JSON playbooks/benchmark.yml wrote (``serve_url``, ``bare_url``,
    ``path`` and what the report prints); the report goes to ``args.out`` (markdown, also
    printed), every run to the .json beside it, progress to the .log beside it (its
    directory must exist). Before each load one answer of each target is checked in full;
    then a warm-up of ``args.warmup`` seconds per target and ``args.reps`` runs of
    ``args.duration`` seconds per target, alternating which goes first.

    Exit status: 0; 1 when an answer was wrong; 2 when wrk is not installed.
    """
    set_log_file(Path(args.out).with_suffix(".log"))
    ctx = json.loads(Path(args.context).read_text())
    targets = {"serve": ctx["serve_url"], "bare": ctx["bare_url"]}
    path = ctx["path"]
    loads = scenarios(args.scenarios, args.connections, args.batch_items, args.batch_connections)
    if shutil.which("wrk") is None:
        print("wrk is not installed (bench/run.sh installs it)", file=sys.stderr)
        return 2

    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    budget = len(loads) * 2 * (args.warmup + args.reps * args.duration)
    log(
        f"{len(loads)} loads x 2 targets x {args.reps} runs of {args.duration}s "
        f"(about {budget // 60}m{budget % 60:02d}s of load)"
    )
    runs: list[WrkRun] = []
    summaries: list[Summary] = []
    correctness: list[str] = []
    for sc in loads:
        for name, url in targets.items():
            problem = check_answer(url, path, sc.items)
            if problem:
                correctness.append(f"{sc.name}, {name}: {problem}")
                log(f"WRONG ANSWER {sc.name} {name}: {problem}")
        for name, url in targets.items():
            run_wrk(
                url,
                path,
                sc.items,
                sc.connections,
                args.warmup,
                WrkRun(name, sc.name, sc.items, sc.connections, 0),
            )
        by_target: dict[str, list[WrkRun]] = {"serve": [], "bare": []}
        for rep in range(1, args.reps + 1):
            # Alternate which goes first, so drift in the machine's load hits both alike.
            order = ["serve", "bare"] if rep % 2 else ["bare", "serve"]
            for name in order:
                run = run_wrk(
                    targets[name],
                    path,
                    sc.items,
                    sc.connections,
                    args.duration,
                    WrkRun(name, sc.name, sc.items, sc.connections, rep),
                )
                by_target[name].append(run)
                runs.append(run)
                log(
                    f"{sc.name:<22} {name:<5} run {rep}: {run.rps:9.1f} req/s  "
                    f"p50 {fmt_ms(run.p50_ms)}  p99 {fmt_ms(run.p99_ms)}  "
                    f"non-2xx {run.non_2xx}  errors {run.socket_errors}"
                    + (f"  ({run.error})" if run.error else "")
                )
        summaries.append(
            summarise_load(
                sc.name, sc.kind, sc.items, sc.connections, by_target["serve"], by_target["bare"]
            )
        )

    meta = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "git": git_describe(),
        "controller": machine(),
    }
    report = render_serve(ctx, meta, summaries, runs, correctness)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "context": ctx,
                "meta": meta,
                "summaries": [asdict(s) for s in summaries],
                "runs": [asdict(r) for r in runs],
                "correctness": correctness,
            },
            indent=2,
        )
        + "\n"
    )
    print(report)
    log(f"report: {out}")
    return 1 if correctness else 0
