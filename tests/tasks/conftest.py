"""Shared by the pre-training and downstream-task tests: the quickstart run as a user makes it (once per test
session), and a labelled synthetic task.

The labelled task is the colour of the moving shape (6 classes), read off the synthetic clips' 96-class
content labels: fine-tuning on all 96 (colour x shape x direction) needs far more steps than a test can
afford on two CPU cores, while the colour is shown by the video (and heard in the audio's pitch) and lets a
few dozen steps separate a pre-trained start from a random one.
"""
import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from vatt.data.synthetic import COLOURS, attributes_of
from vatt.run import main
from vatt.tasks import builders

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


@dataclass
class QuickstartRun:
    code: int   # the exit code of `python -m vatt.run configs/quickstart.yaml`
    dir: Path   # its run directory
    out: str    # what it printed on stdout and stderr
    err: str


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory) -> QuickstartRun:
    """`python -m vatt.run configs/quickstart.yaml` exactly as the README runs it: 600 steps and the evaluation."""
    run_dir = tmp_path_factory.mktemp("quickstart") / "run"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(QUICKSTART), f"run.dir={run_dir}"])
    return QuickstartRun(code, run_dir, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def pretrained(quickstart) -> Path:
    """The run directory of the pre-trained quickstart model (its checkpoints/latest is step 600)."""
    assert quickstart.code == 0, quickstart.err[-2000:]
    return quickstart.dir


class ColourLabels(Dataset):
    """A synthetic dataset whose label is the shape's colour; ``limit`` keeps only its first samples."""

    num_classes = len(COLOURS)

    def __init__(self, base: Dataset, limit: int | None = None):
        self.base = base
        self.size = len(base) if limit is None else min(limit, len(base))

    def __len__(self):
        return self.size

    def __getitem__(self, key):
        sample = dict(self.base[key])
        colour = attributes_of(np.asarray(int(sample["label"])))[0]
        sample["label"] = torch.tensor(int(colour))
        return sample

    def source(self, key):
        return self.base.source(key)


@pytest.fixture
def colour_task(monkeypatch):
    """Tasks build their synthetic datasets relabelled by colour; ``train_limit`` caps the training sets."""
    real = builders.build_dataset
    settings = {"train_limit": None}

    def build(node, where):
        limit = settings["train_limit"] if where.endswith("train") else None
        return ColourLabels(real(node, where), limit)

    monkeypatch.setattr(builders, "build_dataset", build)
    return settings
