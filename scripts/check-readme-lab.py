#!/usr/bin/env python3
"""Run the README's main command as a new user would, and check what the README promises.

    scripts/check-readme-lab.py [--readme README.md]

Reads README.md (not a copy of it) and runs, through bash from the repository root:

1. the ``make lab`` line of the first console block under "## Two commands";
2. the first ``$ curl`` example after it (continuation lines joined as bash would), and
   checks that its JSON answer has the ``scores`` and ``status`` the README shows beside it
   (other keys, such as the timestamp, may differ);
3. the README's ``make lab-destroy``, then checks that Docker has no container and no network
   labelled ``rayforge.lab`` left.

Each step has a time limit (seconds: LAB_TIMEOUT 1800, CURL_TIMEOUT 60, DESTROY_TIMEOUT 600).
The lab is destroyed even when an earlier step failed. Prints each step's wall time; exits 0
when every check passed, 1 otherwise, 2 when the README no longer has what it looks for.
Needs only Python's standard library (it runs before the tooling venv exists).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB_TIMEOUT = 1800
CURL_TIMEOUT = 60
DESTROY_TIMEOUT = 600
LAB_LABEL = "rayforge.lab"
CHECKED_KEYS = ("scores", "status")


class ReadmeError(Exception):
    """The README does not have the command or example this script runs."""


def console_blocks(text: str) -> list[tuple[int, list[str]]]:
    """Every ```console block: (offset of its opening fence, its lines)."""
    return [
        (match.start(), match.group(1).splitlines())
        for match in re.finditer(r"^```console\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    ]


def readme_commands(text: str) -> dict[str, str]:
    """The main command, the curl example, its shown answer and the destroy command."""
    section = text.find("\n## Two commands")
    if section < 0:
        raise ReadmeError("no '## Two commands' section")
    blocks = [(at, lines) for at, lines in console_blocks(text) if at > section]
    if not blocks:
        raise ReadmeError("no console block under '## Two commands'")
    main = next((line for line in blocks[0][1] if line.startswith("make lab")), None)
    if main is None:
        raise ReadmeError("the first console block under '## Two commands' has no 'make lab'")
    for _, lines in blocks[1:]:
        if lines and lines[0].startswith("$ curl "):
            break
    else:
        raise ReadmeError("no '$ curl' example after the main command")
    command_lines = [lines[0][2:]]
    rest = lines[1:]
    while command_lines[-1].endswith("\\") and rest:
        command_lines.append(rest.pop(0))
    if not rest:
        raise ReadmeError("the curl example shows no answer")
    destroy = re.search(r"`(make lab-destroy)`", text[section:])
    if destroy is None:
        raise ReadmeError("no `make lab-destroy` under '## Two commands'")
    return {
        "main": main.split("#", 1)[0].strip(),
        "curl": "\n".join(command_lines),
        "answer": rest[0],
        "destroy": destroy.group(1),
    }


def run(command: str, timeout: int, capture: bool = False) -> tuple[int, str, float]:
    """bash -c COMMAND from the repository root: (exit status, stdout if captured, seconds)."""
    print(f"\n+ {command}", flush=True)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            text=True,
            timeout=timeout,
            check=False,
        )
        rc, out = proc.returncode, proc.stdout or ""
    except subprocess.TimeoutExpired as exc:
        rc, out = 124, ""
        print(f"timed out after {exc.timeout} s", flush=True)
    seconds = time.monotonic() - start
    print(f"--- exit {rc} in {seconds:.1f} s", flush=True)
    return rc, out, seconds


def answer_matches(shown: str, got: str) -> str | None:
    """None when GOT has the checked keys of the README's SHOWN answer, else what differs."""
    want = json.loads(shown)
    try:
        have = json.loads(got)
    except json.JSONDecodeError:
        return f"not JSON: {got!r}"
    if not isinstance(have, dict):
        return f"not a JSON object: {got!r}"
    keys = [key for key in CHECKED_KEYS if have.get(key) != want.get(key)]
    if not keys:
        return None
    return f"expected { {k: want.get(k) for k in keys} }, got { {k: have.get(k) for k in keys} }"


def lab_leftovers() -> list[str]:
    """Containers and networks labelled as the lab's, as 'kind name' lines."""
    left = []
    for kind, argv in (
        ("container", ["docker", "ps", "--all", "--format", "{{.Names}}"]),
        ("network", ["docker", "network", "ls", "--format", "{{.Name}}"]),
    ):
        out = subprocess.run(
            [*argv, "--filter", f"label={LAB_LABEL}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        left += [f"{kind} {name}" for name in out.split()]
    return left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    try:
        commands = readme_commands(args.readme.read_text(encoding="utf-8"))
    except ReadmeError as exc:
        print(f"check-readme-lab: {args.readme}: {exc}", file=sys.stderr)
        return 2

    failures = []
    times = {}
    rc, _, times["main"] = run(commands["main"], LAB_TIMEOUT)
    if rc != 0:
        failures.append(f"'{commands['main']}' exited {rc}")
    else:
        rc, out, times["curl"] = run(commands["curl"], CURL_TIMEOUT, capture=True)
        print(out, flush=True)
        problem = f"exited {rc}" if rc != 0 else answer_matches(commands["answer"], out.strip())
        if problem:
            failures.append(f"the README's curl: {problem}")
    rc, _, times["destroy"] = run(commands["destroy"], DESTROY_TIMEOUT)
    if rc != 0:
        failures.append(f"'{commands['destroy']}' exited {rc}")
    left = lab_leftovers()
    if left:
        failures.append(f"left after '{commands['destroy']}': {', '.join(left)}")

    print("\nREADME lab check: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    for failure in failures:
        print(f"FAIL: {failure}")
    print("README lab check: " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
