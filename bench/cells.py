"""How one value is written in a report's markdown table cell."""

from __future__ import annotations


def fmt_ms(value: float | None) -> str:
    """A latency in milliseconds: two decimals below 100 ms (``"4.50 ms"``), none from 100 ms
    (``"144 ms"``); ``"-"`` for None."""
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def fmt_rate(value: float) -> str:
    """A rate (req/s, items/s) with thousands separators: no decimal from 100
    (``"1,233"``), one below (``"71.9"``)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def fmt_percent(ratio: float | None) -> str:
    """A ratio as a whole percentage (0.8 gives ``"80%"``); ``"-"`` for None."""
    return "-" if ratio is None else f"{ratio:.0%}"


def fmt_times(ratio: float | None) -> str:
    """A ratio as a factor with two decimals (0.8 gives ``"0.80x"``); ``"-"`` for None."""
    return "-" if ratio is None else f"{ratio:.2f}x"


def fmt_mb(n: int) -> str:
    """Bytes in megabytes (10^6) with one decimal (``"123.5 MB"``); ``"0"`` for 0."""
    return f"{n / 1e6:,.1f} MB" if n else "0"


def fmt_spread(runs: list[dict]) -> str:
    """``" (min-max, n runs)"`` of the ``wall_s`` seconds of several runs (PlaybookRun
    dicts); ``""`` for fewer than two."""
    if len(runs) < 2:
        return ""
    walls = [r["wall_s"] for r in runs]
    return f" ({min(walls):.1f}-{max(walls):.1f}, {len(walls)} runs)"
