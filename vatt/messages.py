"""How values and exceptions appear in error messages: short enough that every error fits on one screen.

A config value can be a whole subtree (or, through YAML aliases, a tree far larger than its file), and some
exceptions carry pages of text (torch's unpickling errors), so messages never print either in full.
"""
from __future__ import annotations

import reprlib

LIMIT = 200  # characters of one value or one exception in a message
SHOWN = 8  # items of a list a message names before "... and N more"

# reprlib walks only the first few items and levels of a container, so showing a huge node costs nothing
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 8
_REPR.maxstring = _REPR.maxother = LIMIT
_REPR.maxlong = 40


def cut(text: str, limit: int = LIMIT) -> str:
    """``text`` up to ``limit`` characters, with how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def shown(value) -> str:
    """The repr of ``value`` as a message shows it: the first items of containers, at most LIMIT characters."""
    return cut(_REPR.repr(value))


def reason(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, cut to LIMIT characters."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return type(exc).__name__ + (f": {cut(lines[0])}" if lines else "")


def listed(items: list[str]) -> str:
    """The first SHOWN items, joined, and how many more there are."""
    more = f" ... and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more
