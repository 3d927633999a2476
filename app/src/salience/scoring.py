"""Pure scoring functions (no I/O, no framework imports).

salience = task_risk x failure_severity. A list comprehension over (risk, severity)
pairs is plenty fast for 10,000-item batches (a few hundred microseconds) and keeps
the package free of numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol


class Features(Protocol):
    """Anything with the two inputs of a score, each a float in [0, 1] (not checked here)."""

    @property
    def task_risk(self) -> float: ...

    @property
    def failure_severity(self) -> float: ...


def salience(task_risk: float, failure_severity: float) -> float:
    """Salience of a single item."""
    return task_risk * failure_severity


def score_pairs(pairs: Iterable[tuple[float, float]]) -> list[float]:
    """Score ``(task_risk, failure_severity)`` pairs."""
    return [risk * severity for risk, severity in pairs]


def score_features(features: Sequence[Features]) -> list[float]:
    """Score validated feature items (anything with the two attributes)."""
    return [item.task_risk * item.failure_severity for item in features]
