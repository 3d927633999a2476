"""Progress lines: to stderr, and to a log file once one is set (bench/run.sh shows that file
while Ansible runs playbooks/benchmark.yml, which keeps the command's own stderr)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

_log_file: Path | None = None


def set_log_file(path: Path | None) -> None:
    """Also append every later progress line to ``path`` (None: stderr only).

    The file's directory must exist; the file is created on the first line.
    """
    global _log_file
    _log_file = path


def log(message: str) -> None:
    """Print ``message`` as ``[bench HH:MM:SS] message`` (local time) to stderr, and append it
    to the log file set by :func:`set_log_file`, if any.

    Raises OSError when the log file cannot be written.
    """
    line = f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}"
    print(line, file=sys.stderr, flush=True)
    if _log_file is not None:
        with _log_file.open("a") as fh:
            fh.write(line + "\n")
