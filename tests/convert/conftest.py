"""The four reference checkpoints of the authors' release, converted once per session by the command line."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.tf_reference import reference_path
from vatt.convert.__main__ import main

# The tiny reference models' sizes that no shape holds (README of the reference data, meta/config_json).
HYPER = {"tx_fac_small": ["--heads", "video=4,audio=4,text=4", "--max-relative-distance", "64"],
         "ut_fac_small": ["--heads", "shared=4"],
         "vit_cls_small": ["--heads", "video=3"],
         "wat_cls_small": ["--heads", "audio=4"]}


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """``converted(name) -> Path``: the model directory ``python -m vatt.convert`` wrote for a checkpoint."""
    done: dict[str, Path] = {}

    def convert(name: str) -> Path:
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "model"
            assert main([str(reference_path(f"{name}_ckpt")), str(out), *HYPER[name]]) == 0
            done[name] = out
        return done[name]

    return convert
