# Copyright: rayforge contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE at the repository root)
"""The metric names a PromQL expression reads, for the tests of the alert rules: the unit
test that checks each name against Ray's source, and the cluster scenario's test that checks
each against what the running cluster's Prometheus has stored."""

from __future__ import annotations

import re

# PromQL words that are not metric names.
PROMQL_WORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names EXPR reads: its words, less label matchers, grouping label lists,
    range selectors, functions, keywords and numbers."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    words = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr):
        if not expr[match.end() :].lstrip().startswith("("):  # a function
            words.add(match.group())
    return {w for w in words if w.lower() not in PROMQL_WORDS}
