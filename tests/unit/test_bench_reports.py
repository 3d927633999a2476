"""The benchmark reports and their table cells (bench/cells.py, bench/serve_report.py,
bench/provision_report.py).

Proves: each cell is written as the reports print it (ms with two decimals below 100 ms,
rates with separators, %, x, MB, the spread of several runs); the Serve config is summed up
in one line; the serve targets are judged at the one-item load with the most connections;
the serve report's table row, targets and runs carry the computed medians and ratios, and a
kind of load that was not run has no table; the provisioning report's rows, targets, floor
table and per-role times are computed from its rows, a failed cold rollout finished by a
second run is said so, and a re-run that changed something does not count for a target.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest
from bench.cells import (
    fmt_mb,
    fmt_ms,
    fmt_percent,
    fmt_rate,
    fmt_spread,
    fmt_times,
)
from bench.playbook import PlaybookRun
from bench.provision_report import render_provision, role_of
from bench.serve_report import render_serve, serve_config_summary, serve_targets
from bench.stats import Summary, summarise_load
from bench.wrk import WrkRun

CONTROLLER = {
    "nproc": 2,
    "cpu": "Test CPU",
    "ram_gib": 8.0,
    "kernel": "6.1.0",
    "os": "Debian GNU/Linux 12",
    "docker": "20.10",
    "wrk": "4.1.0",
}


def test_cells():
    assert fmt_ms(4.5) == "4.50 ms"
    assert fmt_ms(99.5) == "99.50 ms"
    assert fmt_ms(144.4) == "144 ms"
    assert fmt_ms(None) == "-"
    assert fmt_rate(71.94) == "71.9"
    assert fmt_rate(1233.3) == "1,233"
    assert fmt_rate(159500.0) == "159,500"
    assert fmt_percent(0.8) == "80%"
    assert fmt_percent(None) == "-"
    assert fmt_times(0.916) == "0.92x"
    assert fmt_times(None) == "-"
    assert fmt_mb(123456789) == "123.5 MB"
    assert fmt_mb(0) == "0"
    assert fmt_spread([{"wall_s": 28.0}, {"wall_s": 27.0}, {"wall_s": 29.5}]) == (
        " (27.0-29.5, 3 runs)"
    )
    assert fmt_spread([{"wall_s": 28.0}]) == ""


def test_serve_config_summary():
    config = {
        "proxy_location": "EveryNode",
        "logging_config": {"encoding": "TEXT"},
        "applications": [
            {
                "name": "seedcore-ml",
                "logging_config": {"enable_access_log": False},
                "deployments": [
                    {
                        "name": "SalienceScorer",
                        "num_replicas": 2,
                        "max_ongoing_requests": 32,
                        "ray_actor_options": {"num_cpus": 1, "memory": 1073741824},
                    }
                ],
            },
            {"name": "other"},
        ],
    }
    assert serve_config_summary(config) == (
        'proxy_location EveryNode; logging_config {"encoding": "TEXT"}; seedcore-ml: '
        'SalienceScorer {"num_replicas":2,"max_ongoing_requests":32,"num_cpus":1}, '
        'logging_config {"enable_access_log": false}; other: code defaults'
    )
    assert serve_config_summary({}) == "proxy_location ?"


def small_summary(connections, ratio, p99_ratio, ratios, non_2xx=0, socket_errors=0):
    return Summary(
        f"1 item, {connections} conn",
        "small",
        1,
        connections,
        serve={"non_2xx": non_2xx, "socket_errors": socket_errors},
        ratio=ratio,
        p99_ratio=p99_ratio,
        ratios=ratios,
    )


def test_serve_targets_at_the_most_connections():
    small = [
        small_summary(32, 0.55, 3.5, [0.6, 0.5, 0.55]),
        small_summary(1, 0.95, 1.0, [0.95], non_2xx=9),
    ]
    assert serve_targets(small, []) == [
        "Targets (reported, not enforced):",
        "",
        "- Serve req/s at 32 connections >= 60 % of bare: 55% (not met, pairs 50% to 60%)",
        "- Serve p99 at 32 connections <= 3x bare: 3.50x (not met)",
        "- Zero non-2xx and socket errors on Serve: 0 (met)",
        "- Every answer checked before the load (scores compared): all correct",
    ]


def test_serve_targets_met_without_p99_and_with_wrong_answers():
    lines = serve_targets([small_summary(32, 0.6, None, [0.6], socket_errors=2)], ["a", "b"])
    assert lines[2:] == [
        "- Serve req/s at 32 connections >= 60 % of bare: 60% (met)",
        "- Serve p99 at 32 connections <= 3x bare: -",
        "- Zero non-2xx and socket errors on Serve: 2 (not met)",
        "- Every answer checked before the load (scores compared): WRONG: a; b",
    ]
    assert serve_targets([], []) == [
        "Targets (reported, not enforced):",
        "",
        "- Every answer checked before the load (scores compared): all correct",
    ]


def serve_context():
    return {
        "inventory": "inventories/lab",
        "hosts": 3,
        "workers": 2,
        "ray_version": "2.0",
        "uvicorn_version": "0.1",
        "serve_url": "http://10.0.0.2:8000",
        "bare_url": "http://10.0.0.2:8100",
        "path": "/score/salience",
        "application": "seedcore-ml",
        "replicas": 2,
        "bare_command": "python -m uvicorn salience.asgi:app --workers 2 --port 8100",
        "serve_env": [],
        "serve_config": {"proxy_location": "EveryNode"},
    }


def test_render_serve():
    scenario = "1 item, 32 conn"
    serve = [
        WrkRun("serve", scenario, 1, 32, 1, 10.0, 6000, 600.0, 20.0, 80.0, non_2xx=1),
        WrkRun("serve", scenario, 1, 32, 2, 10.0, 8000, 800.0, 30.0, 120.0),
    ]
    bare = [
        WrkRun("bare", scenario, 1, 32, 1, 10.0, 10000, 1000.0, 10.0, 40.0),
        WrkRun("bare", scenario, 1, 32, 2, 10.0, 10000, 1000.0, 12.0, 40.0),
    ]
    meta = {
        "started": "2000-01-01T00:00:00+00:00",
        "finished": "2000-01-01T00:01:00+00:00",
        "git": "abc1234",
        "controller": CONTROLLER,
        "load_before": [1.25, 1.0, 1.0],
        "load_after": [2.0, 1.0, 1.0],
        "settings": {"reps": 2, "duration": 10, "warmup": 2},
    }
    summary = summarise_load(scenario, "small", 1, 32, serve, bare)
    report = render_serve(serve_context(), meta, [summary], [*serve, *bare], [])
    lines = report.splitlines()
    assert lines[0] == "# Serve vs bare uvicorn: current settings"
    assert "- Serve environment (head): Ray defaults" in lines
    assert "- Head host: ?" in lines
    assert (
        "- Controller: 2 CPUs (Test CPU), 8.0 GiB RAM, Debian GNU/Linux 12, kernel 6.1.0, "
        "Docker 20.10, wrk 4.1.0; load average 1.2 before, 2.0 after"
    ) in lines
    assert (
        "| 1 item, 32 conn | 700 | 1,000 | **70%** | 25.00 ms | 11.00 ms | 100 ms | 40.00 ms "
        "| 2.50x | 1/0 | 0/0 |"
    ) in lines
    assert "- Serve req/s at 32 connections >= 60 % of bare: 70% (met, pairs 60% to 80%)" in lines
    assert "- Serve p99 at 32 connections <= 3x bare: 2.50x (met)" in lines
    assert "- Zero non-2xx and socket errors on Serve: 1 (not met)" in lines
    assert "| 1 item, 32 conn | 1 | serve | 600 | 20.00 ms | 80.00 ms | 6000 | 1 | 0 |" in lines
    assert not any("items/s" in line for line in lines)
    assert report.endswith("</details>\n")


def playbook_run(wall_s, rc=0, changed=0, unpacked=0, tasks=(), busy=0.0, capacity=0.0):
    return asdict(
        PlaybookRun("x", wall_s, rc, changed, 0, unpacked, list(tasks), "x.log", busy, capacity)
    )


ARCHIVE = 98765432


def provision_rows(rerun_changed=0, rerun_3_s=28.0):
    tasks = [("ray_node : Wheelhouse is unpacked on the host", 3.0), ("ray_serve : Apply", 1.0)]
    three = {
        "workers": 2,
        "hosts": 3,
        "cold": playbook_run(400.0, unpacked=3),
        "recovery": None,
        "rerun": playbook_run(rerun_3_s, changed=rerun_changed, tasks=tasks, busy=10, capacity=40),
        "rerun_attempts": 4,
        "reruns": [playbook_run(27.0), playbook_run(rerun_3_s), playbook_run(29.5)],
        "floor": playbook_run(12.0),
        "floors": [playbook_run(12.0), playbook_run(13.0)],
        "rest_cpus": 0.42,
        "downloaded_bytes": 123456789,
        "built_bytes": 0,
        "archive_bytes": ARCHIVE,
        "shipped_cold_bytes": ARCHIVE * 3,
        "shipped_rerun_bytes": 0,
    }
    five = {
        "workers": 4,
        "hosts": 5,
        "cold": playbook_run(404.0, rc=2),
        "recovery": playbook_run(300.0, unpacked=2),
        "rerun": playbook_run(35.0),
        "rerun_attempts": 1,
        "reruns": [],
        "floor": playbook_run(20.0),
        "floors": [],
        "rest_cpus": 0.5,
        "downloaded_bytes": 0,
        "built_bytes": 0,
        "archive_bytes": ARCHIVE,
        "shipped_cold_bytes": ARCHIVE * 2,
        "shipped_rerun_bytes": 0,
    }
    return [three, five]


PROVISION_META = {
    "started": "a",
    "finished": "b",
    "git": "abc1234",
    "inventory": "inventories/lab",
    "cache": "/cache/wheelhouse",
    "ansible_args": ["-e", "x=y"],
    "controller": CONTROLLER,
    "load_avg": [3.33, 1.0, 1.0],
}


def test_render_provision():
    lines = render_provision(PROVISION_META, provision_rows()).splitlines()
    assert lines[0] == "# Provisioning: cold rollout and no-change re-run"
    assert (
        "- Inventory: inventories/lab (lab recreated for each size: 1 head + N workers); "
        "site.yml run with `-e x=y`"
    ) in lines
    assert (
        "| 1 + 2 | 400 s | 28.0 s (27.0-29.5, 3 runs) (1 retried) | 0 | 123.5 MB | 0 "
        "| 98.8 MB | 296.3 MB (3 hosts) | 0 |"
    ) in lines
    assert (
        "| 1 + 4 | 404 s (failed; a second run finished it in 300 s) | 35.0 s | 0 | 0 | 0 "
        "| 98.8 MB | 197.5 MB (2 hosts) | 0 |"
    ) in lines
    assert "- No-change re-run on 3 hosts <= 30 s: 28.0 s (met)" in lines
    assert "- 5-host re-run <= 1.3x the 3-host one: 1.25x (met)" in lines
    assert "- Re-runs change nothing: 3 hosts changed=0, 5 hosts changed=0" in lines
    # The floor table: the lab's own cost beside each re-run.
    assert (
        "| 1 + 2 | 28.0 s | 10 of 40 CPU-s (25%) | 0.42 CPUs | 12.0 s (12.0-13.0, 2 runs) |"
    ) in lines
    assert "| 1 + 4 | 35.0 s | 0 of 0 CPU-s | 0.50 CPUs | 20.0 s |" in lines
    assert any(line.startswith("- 5 hosts / 3 hosts: re-run 1.25x, floor 1.67x ") for line in lines)
    # Where the 3-host re-run's time goes; the 5-host re-run has no task times.
    assert (
        "No-change re-run on 3 hosts: where the 28.0 s go (profile_tasks; tasks sum to 4.0 s)"
    ) in lines
    assert "| ray_node | 3.0 | 75% |" in lines
    assert "| ray_serve | 1.0 | 25% |" in lines
    assert "| ray_node : Wheelhouse is unpacked on the host | 3.00 |" in lines
    assert not any(line.startswith("No-change re-run on 5 hosts") for line in lines)


def test_render_provision_counts_only_unchanged_reruns_for_targets():
    lines = render_provision(PROVISION_META, provision_rows(rerun_changed=2)).splitlines()
    assert not any(line.startswith("- No-change re-run on 3 hosts") for line in lines)
    assert "- Re-runs change nothing: 3 hosts changed=2, 5 hosts changed=0" in lines
    lines = render_provision(PROVISION_META, provision_rows(rerun_3_s=31.0)).splitlines()
    assert "- No-change re-run on 3 hosts <= 30 s: 31.0 s (not met)" in lines
    assert "- 5-host re-run <= 1.3x the 3-host one: 1.13x (met)" in lines


@pytest.mark.parametrize(
    ("task", "role"),
    [
        ("ray_node : Wheelhouse is unpacked on the host", "ray_node"),
        ("ray_serve : Config : applied", "ray_serve"),
        ("Gathering Facts", "(play)"),
    ],
)
def test_role_of(task, role):
    assert role_of(task) == role
