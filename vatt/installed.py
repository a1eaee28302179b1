"""What is installed: which distribution ships a top-level package, and the entry points of a group.

`importlib.metadata` answers both by reading every installed distribution's metadata, and
`packages_distributions()` reads every distribution's list of files (tens of thousands of lines with torch
installed): about 0.1 s a call, paid by each of the ~40 built-in registrations of every process start before
this module existed. The answers are kept for as long as the installation looks the same: the same `sys.path`,
and no entry of it modified since (installing or removing a distribution adds or removes a folder in its site
folder, which changes the site folder's modification time).
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import sys
from typing import Any

_cache: dict[str, Any] = {"state": None}


def _state() -> tuple:
    """The search path and each of its folders' modification times."""
    stamps = []
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamps.append((entry, None))
    return tuple(stamps)


def _current() -> dict[str, Any]:
    state = _state()
    if _cache["state"] != state:
        _cache.clear()
        _cache["state"] = state
    return _cache


def distribution_of(package: str) -> tuple[str, str]:
    """(distribution name, version) of the distribution that ships the top-level `package`; a package no
    installed distribution claims (run from a source tree, say) is its own name with no version."""
    cache = _current()
    if "packages" not in cache:
        cache["packages"] = metadata.packages_distributions()
    key = ("distribution", package)
    if key not in cache:
        name = (cache["packages"].get(package) or [package])[0]
        try:
            cache[key] = (name, metadata.version(name))
        except metadata.PackageNotFoundError:
            cache[key] = (name, "")
    return cache[key]


def entry_points(group: str) -> tuple[metadata.EntryPoint, ...]:
    """The entry points every installed distribution declares in `group`."""
    cache = _current()
    key = ("entry_points", group)
    if key not in cache:
        cache[key] = tuple(metadata.entry_points(group=group))
    return cache[key]
