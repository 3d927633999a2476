"""YAML helpers shared by the scripts that read roles' defaults and argument specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def yaml_file(directory: Path, stem: str) -> Path | None:
    """`directory/stem.yml` or `.yaml`, whichever exists."""
    for suffix in (".yml", ".yaml"):
        candidate = directory / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def load(path: Path, loader: type[yaml.SafeLoader]) -> Any:
    """The document in `path`, read with `loader` (each script decides how to read tags)."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


class AnsibleLoader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's custom tags (!unsafe, !vault...) as plain values."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


AnsibleLoader.add_multi_constructor("!", _untagged)
