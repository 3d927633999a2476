"""The `docs` subcommand: copy a report into docs/benchmarks.md, between the section's
``<!-- BEGIN bench:NAME -->`` and ``<!-- END bench:NAME -->`` markers."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def section_markers(section: str) -> tuple[str, str]:
    """The BEGIN and END markers of ``section`` ("serve" or "provision") in the page."""
    return f"<!-- BEGIN bench:{section} -->", f"<!-- END bench:{section} -->"


def docs_body(report: str) -> str:
    """A report as it goes into the page: surrounding blank space stripped, and its first
    ``# title`` line made ``Latest run: **title** (`bench/run.sh`)``, since the headings are
    the page's own."""
    return re.sub(
        r"^# (.+)$", r"Latest run: **\1** (`bench/run.sh`)", report.strip(), count=1, flags=re.M
    )


def replace_section(text: str, section: str, body: str) -> str:
    """``text`` (the page) with everything between the first BEGIN and the next END marker
    of ``section`` replaced by ``body``, one blank line either side; the rest unchanged.

    Raises ValueError when either marker is missing.
    """
    begin, end = section_markers(section)
    if begin not in text or end not in text:
        raise ValueError(f"no {begin} ... {end} section")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{begin}\n\n{body}\n\n{end}{tail}"


def run_docs(args: argparse.Namespace) -> int:
    """`bench.py docs REPORT --section serve|provision [--doc PAGE]`: write the markdown
    report ``args.report`` into the section ``args.section`` of ``args.doc`` (default
    docs/benchmarks.md).

    Exit status: 0; 1 (the page unchanged) when the page lacks the section's markers.
    Raises OSError when a file cannot be read or written.
    """
    doc = Path(args.doc)
    text = doc.read_text()
    begin, end = section_markers(args.section)
    if begin not in text or end not in text:
        print(f"{doc} has no {begin} ... {end} section", file=sys.stderr)
        return 1
    body = docs_body(Path(args.report).read_text())
    doc.write_text(replace_section(text, args.section, body))
    print(f"{doc}: section {args.section} updated from {args.report}")
    return 0
