#!/usr/bin/env python3
"""The benchmark driver run as a file: ``bench/bench.py SUBCOMMAND ...`` (as
playbooks/benchmark.yml and docs/benchmarks.md call it) is ``python -m bench SUBCOMMAND ...``
from the repository root. The code is the ``bench`` package; bench/__init__.py says which
module holds what."""

import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a file, this directory is on sys.path, where this very file would stand in for
    # the package: the repository root goes before it.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.cli import main

    sys.exit(main())
