"""The statistics of the benchmark reports (bench/stats.py).

Proves: a median ignores None and is None without values; a target's summary takes medians
and extremes over the runs without an error but sums requests, non-2xx and socket errors
over every run; the Serve/bare ratio is the median of the back-to-back pairs' ratios (not the
ratio of the medians), leaving out a pair with an error or a zero and any unpaired run; a
load's Summary carries both; the median playbook run is the lower middle one, and a failed
run is reported whenever there is one.
"""

from __future__ import annotations

import pytest
from bench.playbook import PlaybookRun
from bench.stats import (
    median,
    median_run,
    pair_ratios,
    paired,
    summarise,
    summarise_load,
)
from bench.wrk import WrkRun


def wrk_run(target, rep, rps, p99_ms=None, **kwargs):
    return WrkRun(target, "1 item, 32 conn", 1, 32, rep, rps=rps, p99_ms=p99_ms, **kwargs)


def playbook_run(wall_s, rc=0, label=""):
    return PlaybookRun(label, wall_s, rc, 0, 0, 0, [], "x.log")


def test_median_ignores_none():
    assert median([None, 3.0, 1.0]) == 2.0
    assert median([5.0, None, 1.0, 4.0]) == 4.0
    assert median([None]) is None
    assert median([]) is None


def test_summarise_takes_medians_over_good_runs_and_sums_over_all():
    runs = [
        WrkRun("serve", "s", 10, 4, 1, requests=1000, rps=100.0, p50_ms=5.0, p99_ms=50.0),
        WrkRun("serve", "s", 10, 4, 2, requests=3000, rps=300.0, p50_ms=7.0, p99_ms=90.0),
        WrkRun("serve", "s", 10, 4, 3, requests=2000, rps=200.0, p50_ms=6.0, non_2xx=4),
        WrkRun("serve", "s", 10, 4, 4, requests=10, rps=9999.0, socket_errors=3, error="boom"),
    ]
    summary = summarise(runs)
    assert summary == {
        "runs": 4,
        "failed_runs": 1,
        "rps": 200.0,
        "rps_min": 100.0,
        "rps_max": 300.0,
        "items_per_s": 2000.0,
        "p50_ms": 6.0,
        "p99_ms": 70.0,  # the run without a p99 is left out
        "requests": 6010,
        "non_2xx": 4,
        "socket_errors": 3,
        "errors": ["boom"],
    }


def test_summarise_of_failed_runs_only():
    summary = summarise(
        [WrkRun("bare", "s", 1, 1, 1, error="b"), WrkRun("bare", "s", 1, 1, 2, error="a")]
    )
    assert (summary["rps"], summary["rps_min"], summary["p50_ms"]) == (0.0, 0.0, None)
    assert summary["errors"] == ["a", "b"]


def test_ratio_is_the_median_of_back_to_back_pairs():
    serve = [wrk_run("serve", 1, 100.0), wrk_run("serve", 2, 300.0), wrk_run("serve", 3, 200.0)]
    bare = [wrk_run("bare", 1, 200.0), wrk_run("bare", 2, 400.0), wrk_run("bare", 3, 250.0)]
    assert pair_ratios(serve, bare, "rps") == pytest.approx([0.5, 0.75, 0.8])
    assert paired(serve, bare, "rps") == pytest.approx(0.75)
    # Not the ratio of the medians (200 / 250).
    assert paired(serve, bare, "rps") != pytest.approx(0.8)


def test_pairs_with_an_error_a_zero_or_no_partner_are_left_out():
    serve = [
        wrk_run("serve", 1, 100.0, p99_ms=30.0),
        wrk_run("serve", 2, 100.0, p99_ms=30.0, error="timeout"),
        wrk_run("serve", 3, 0.0, p99_ms=None),
        wrk_run("serve", 4, 90.0, p99_ms=60.0),
        wrk_run("serve", 5, 50.0, p99_ms=10.0),
    ]
    bare = [
        wrk_run("bare", 1, 400.0, p99_ms=10.0),
        wrk_run("bare", 2, 100.0, p99_ms=10.0),
        wrk_run("bare", 3, 100.0, p99_ms=10.0),
        wrk_run("bare", 4, 100.0, p99_ms=20.0),
    ]
    assert pair_ratios(serve, bare, "rps") == pytest.approx([0.25, 0.9])
    assert pair_ratios(serve, bare, "p99_ms") == pytest.approx([3.0, 3.0])
    assert paired(serve, bare, "rps") == pytest.approx(0.575)


def test_no_pair_gives_no_ratio():
    assert (
        paired([wrk_run("serve", 1, 100.0, error="x")], [wrk_run("bare", 1, 100.0)], "rps") is None
    )
    assert paired([], [], "rps") is None


def test_summarise_load_carries_both_targets_and_the_ratios():
    serve = [wrk_run("serve", 1, 600.0, p99_ms=80.0), wrk_run("serve", 2, 800.0, p99_ms=120.0)]
    bare = [wrk_run("bare", 1, 1000.0, p99_ms=40.0), wrk_run("bare", 2, 1000.0, p99_ms=40.0)]
    summary = summarise_load("1 item, 32 conn", "small", 1, 32, serve, bare)
    assert (summary.scenario, summary.kind, summary.items, summary.connections) == (
        "1 item, 32 conn",
        "small",
        1,
        32,
    )
    assert summary.serve["rps"] == 700.0
    assert summary.bare["rps"] == 1000.0
    assert summary.ratio == pytest.approx(0.7)
    assert summary.p99_ratio == pytest.approx(2.5)
    assert summary.ratios == pytest.approx([0.6, 0.8])


def test_median_run_is_the_lower_middle_one():
    runs = [
        playbook_run(30.0, label="a"),
        playbook_run(10.0, label="b"),
        playbook_run(20.0, label="c"),
    ]
    assert median_run(runs).label == "c"
    runs.append(playbook_run(40.0, label="d"))
    assert median_run(runs).label == "c"
    assert median_run([playbook_run(5.0, label="only")]).label == "only"


def test_median_run_reports_the_last_failure():
    runs = [
        playbook_run(10.0, label="ok"),
        playbook_run(99.0, rc=2, label="first failure"),
        playbook_run(20.0, rc=-1, label="timed out"),
        playbook_run(15.0, label="ok too"),
    ]
    assert median_run(runs).label == "timed out"


def test_median_run_of_nothing_is_an_error():
    with pytest.raises(IndexError):
        median_run([])
