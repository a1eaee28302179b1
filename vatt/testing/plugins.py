"""Installed plugins, in the test's own process: `plugin_site` puts a folder of installed distributions (what
``pip install --target`` writes) on the import path for the length of a ``with`` block, and afterwards forgets
everything it brought: its modules, and what the registries loaded or failed to load from it. So a plugin test
can call `vatt.run.main` directly instead of paying a fresh interpreter per case, and leaves the session as it was.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from vatt import registry


@contextlib.contextmanager
def plugin_site(site: Path | str) -> Iterator[Path]:
    registry.ensure_builtins()  # the built-ins stay; only what comes from ``site`` is undone
    saved = {kind: r.state() for kind, r in registry.REGISTRIES.items()}
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield Path(site)
    finally:
        sys.path.remove(str(site))
        inside = (str(Path(site)), str(Path(site).resolve()))  # a module's file is under the path it was found on
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if any(file.startswith(folder + os.sep) for folder in inside):
                del sys.modules[name]
        for kind, state in saved.items():
            registry.REGISTRIES[kind].restore(state)
        importlib.invalidate_caches()

