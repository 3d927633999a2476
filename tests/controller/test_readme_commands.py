"""The README still holds what CI runs as a new user would (scripts/check-readme-lab.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check-readme-lab.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_readme_lab", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_main_command_and_example_are_found(check) -> None:
    commands = check.readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert commands["main"] == "make lab"
    assert commands["destroy"] == "make lab-destroy"
    assert commands["curl"].startswith("curl -X POST http://localhost:")
    assert "/score/salience" in commands["curl"]
    assert check.answer_matches(commands["answer"], commands["answer"]) is None


def test_a_different_score_or_a_non_json_answer_fails_the_check(check) -> None:
    shown = '{"scores":[0.15],"status":"success","timestamp":1.0}'
    assert (
        check.answer_matches(shown, '{"scores":[0.15],"status":"success","timestamp":2.0}') is None
    )
    assert "0.2" in check.answer_matches(shown, '{"scores":[0.2],"status":"success"}')
    assert "not JSON" in check.answer_matches(shown, "Internal Server Error")


def test_a_readme_without_the_section_is_refused(check) -> None:
    with pytest.raises(check.ReadmeError, match="Two commands"):
        check.readme_commands("# rayforge\n\nNo commands here.\n")
