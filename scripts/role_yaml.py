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
