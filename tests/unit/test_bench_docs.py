"""Copying a report into docs/benchmarks.md (bench/docs.py).

Proves: the report's title becomes the section's "Latest run" line and nothing else of it
changes; only the named section between its markers is replaced, with one blank line either
side, the rest of the page (other sections included) kept byte for byte; a page without the
markers is refused and left unchanged; docs/benchmarks.md has both sections the command
writes.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from bench.docs import docs_body, replace_section, run_docs, section_markers

REPO = Path(__file__).resolve().parents[2]

PAGE = """\
# Benchmarks

<!-- BEGIN bench:serve -->
old serve table
<!-- END bench:serve -->

## Provisioning

<!-- BEGIN bench:provision -->

old provision table

<!-- END bench:provision -->
trailing text
"""


def test_docs_body_makes_the_title_a_latest_run_line():
    report = "\n# Provisioning: cold rollout\n\n| a | b |\n# not a title\n\n"
    assert docs_body(report) == (
        "Latest run: **Provisioning: cold rollout** (`bench/run.sh`)\n\n| a | b |\n# not a title"
    )


def test_replace_section_replaces_only_that_section():
    updated = replace_section(PAGE, "provision", "NEW TABLE")
    assert updated == PAGE.replace(
        "<!-- BEGIN bench:provision -->\n\nold provision table\n\n",
        "<!-- BEGIN bench:provision -->\n\nNEW TABLE\n\n",
    )
    updated = replace_section(PAGE, "serve", "S")
    assert "<!-- BEGIN bench:serve -->\n\nS\n\n<!-- END bench:serve -->\n\n## Provisioning" in (
        updated
    )
    assert updated.endswith("old provision table\n\n<!-- END bench:provision -->\ntrailing text\n")


def test_replace_section_twice_gives_the_same_page():
    once = replace_section(PAGE, "serve", "S")
    assert replace_section(once, "serve", "S") == once


@pytest.mark.parametrize(
    "page",
    [PAGE.replace("<!-- END bench:serve -->", ""), PAGE.replace("<!-- BEGIN bench:serve -->", "")],
)
def test_replace_section_refuses_a_page_without_the_markers(page):
    markers = "no <!-- BEGIN bench:serve --> ... <!-- END bench:serve --> section"
    with pytest.raises(ValueError, match=re.escape(markers)):
        replace_section(page, "serve", "S")


def test_run_docs_writes_the_report_into_the_page(tmp_path, capsys):
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE)
    report = tmp_path / "run-serve.md"
    report.write_text("# Serve vs bare uvicorn: x\n\n| t |\n")
    args = argparse.Namespace(doc=str(page), report=str(report), section="serve")
    assert run_docs(args) == 0
    assert page.read_text() == PAGE.replace(
        "old serve table\n",
        "\nLatest run: **Serve vs bare uvicorn: x** (`bench/run.sh`)\n\n| t |\n\n",
    )
    assert capsys.readouterr().out == f"{page}: section serve updated from {report}\n"


def test_run_docs_leaves_a_page_without_markers_unchanged(tmp_path, capsys):
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n")
    args = argparse.Namespace(doc=str(page), report="never-read.md", section="provision")
    assert run_docs(args) == 1
    assert page.read_text() == "# Benchmarks\n"
    assert capsys.readouterr().err == (
        f"{page} has no <!-- BEGIN bench:provision --> ... <!-- END bench:provision --> section\n"
    )


@pytest.mark.parametrize("section", ["serve", "provision"])
def test_the_benchmarks_page_has_the_sections(section):
    text = (REPO / "docs" / "benchmarks.md").read_text()
    begin, end = section_markers(section)
    assert text.count(begin) == 1
    assert text.count(end) == 1
    assert text.index(begin) < text.index(end)
