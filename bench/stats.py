"""The statistics of the reports: medians of runs, and Serve/bare ratios of runs made back
to back."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .playbook import PlaybookRun
from .wrk import WrkRun


@dataclass
class Summary:
    """One load of the serve benchmark, both targets summarised (see :func:`summarise`).

    ``kind`` is "small" (one-item requests) or "batch"; ``ratio`` and ``p99_ratio`` are the
    medians of the back-to-back pairs' Serve/bare ratios of req/s and p99 (None without a
    pair), ``ratios`` the req/s ratios of the pairs, in run order.
    """

    scenario: str
    kind: str
    items: int
    connections: int
    serve: dict = field(default_factory=dict)
    bare: dict = field(default_factory=dict)
    # Median over the runs of (Serve run k / bare run k): each pair ran back to back, so
    # the machine's load drift cancels out better than in the ratio of the medians.
    ratio: float | None = None
    p99_ratio: float | None = None
    ratios: list[float] = field(default_factory=list)


def median(values: list[float | None]) -> float | None:
    """The median of the values that are not None; None when there is none."""
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def summarise(runs: list[WrkRun]) -> dict:
    """One target's runs of one load, summarised.

    Medians and extremes over the runs without an error: ``rps``, ``rps_min``, ``rps_max``,
    ``items_per_s`` (0.0 without such a run), ``p50_ms``, ``p99_ms`` (milliseconds, None
    without one); sums over every run: ``requests``, ``non_2xx``, ``socket_errors``; and
    ``runs``, ``failed_runs`` and ``errors`` (the distinct error texts, sorted).
    """
    ok = [r for r in runs if not r.error]
    return {
        "runs": len(runs),
        "failed_runs": len(runs) - len(ok),
        "rps": median([r.rps for r in ok]) or 0.0,
        "rps_min": min((r.rps for r in ok), default=0.0),
        "rps_max": max((r.rps for r in ok), default=0.0),
        "items_per_s": median([r.items_per_s for r in ok]) or 0.0,
        "p50_ms": median([r.p50_ms for r in ok]),
        "p99_ms": median([r.p99_ms for r in ok]),
        "requests": sum(r.requests for r in runs),
        "non_2xx": sum(r.non_2xx for r in runs),
        "socket_errors": sum(r.socket_errors for r in runs),
        "errors": sorted({r.error for r in runs if r.error}),
    }


def pair_ratios(serve: list[WrkRun], bare: list[WrkRun], attr: str) -> list[float]:
    """Serve/bare ratio of ``attr`` (a WrkRun field, e.g. "rps" or "p99_ms") for each pair
    of runs k (serve[k], bare[k]), in order.

    A pair is left out when either run has an error or either value is 0 or None; runs
    without a partner (lists of unequal length) are ignored.
    """
    ratios = []
    for s, b in zip(serve, bare, strict=False):
        a, c = getattr(s, attr), getattr(b, attr)
        if not s.error and not b.error and a and c:
            ratios.append(a / c)
    return ratios


def paired(serve: list[WrkRun], bare: list[WrkRun], attr: str) -> float | None:
    """The median of :func:`pair_ratios`; None when no pair counts."""
    ratios = pair_ratios(serve, bare, attr)
    return statistics.median(ratios) if ratios else None


def summarise_load(
    scenario: str,
    kind: str,
    items: int,
    connections: int,
    serve: list[WrkRun],
    bare: list[WrkRun],
) -> Summary:
    """The Summary of one load from each target's measured runs (in run order, so that
    serve[k] and bare[k] ran back to back)."""
    return Summary(
        scenario,
        kind,
        items,
        connections,
        summarise(serve),
        summarise(bare),
        paired(serve, bare, "rps"),
        paired(serve, bare, "p99_ms"),
        pair_ratios(serve, bare, "rps"),
    )


def median_run(runs: list[PlaybookRun]) -> PlaybookRun:
    """The run of median wall time (the lower middle one of an even count); the last failed
    run (rc not 0) if any failed, so a failure is never hidden by the others.

    Raises IndexError when ``runs`` is empty.
    """
    failed = [r for r in runs if r.rc]
    if failed:
        return failed[-1]
    ordered = sorted(runs, key=lambda r: r.wall_s)
    return ordered[(len(ordered) - 1) // 2]
