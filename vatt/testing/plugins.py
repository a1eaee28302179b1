"""Installed plugins, in the test's own process: `plugin_site` puts a folder of installed distributions (what
``pip install --target`` writes) on the import path for the length of a ``with`` block, and afterwards forgets
everything it brought: its modules, and what the registries loaded or failed to load from it. So a plugin test
call `vatt.run.main` directly instead of paying a fresh interpreter per case, and leave the session as it was.
"""
from __future__ import annotations

import contextlib
import importlib
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
        inside = str(Path(site).resolve())
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(inside):
                del sys.modules[name]
        for kind, state in saved.items():
            registry.REGISTRIES[kind].restore(state)
        importlib.invalidate_caches()

