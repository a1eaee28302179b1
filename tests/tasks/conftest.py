"""Shared by the pre-training and downstream-task tests: a labelled synthetic task (the quickstart run as a user
makes it is in tests/conftest.py, shared with the search tests).

The labelled task is the colour of the moving shape (6 classes), read off the synthetic clips' 96-class
content labels: fine-tuning on all 96 (colour x shape x direction) needs far more steps than a test can
afford on two CPU cores, while the colour is shown by the video (and heard in the audio's pitch) and lets a
few dozen steps separate a pre-trained start from a random one.
"""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from vatt.data.synthetic import COLOURS, attributes_of
from vatt.tasks import builders


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
