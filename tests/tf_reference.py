"""Access to ../shared/tf_reference/: files produced by running the authors' TensorFlow release.

Tests read them in place (they are never copied into the repository). In CI (``CI=true``) a missing file is a
failure; elsewhere the test is skipped with a message saying which file is missing and where it was looked for.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("VATT_TF_REFERENCE", ROOT.parent / "shared" / "tf_reference"))


def reference_path(name: str) -> Path:
    """The path of one reference file or folder; skips (fails in CI) when it is missing."""
    path = REFERENCE_DIR / name
    if not path.exists():
        message = (f"reference data {name} not found in {REFERENCE_DIR} (the outputs of the authors' TensorFlow "
                   f"release; set VATT_TF_REFERENCE to its folder)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_npz(name: str) -> dict[str, np.ndarray]:
    """Every array of a reference ``.npz``, keyed as in the file (``outputs/video/features``)."""
    with np.load(reference_path(name), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected|, the README's measure (§9)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != reference {expected.shape}"
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30))


def channels_first(video: np.ndarray) -> torch.Tensor:
    """The references' channels-last [B, T, H, W, C] clips as vatt's [B, C, T, H, W]."""
    return torch.from_numpy(video).permute(0, 4, 1, 2, 3)


def mono(audio: np.ndarray) -> torch.Tensor:
    """The references' [B, S, 1] waveforms as vatt's [B, S]."""
    return torch.from_numpy(audio)[..., 0]
