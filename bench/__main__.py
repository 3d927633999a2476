"""``python -m bench`` (from the repository root): the benchmark driver, as bench/run.sh
runs it."""

import sys

from .cli import main

sys.exit(main())
