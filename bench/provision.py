"""The `provision` subcommand: for each worker count, destroy and create the lab
(playbooks/lab.yml), time a cold site.yml and no-change re-runs, count the bytes downloaded
into the controller's wheelhouse cache and shipped to the hosts, and measure the lab itself
(CPU use, the cluster at rest, bench/floor.yml), so a re-run's growth can be read against
the lab's."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from .cpu_load import settle
from .files import FLOOR_PLAYBOOK, FLOOR_TASKS
from .machine import git_describe, machine
from .options import parse_ints
from .playbook import PlaybookRun, run_playbook
from .progress import log
from .provision_report import render_provision
from .stats import median_run
from .wheelhouse import archive_bytes, cache_entries, installed_wheelhouse


def run_provision(args: argparse.Namespace) -> int:
    """`bench.py provision`: one lab size per count of ``args.workers`` (comma-separated), on
    the lab inventory ``args.inventory``, with the wheelhouse cache ``args.cache``.

    Per size: the lab destroyed and created with that many workers; a cold site.yml (a
    failed one finished by a second run, both reported); once the machine's load holds
    steady, ``args.reruns`` no-change re-runs (each tried up to 3 times), each followed by
    bench/floor.yml. ``args.ansible_args`` go to every site.yml and floor run. Writes the
    report to ``args.out`` (also printed), the rows to the .json beside it and every
    playbook's log to the directory of the same name. Stops at the first size whose rollout
    or re-run failed.

    Exit status: 0; 1 when the lab could not be recreated or a rollout or re-run failed;
    2 when ``args.reruns`` is below 1.
    """
    if args.reruns < 1:
        log(f"--reruns is {args.reruns}: at least one re-run per size is needed")
        return 2
    inventory = args.inventory
    workers_list = parse_ints(args.workers)
    cache = Path(args.cache).resolve()
    out = Path(args.out)
    logs = out.with_suffix("")
    logs.mkdir(parents=True, exist_ok=True)
    extra = ["-e", f"ray_node_wheelhouse_cache={cache}", *args.ansible_args]
    started = datetime.now(timezone.utc)
    rows = []
    for n in workers_list:
        hosts = n + 1
        lab = ["ansible-playbook", "-i", inventory, "playbooks/lab.yml"]
        destroy = run_playbook(
            [*lab, "-e", "lab_state=absent"],
            logs / f"{hosts}-destroy.log",
            f"{hosts} hosts: lab destroyed",
            600,
        )
        create = run_playbook(
            [*lab, "-e", f"lab_workers={n}"],
            logs / f"{hosts}-create.log",
            f"{hosts} hosts: lab created",
            900,
        )
        if destroy.rc or create.rc:
            log(f"lab could not be recreated, see {logs}")
            return 1
        before = cache_entries(cache)
        site = ["ansible-playbook", "-i", inventory, "site.yml", *extra]
        cold = run_playbook(site, logs / f"{hosts}-cold.log", f"{hosts} hosts: cold rollout", 3600)
        # A cold rollout that failed (on a loaded machine, usually a transient connection
        # error) is finished by one more run before the re-run, which must then change
        # nothing; both times are reported, the cold one marked as failed.
        recovery = None
        if cold.rc:
            recovery = run_playbook(
                site,
                logs / f"{hosts}-recovery.log",
                f"{hosts} hosts: cold rollout finished by a second run",
                3600,
            )
        after = cache_entries(cache)
        # The re-run and the floor are measured on a cluster at rest, not one still starting
        # its replicas and agents after the rollout.
        rest_cpus = settle(f"{hosts} hosts")
        # The machine's speed drifts within minutes (a shared host), so each size gets
        # args.reruns re-runs, each followed by the lab's floor (bench/floor.yml: nothing but
        # no-op module runs on every host); the report gives medians and the spread.
        reruns: list[PlaybookRun] = []
        floors: list[PlaybookRun] = []
        rerun_attempts = 0
        for index in range(1, args.reruns + 1):
            # A re-run cut short by a transient connection error is no measurement: it is
            # tried again (up to 3 attempts), and the report says how many it took.
            for attempt in range(1, 4):
                rerun_attempts += 1
                rerun = run_playbook(
                    site,
                    logs / f"{hosts}-rerun-{index}-{attempt}.log",
                    f"{hosts} hosts: no-change re-run {index} (attempt {attempt})",
                    1800,
                )
                if rerun.rc == 0:
                    break
            reruns.append(rerun)
            floors.append(
                run_playbook(
                    [
                        "ansible-playbook",
                        "-i",
                        inventory,
                        FLOOR_PLAYBOOK,
                        "-e",
                        f"bench_floor_tasks={FLOOR_TASKS}",
                        *args.ansible_args,
                    ],
                    logs / f"{hosts}-floor-{index}.log",
                    f"{hosts} hosts: floor {index} (no-op module runs only)",
                    900,
                )
            )
            if rerun.rc:
                break
        rerun = median_run(reruns)
        floor = median_run(floors)
        new = {k: v for k, v in after.items() if k not in before}
        members = installed_wheelhouse(inventory, extra)
        archive = archive_bytes(cache, members)
        rows.append(
            {
                "workers": n,
                "hosts": hosts,
                "cold": asdict(cold),
                "recovery": asdict(recovery) if recovery else None,
                "rerun": asdict(rerun),
                "rerun_attempts": rerun_attempts,
                "reruns": [asdict(r) for r in reruns],
                "floor": asdict(floor),
                "floors": [asdict(f) for f in floors],
                "rest_cpus": rest_cpus,
                "downloaded_bytes": sum(v for k, v in new.items() if k.startswith("deps-")),
                "built_bytes": sum(v for k, v in new.items() if k.startswith("app-")),
                "packed_bytes": sum(v for k, v in new.items() if k.startswith("wheelhouse-")),
                "archive_bytes": archive,
                "shipped_cold_bytes": archive
                * (cold.unpacked_hosts + (recovery.unpacked_hosts if recovery else 0)),
                "shipped_rerun_bytes": archive * rerun.unpacked_hosts,
                "wheelhouse": members,
            }
        )
        if (recovery or cold).rc or rerun.rc:
            log(f"a rollout failed, see {logs}")
            break
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inventory": inventory,
        "cache": str(cache),
        "ansible_args": args.ansible_args,
        "git": git_describe(),
        "controller": machine(),
        "load_avg": os.getloadavg(),
    }
    report = render_provision(meta, rows)
    out.write_text(report)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(report)
    log(f"report: {out}")
    ok = all(r["cold"]["rc"] == 0 and r["rerun"]["rc"] == 0 for r in rows)
    # A failed cold rollout that a second run finished still fails the command (exit 1),
    # but the report says so and keeps the numbers.
    return 0 if ok and len(rows) == len(workers_list) else 1
