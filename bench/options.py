"""How the subcommands read their comma-separated options (``--connections 1,32``)."""

from __future__ import annotations


def parse_ints(text: str) -> list[int]:
    """The integers of a comma-separated option, in order: ``"1,32"`` gives ``[1, 32]``.

    Empty items are skipped (``"2,,4,"`` gives ``[2, 4]``); ``text`` may also be an int.
    Raises ValueError when an item is not an integer.
    """
    return [int(x) for x in str(text).split(",") if x.strip()]
