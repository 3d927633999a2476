"""The documentation's commands and references still match the repository.

Reads README.md, docs/*.md and the roles' generated READMEs (roles/*/README.md) and fails,
naming the file, the line and the reference, when:

* a repository path no longer exists: one in backticks, in a console/bash/shell block, or in
  the text under a top-level directory of the repository (``playbooks/status.yml``,
  ``roles/ray_serve``, ``inventories/<env>``: ``<...>`` stands for any name); a bare file name
  (``start.yml``) must be some file's name; a path a block creates first (``cp -r A B``)
  counts from then on, and so do paths under what .gitignore names (``bench/results/``);
* a variable that looks like a role variable (its prefix, such as ``ray_`` or ``upgrade_``, is
  one of the prefixes of the variables the roles' argument specs, defaults and vars define and
  the playbooks read as extra vars) is defined nowhere: in backticks alone or as
  ``name: value`` / ``name=value`` / ``name/path``, given with ``-e`` in a command, or as a
  top-level key of a YAML block;
* ``make <target>`` names a target the Makefile lacks;
* a relative Markdown link, or its ``#anchor``, does not resolve.

Every fact (paths, variables, prefixes, targets, role and module names) is read from the
repository; nothing is listed here by hand.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# Directories that are tool state, not the repository's content.
SKIP_DIRS = {
    ".git",
    ".ansible",
    ".cache",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    ".venv",
    "__pycache__",
    "node_modules",
}
SHELL_BLOCKS = {"console", "bash", "sh", "shell"}
YAML_BLOCKS = {"yaml", "yml"}
# File names checked even without a directory: what the playbooks, roles and scripts are.
FILE_SUFFIXES = (".yml", ".yaml", ".py", ".sh", ".j2", ".md", ".cfg", ".toml", ".txt")

IDENTIFIER = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+(?P<target>[A-Za-z][\w-]*)")
EXTRA_VAR = re.compile(r"(?:-e|--extra-vars)\s+(?P<value>'[^']*'|\"[^\"]*\"|\S+)")
JSON_KEY = re.compile(r"\"(" + IDENTIFIER + r")\"\s*:")
PLACEHOLDER = re.compile(r"<[^<>/]*>")


@dataclass
class Facts:
    """What the repository holds, read once from ROOT."""

    root: Path
    files: set[str] = field(default_factory=set)  # every file, relative, with "/"
    dirs: set[str] = field(default_factory=set)
    top_level: set[str] = field(default_factory=set)
    basenames: set[str] = field(default_factory=set)
    ignored: list[str] = field(default_factory=list)  # .gitignore's entries
    variables: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    not_variables: set[str] = field(default_factory=set)  # roles, modules, nested keys
    make_targets: set[str] = field(default_factory=set)


def _role_yaml() -> Any:
    """scripts/role_yaml.py, the YAML helpers the role-docs generator uses too."""
    spec = importlib.util.spec_from_file_location("role_yaml", REPO / "scripts" / "role_yaml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_Loader = _role_yaml().AnsibleLoader


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return None


def _nested_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _nested_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nested_keys(item)


def _set_fact_names(tasks: Any) -> Iterator[str]:
    """Names set by set_fact or registered anywhere in a task file's tasks (blocks included)."""
    if isinstance(tasks, list):
        for task in tasks:
            yield from _set_fact_names(task)
    elif isinstance(tasks, dict):
        for key in ("set_fact", "ansible.builtin.set_fact"):
            if isinstance(tasks.get(key), dict):
                yield from (str(name) for name in tasks[key])
        if isinstance(tasks.get("register"), str):
            yield tasks["register"]
        for key in ("block", "rescue", "always"):
            yield from _set_fact_names(tasks.get(key))


def repo_facts(root: Path = REPO) -> Facts:
    """Reads the files, variables, prefixes and make targets of the repository at ROOT."""
    facts = Facts(root=root)
    for current, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        rel = Path(current).relative_to(root).as_posix()
        if rel != ".":
            facts.dirs.add(rel)
        for name in filenames:
            facts.files.add(name if rel == "." else f"{rel}/{name}")
            facts.basenames.add(name)
    facts.top_level = {entry.split("/")[0] for entry in facts.files | facts.dirs}
    gitignore = root / ".gitignore"
    if gitignore.is_file():
        for line in gitignore.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "!")):
                facts.ignored.append(line.strip("/"))

    role_vars: set[str] = set()
    for role in sorted(p for p in (root / "roles").glob("*") if p.is_dir()):
        facts.not_variables.add(role.name)
        for module in [*role.glob("library/*.py"), *role.glob("module_utils/*.py")]:
            facts.not_variables.add(module.stem)
        specs = _load_yaml(role / "meta" / "argument_specs.yml")
        entries = specs.get("argument_specs", {}) if isinstance(specs, dict) else {}
        if isinstance(entries, dict):
            facts.not_variables.update(str(name) for name in entries)  # entry points
        for entry in entries.values() if isinstance(entries, dict) else []:
            options = entry.get("options") if isinstance(entry, dict) else None
            for name, spec in (options or {}).items():
                role_vars.add(str(name))
                if isinstance(spec, dict):
                    facts.not_variables.update(_nested_keys(spec.get("default")))
        for kind in ("defaults", "vars"):
            for path in sorted((role / kind).glob("*.y*ml")):
                data = _load_yaml(path)
                if isinstance(data, dict):
                    role_vars.update(str(name) for name in data)
                    for value in data.values():
                        facts.not_variables.update(_nested_keys(value))
        for path in sorted(role.glob("tasks/*.y*ml")):
            role_vars.update(_set_fact_names(_load_yaml(path)))
    facts.prefixes = {name.split("_")[0] + "_" for name in role_vars if not name.startswith("_")}

    # The playbooks: every name they read or set. Names they take as extra vars with a
    # default (`-e status_strict=true`) bring their prefixes (status_, upgrade_, ...) too.
    playbook_names: set[str] = set()
    for path in [root / "site.yml", *sorted((root / "playbooks").glob("*.yml"))]:
        if not path.is_file():
            continue
        code = "\n".join(
            line.split(" #")[0]
            for line in path.read_text(encoding="utf-8").splitlines()
            if not line.lstrip().startswith("#")
        )
        playbook_names.update(re.findall(r"\b" + IDENTIFIER + r"\b", code))
        for name in re.findall(r"\b(" + IDENTIFIER + r")\s*\|\s*default\(", code):
            facts.prefixes.add(name.split("_")[0] + "_")
        for name in re.findall(r"\b(" + IDENTIFIER + r")\s+is\s+defined", code):
            facts.prefixes.add(name.split("_")[0] + "_")
    facts.variables = role_vars | playbook_names
    facts.not_variables -= facts.variables

    makefile = root / "Makefile"
    if makefile.is_file():
        text = makefile.read_text(encoding="utf-8")
        facts.make_targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.MULTILINE))
    return facts


# ---------------------------------------------------------------------------------------------
# Markdown: blocks, spans, links and headings, each with its line number.


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # of the first body line
    lines: tuple[str, ...]


def split_markdown(text: str) -> tuple[list[Block], str]:
    """The fenced blocks, and the text with their bodies blanked (line numbers kept)."""
    blocks: list[Block] = []
    prose = text
    for match in FENCE.finditer(text):
        indent = len(match.group("indent"))
        body = match.group("body")
        lines = tuple(
            line[indent:] if line[:indent].isspace() else line for line in body.split("\n")
        )
        first = text.count("\n", 0, match.start("body")) + 1
        blocks.append(Block(match.group("lang").lower(), first, lines[:-1] if lines else lines))
        blank = re.sub(r"[^\n]", " ", match.group(0))
        prose = prose[: match.start()] + blank + prose[match.end() :]
    return blocks, prose


def code_spans(prose: str) -> Iterator[tuple[int, str]]:
    """Inline code spans of PROSE (text without blocks): (line, content on one line)."""
    for match in CODE_SPAN.finditer(prose):
        if "\n\n" in match.group(2):
            continue  # not a span: an unmatched backtick and a later one
        yield prose.count("\n", 0, match.start()) + 1, " ".join(match.group(2).split())


def without_spans(prose: str) -> str:
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text, lower case, punctuation but - and _ dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in "-_ ")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown page (repeated headings get -1, -2, ...)."""
    _, prose = split_markdown(text)
    seen: dict[str, int] = {}
    out = set()
    for match in HEADING.finditer(prose):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


# ---------------------------------------------------------------------------------------------
# The checks.


def _clean_token(token: str) -> str:
    token = token.strip("'\"`()[]{},;")
    return token.rstrip(".:")


def path_problem(token: str, facts: Facts, created: set[str]) -> str | None:
    """Why TOKEN, if it is a repository path, does not exist; None when it does or is none."""
    token = _clean_token(token)
    if not token or "://" in token or token.startswith(("/", "~", "$", "-", ".", "@")):
        return None
    if "=" in token or "{" in token or ":" in token:
        return None
    if not re.fullmatch(r"[\w.*<>/+-]+", token) or token.count("<") != token.count(">"):
        return None
    pattern = PLACEHOLDER.sub("*", token).rstrip("/")
    if not pattern:
        return None
    first = pattern.split("/")[0]
    if "/" in token:
        if first not in facts.top_level:
            # Relative to some directory (`meta/argument_specs.yml`): some file must end so.
            if pattern.endswith(FILE_SUFFIXES) and not any(
                fnmatch.fnmatch(f, "*/" + pattern) for f in facts.files
            ):
                return f"no file of the repository ends with {token}"
            return None
    elif not pattern.endswith(FILE_SUFFIXES) and pattern not in facts.top_level:
        return None
    elif "*" not in pattern and "/" not in pattern:
        # A bare file name: some file of the repository has it.
        if pattern in facts.basenames or pattern in facts.top_level:
            return None
        return f"no file named {token} in the repository"
    for done in created:
        if pattern == done or pattern.startswith(done.rstrip("/") + "/"):
            return None
    for ignored in facts.ignored:
        if pattern == ignored or pattern.startswith(ignored + "/"):
            return None
    everything = facts.files | facts.dirs
    if pattern in everything or any(fnmatch.fnmatch(entry, pattern) for entry in everything):
        return None
    return f"{token} does not exist"


@functools.cache
def ray_identifiers() -> frozenset[str]:
    """Every identifier of the installed Ray's Python source (empty without Ray): Ray's own
    terms, such as its metrics, which Prometheus names ray_<name>."""
    spec = importlib.util.find_spec("ray")  # finds the package without importing it
    if spec is None or spec.origin is None:
        return frozenset()
    names: set[str] = set()
    for path in Path(spec.origin).parent.rglob("*.py"):
        names.update(
            re.findall(r"[a-z][a-z0-9_]+", path.read_text(encoding="utf-8", errors="ignore"))
        )
    return frozenset(names)


def is_rays_own(name: str) -> bool:
    """NAME is one of Ray's own identifiers, or a metric Ray exports as ray_<identifier>."""
    ray = ray_identifiers()
    return name in ray or name.removeprefix("ray_") in ray


def variable_problem(name: str, facts: Facts) -> str | None:
    """Why NAME, if it looks like a role variable, is not one; None when it is or is not one."""
    if not re.fullmatch(IDENTIFIER, name):
        return None
    if not any(name.startswith(prefix) for prefix in facts.prefixes):
        return None
    if name in facts.variables or name in facts.not_variables or is_rays_own(name):
        return None
    return f"variable {name} is defined by no role (defaults, vars, argument specs) or playbook"


def span_variables(span: str) -> list[str]:
    """The names of SPAN that stand for a variable: the whole span, `name: value`,
    `name=value`, `name/path`, `-e name=value` and `-e '{"name": ...}'`."""
    names = []
    match = re.fullmatch(r"(" + IDENTIFIER + r")(?:\s*[:=].*|/.*)?", span)
    if match:
        names.append(match.group(1))
    names += extra_vars(span)
    return names


def extra_vars(command: str) -> list[str]:
    """The variables a command line gives with -e / --extra-vars."""
    names = []
    for match in EXTRA_VAR.finditer(command):
        value = match.group("value").strip("'\"")
        if value.startswith("{"):
            names += JSON_KEY.findall(value)
        else:
            names += [m.group(1) for m in re.finditer(r"(?:^|\s)(" + IDENTIFIER + r")=", value)]
    return names


def make_problems(text: str, facts: Facts) -> list[str]:
    return [
        f"make {m.group('target')}: no such target in the Makefile"
        for m in MAKE.finditer(text)
        if m.group("target") not in facts.make_targets
    ]


def inventory_problem(words: list[str]) -> str | None:
    """An Ansible command without -i: ansible.cfg would run it on the lab's inventory."""
    if words[:1] not in (["ansible"], ["ansible-playbook"]) or len(words) < 2:
        return None  # not a command (`ansible` alone is the package)
    if any(w in ("-i", "--inventory") or w.startswith(("-i", "--inventory=")) for w in words):
        return None
    return f"{words[0]} without -i inventories/<env>: ansible.cfg defaults to the lab's inventory"


def shell_words(line: str) -> list[str]:
    """A command line's words, its comment dropped, quotes kept as part of their word."""
    line = re.sub(r"(^|\s)#.*$", "", line)
    return re.findall(r"'[^']*'|\"[^\"]*\"|\S+", line)


def block_problems(block: Block, facts: Facts, created: set[str]) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    if block.lang in SHELL_BLOCKS:
        prompted = any(line.startswith("$ ") for line in block.lines)
        continued = False
        for offset, raw in enumerate(block.lines):
            line_no = block.line + offset
            if prompted and not raw.startswith("$ ") and not continued:
                continued = False
                continue  # a command's output
            command = raw[2:] if raw.startswith("$ ") else raw
            continued = command.rstrip().endswith("\\")
            words = shell_words(command)
            if words[:1] == ["cp"] and len(words) >= 3:
                created.add(_clean_token(words[-1]))  # what it creates exists from here on
            for word in words:
                problem = path_problem(word, facts, created)
                if problem:
                    problems.append((line_no, problem))
            code = " ".join(words)
            problems += [(line_no, p) for p in make_problems(code, facts)]
            problem = inventory_problem(words)
            if problem:
                problems.append((line_no, problem))
            for name in extra_vars(code):
                problem = variable_problem(name, facts)
                if problem:
                    problems.append((line_no, problem))
    elif block.lang in YAML_BLOCKS:
        try:
            data = yaml.load("\n".join(block.lines), Loader=_Loader)
        except yaml.YAMLError as error:
            return [(block.line, f"YAML block does not parse: {error}")]
        if isinstance(data, dict):
            for name in data:
                problem = variable_problem(str(name), facts)
                if problem:
                    problems.append((block.line, problem))
    return problems


def link_problem(target: str, doc: Path, facts: Facts, text: str = "") -> str | None:
    """Why a Markdown link of DOC (whose text is TEXT) to TARGET does not resolve; None when
    it does."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):
        return None  # https:, mailto:
    path_part, _, anchor = target.partition("#")
    if not path_part:
        if anchor not in anchors(text):
            return f"link {target}: this page has no heading #{anchor}"
        return None
    resolved = (doc.parent / path_part).resolve()
    try:
        resolved.relative_to(facts.root.resolve())
    except ValueError:
        return f"link {target} leaves the repository"
    if not resolved.exists():
        return f"link {target}: {path_part} does not exist"
    if (
        anchor
        and resolved.suffix == ".md"
        and anchor not in anchors(resolved.read_text(encoding="utf-8"))
    ):
        return f"link {target}: {resolved.name} has no heading #{anchor}"
    return None


def check_text(text: str, doc: Path, facts: Facts) -> list[str]:
    """Every problem of the Markdown TEXT of DOC, as 'DOC:LINE: problem' lines."""
    blocks, prose = split_markdown(text)
    created: set[str] = set()
    found: list[tuple[int, str]] = []
    for block in blocks:
        found += block_problems(block, facts, created)
    for line, span in code_spans(prose):
        for word in span.split():
            problem = path_problem(word, facts, created)
            if problem:
                found.append((line, problem))
        for name in span_variables(span):
            problem = variable_problem(name, facts)
            if problem:
                found.append((line, problem))
        found += [(line, p) for p in make_problems(span, facts)]
        problem = inventory_problem(span.split())
        if problem:
            found.append((line, problem))
    plain = without_spans(prose)
    for match in LINK.finditer(plain):
        problem = link_problem(match.group("target"), doc, facts, text)
        if problem:
            found.append((plain.count("\n", 0, match.start()) + 1, problem))
    # Repository paths in the text itself (`playbooks/upgrade.yml's batches`).
    text_only = LINK.sub(lambda m: m.group("text"), plain)
    for match in re.finditer(r"(?<![\w/.-])([A-Za-z][\w.-]*/[\w.*<>/-]*[\w*>])", text_only):
        token = match.group(1)
        if token.split("/")[0] in facts.top_level:
            problem = path_problem(token, facts, created)
            if problem:
                found.append((text_only.count("\n", 0, match.start()) + 1, problem))
    try:
        shown = doc.resolve().relative_to(facts.root.resolve())
    except ValueError:
        shown = doc
    return [f"{shown}:{line}: {problem}" for line, problem in sorted(set(found))]


def doc_files(root: Path = REPO) -> list[Path]:
    return [
        root / "README.md",
        *sorted((root / "docs").glob("*.md")),
        *sorted((root / "roles").glob("*/README.md")),
    ]


# ---------------------------------------------------------------------------------------------
# The documentation of this repository.


@pytest.fixture(scope="module")
def facts() -> Facts:
    return repo_facts(REPO)


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_reference_of_the_docs_exists(doc: Path, facts: Facts) -> None:
    problems = check_text(doc.read_text(encoding="utf-8"), doc, facts)
    assert not problems, "\n".join(problems)


def test_the_facts_are_read_from_the_repository(facts: Facts) -> None:
    # The prefixes come from the roles and the playbooks' extra vars, not from a list here.
    assert {"ray_", "lab_", "prometheus_", "bench_"} <= facts.prefixes
    assert {"upgrade_", "status_", "stop_", "teardown_", "diagnose_"} <= facts.prefixes
    assert "ray_serve_http_port" in facts.variables
    assert "upgrade_allow_restart" in facts.variables
    assert variable_problem("ray_serve", facts) is None  # a role
    assert variable_problem("ray_cluster_info", facts) is None  # a module
    assert variable_problem("ray_actor_options", facts) is None  # a key of a default
    assert variable_problem("status_report", facts) is None  # an entry point
    assert variable_problem("ray_serve_nope_port", facts) is not None
    assert {"lab", "test", "lab-destroy"} <= facts.make_targets
    assert "playbooks/restart-serve.yml" in facts.files


def test_the_docs_cover_the_pages_they_should(facts: Facts) -> None:
    names = {p.relative_to(REPO).as_posix() for p in doc_files()}
    assert "README.md" in names
    assert "docs/benchmarks.md" in names
    assert all(f"roles/{p.name}/README.md" in names for p in (REPO / "roles").iterdir())


# ---------------------------------------------------------------------------------------------
# The checker itself: each kind of stale reference is found.

GOOD = """\
# Title

## A section

Run `playbooks/status.yml` or `site.yml`, set `ray_serve_http_port: 8000` and
`-e upgrade_allow_restart=true`; see [the section](#a-section) and
[operations](docs/operations.md#restart-serve). `ray_config_dir/auth_token` on the head,
`inventories/<env>`, `make lab`, `roles/ray_serve`, `start.yml`.

```console
cp -r inventories/example inventories/prod
ansible-playbook site.yml -i inventories/prod
ansible-playbook -i inventories/<env> playbooks/upgrade.yml -e upgrade_allow_restart=true
ansible-playbook -i inventories/<env> playbooks/remove-worker.yml -e '{"ray_removed_workers": []}'
make test
$ curl http://localhost:8000/x
{"scores": [0.15], "a/b": "playbooks/output-not-checked.yml"}
```

```yaml
ray_serve_applications: []
all: {}
```
"""

BAD = {
    "a missing playbook in backticks": ("Run `playbooks/nope.yml`.", "playbooks/nope.yml"),
    "a missing playbook in the text": ("See playbooks/nope.yml's header.", "playbooks/nope.yml"),
    "a missing playbook in a command": (
        "```console\nansible-playbook -i inventories/lab playbooks/nope.yml\n```",
        "playbooks/nope.yml does not exist",
    ),
    "a missing bare file name": ("Run `nope-playbook.yml`.", "no file named nope-playbook.yml"),
    "a missing script": ("```bash\nscripts/nope.sh\n```", "scripts/nope.sh"),
    "a missing inventory": ("`-i inventories/nope`", "inventories/nope"),
    "an unknown variable": ("Set `ray_serve_nope_port`.", "ray_serve_nope_port"),
    "an unknown variable with a value": ("`ray_nope: true`", "ray_nope"),
    "an unknown extra var": (
        "```console\nansible-playbook -i x playbooks/stop.yml -e upgrade_nope=1\n```",
        "upgrade_nope",
    ),
    "an unknown JSON extra var": ("`-e '{\"ray_nope_workers\": []}'`", "ray_nope_workers"),
    "an unknown YAML key": ("```yaml\nprometheus_nope: 1\n```", "prometheus_nope"),
    "a command without -i": (
        "```console\nansible-playbook playbooks/status.yml\n```",
        "ansible-playbook without -i",
    ),
    "a command without -i in backticks": (
        "Run `ansible-playbook site.yml --limit web`.",
        "ansible-playbook without -i",
    ),
    "a missing make target": ("Run `make nope`.", "make nope"),
    "a missing make target in a block": ("```console\nmake nope\n```", "make nope"),
    "a broken link": ("[x](docs/nope.md)", "docs/nope.md does not exist"),
    "a broken anchor": ("# T\n\n[x](#nope)", "this page has no heading #nope"),
    "a broken anchor of another page": (
        "[x](docs/operations.md#nope)",
        "operations.md has no heading #nope",
    ),
    "a link out of the repository": ("[x](../../elsewhere.md)", "leaves the repository"),
}


def test_good_references_pass(facts: Facts) -> None:
    doc = REPO / "EXAMPLE.md"  # as if at the repository's root (links resolve from there)
    assert check_text(GOOD, doc, facts) == []


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_stale_reference_is_found(case: str, facts: Facts) -> None:
    text, expected = BAD[case]
    problems = check_text(text, REPO / "EXAMPLE.md", facts)
    assert len(problems) == 1, problems
    assert expected in problems[0], problems


def test_a_stale_file_fails_the_check(tmp_path: Path) -> None:
    """A whole repository in a temporary directory: a doc that is right, then made stale."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "start.yml").write_text(
        '- hosts: all\n  vars:\n    x: "{{ start_fast | default(false) }}"\n'
    )
    role = tmp_path / "roles" / "web"
    (role / "defaults").mkdir(parents=True)
    (role / "defaults" / "main.yml").write_text("web_port: 80\n")
    (tmp_path / "Makefile").write_text("up: ## Start\n\ttrue\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "other.md").write_text("# Other\n\n## Part two\n")
    doc = docs / "page.md"
    doc.write_text(
        "# Page\n\n`playbooks/start.yml -e start_fast=true`, `web_port`, `make up`,\n"
        "[other](other.md#part-two).\n"
    )
    facts = repo_facts(tmp_path)
    assert facts.prefixes == {"web_", "start_"}
    assert check_text(doc.read_text(), doc, facts) == []

    doc.write_text(
        "# Page\n\n`playbooks/stop.yml -e start_slow=true`, `web_host`, `make down`,\n"
        "[other](other.md#part-three).\n"
    )
    problems = check_text(doc.read_text(), doc, facts)
    assert problems == [
        "docs/page.md:3: make down: no such target in the Makefile",
        "docs/page.md:3: playbooks/stop.yml does not exist",
        "docs/page.md:3: variable start_slow is defined by no role (defaults, vars, argument"
        " specs) or playbook",
        "docs/page.md:3: variable web_host is defined by no role (defaults, vars, argument"
        " specs) or playbook",
        "docs/page.md:4: link other.md#part-three: other.md has no heading #part-three",
    ], problems


def test_slug_is_githubs() -> None:
    assert slug("Ray-version upgrade: what it costs") == "ray-version-upgrade-what-it-costs"
    assert slug("`ray_serve_applications`") == "ray_serve_applications"
    assert slug("Health contract for your load balancer") == (
        "health-contract-for-your-load-balancer"
    )
    assert anchors("# A\n\n## A\n\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_json_keys_of_extra_vars() -> None:
    assert extra_vars('x -e \'{"ray_removed_workers": ["w"]}\' -e stop_disable=true') == [
        "ray_removed_workers",
        "stop_disable",
    ]
