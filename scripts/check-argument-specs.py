#!/usr/bin/env python3
"""Check that each role's defaults and its argument specs describe the same variables.

For every role (default: roles/*/ of this repository, or the role directories given as
arguments), compares defaults/main.yml with the `main` entry point of its argument specs
(meta/argument_specs.yml, or `argument_specs:` in meta/main.yml as Ansible also accepts):

  - every variable in defaults is an option of `main`, and every option of `main` is in
    defaults (an option marked `required: true` may be absent: it has no default by nature);
  - an option's `default:` equals the value in defaults when both are plain data (scalars,
    lists, dicts) without Jinja; types count (8000 is not "8000", true is not 1);
  - every option, suboptions included, has a non-empty `description`.

A role without argument specs, or without a `main` entry point, is an error. Prints each
problem as `role: variable: problem` and exits 1 if there is any, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import role_yaml
import yaml
from role_yaml import yaml_file

ROOT = Path(__file__).resolve().parent.parent


class Tagged:
    """A value under an Ansible YAML tag (!unsafe, !vault...): opaque, never compared."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag = tag
        self.value = value

    def __repr__(self) -> str:
        return f"{self.tag} {self.value!r}"


class Loader(yaml.SafeLoader):
    """SafeLoader that accepts Ansible's custom tags instead of failing on them."""


def _tagged(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Tagged:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)  # type: ignore[arg-type]
    return Tagged("!" + tag_suffix, value)


Loader.add_multi_constructor("!", _tagged)


def load(path: Path) -> Any:
    return role_yaml.load(path, Loader)


def mapping(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {}


def is_plain(value: Any) -> bool:
    """Data with neither Jinja nor tagged values: a spec default can be compared with it."""
    if isinstance(value, Tagged):
        return False
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, list):
        return all(is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(is_plain(key) and is_plain(item) for key, item in value.items())
    return value is None or isinstance(value, (bool, int, float))


def same(left: Any, right: Any) -> bool:
    """Equality that also compares types, so that True != 1 and 8000 != 8000.0."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    return bool(left == right)


def load_defaults(role: Path, problems: list[str]) -> dict[str, Any]:
    """The role's defaults: defaults/main.yml, or every file of a defaults/main/ directory."""
    files: list[Path] = []
    single = yaml_file(role / "defaults", "main")
    if single:
        files.append(single)
    elif (role / "defaults" / "main").is_dir():
        files.extend(sorted((role / "defaults" / "main").glob("*.y*ml")))
    defaults: dict[str, Any] = {}
    for path in files:
        data = load(path)
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(f"{role.name}: {path.relative_to(role)}: not a mapping of variables")
            continue
        defaults.update(data)
    return defaults


def load_main_spec(role: Path, problems: list[str]) -> dict[str, Any] | None:
    """Options of the `main` entry point, or None (with the problem recorded)."""
    name = role.name
    spec_file = yaml_file(role / "meta", "argument_specs")
    specs: Any = None
    where = "meta/argument_specs.yml"
    if spec_file:
        specs = mapping(load(spec_file)).get("argument_specs")
        where = str(spec_file.relative_to(role))
    else:
        meta_file = yaml_file(role / "meta", "main")
        if meta_file:
            specs = mapping(load(meta_file)).get("argument_specs")
            where = f"{meta_file.relative_to(role)} argument_specs"
    if specs is None:
        problems.append(f"{name}: meta/argument_specs.yml: missing (every role must declare one)")
        return None
    if not isinstance(specs, dict) or not isinstance(specs.get("main"), dict):
        problems.append(f"{name}: {where}: no `main` entry point")
        return None
    options = specs["main"].get("options") or {}
    if not isinstance(options, dict):
        problems.append(f"{name}: {where}: `main.options` is not a mapping")
        return None
    return options


def check_descriptions(role: str, prefix: str, options: dict[str, Any], out: list[str]) -> None:
    for option, spec in options.items():
        label = f"{prefix}{option}"
        if not isinstance(spec, dict):
            out.append(f"{role}: {label}: spec is not a mapping")
            continue
        description = spec.get("description")
        if not description or (isinstance(description, list) and not any(description)):
            out.append(f"{role}: {label}: no description in argument_specs")
        suboptions = spec.get("options")
        if isinstance(suboptions, dict):
            check_descriptions(role, f"{label}.", suboptions, out)


def check_role(role: Path) -> list[str]:
    problems: list[str] = []
    name = role.name
    defaults = load_defaults(role, problems)
    options = load_main_spec(role, problems)
    if options is None:
        return problems

    for var in sorted(set(defaults) - set(options)):
        problems.append(f"{name}: {var}: in defaults/main.yml, not an option of argument_specs")
    for var in sorted(set(options) - set(defaults)):
        spec = options[var]
        if isinstance(spec, dict) and spec.get("required") is True:
            continue
        problems.append(f"{name}: {var}: option of argument_specs, not in defaults/main.yml")

    for var in sorted(set(options) & set(defaults)):
        spec = options[var]
        if not isinstance(spec, dict) or "default" not in spec:
            continue
        spec_default, value = spec["default"], defaults[var]
        if is_plain(spec_default) and is_plain(value) and not same(spec_default, value):
            problems.append(
                f"{name}: {var}: argument_specs default {spec_default!r} "
                f"!= defaults/main.yml {value!r}"
            )

    check_descriptions(name, "", options, problems)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "roles", nargs="*", type=Path, help="role directories (default: roles/* of the repository)"
    )
    args = parser.parse_args(argv)
    roles = args.roles or sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
    if not roles:
        print("check-argument-specs: no roles found", file=sys.stderr)
        return 1

    problems: list[str] = []
    for role in roles:
        try:
            problems.extend(check_role(role))
        except yaml.YAMLError as error:
            problems.append(f"{role.name}: -: YAML error: {error}")
    for problem in problems:
        print(problem)
    verdict = f"{len(problems)} problem(s)" if problems else "defaults and argument_specs agree"
    print(f"check-argument-specs: {len(roles)} role(s) checked: {verdict}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
