"""Shared by the data tests: a tiny replica of every published layout, made once per session."""
from pathlib import Path

import pytest

from vatt.testing.replicas import REPLICAS

COMPOSITE = ("manifest", "mixture", "shards")  # made of other replicas, and tested with them


@pytest.fixture(scope="session")
def layout_replicas(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Layout name → (its replica's folder, its dataset node without "type"); tests copy a replica to change it."""
    root = tmp_path_factory.mktemp("layouts")
    return {name: (root / name, make(root / name)) for name, make in REPLICAS.items() if name not in COMPOSITE}
