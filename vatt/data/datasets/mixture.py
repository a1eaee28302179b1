"""Several datasets mixed in every batch by weight (the paper pre-trains on HowTo100M + AudioSet).

The mixture is a map-style dataset of `num_samples` slots (default: all children's samples together); child
k owns a share of them proportional to its weight. A batch drawn uniformly from the slots is therefore a
weighted mix. Slot j of child k reads the child's sample perm_k[(j + epoch·share_k) mod len_k], perm_k a
fixed shuffle, so successive epochs walk through a child that has more samples than slots, and a child with
fewer slots than samples is repeated, each repeat with its own random clip.

Samples are made to stack: a child without text gets an all-zero text block with text_mask 0, one without
sound silence with audio_mask 0, and keys not every child has (labels of different class lists) are dropped.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vatt.data.sampler import SampleKey
from vatt.messages import shown
from vatt.registry import build, register

ALWAYS_FILLED = ("text", "text_mask", "audio", "audio_mask")


def sample_keys(dataset: Dataset) -> set[str]:
    """The keys a dataset's samples carry, from what it declares (a ClipDataset or a Mixture)."""
    declared = getattr(dataset, "sample_keys", None)
    if declared is None:
        raise ValueError(f"a mixture needs children that declare their sample_keys, got {type(dataset).__name__}")
    return set(declared)


def _shares(total: int, weights: Sequence[float]) -> list[int]:
    """Integer shares of `total` proportional to `weights` (largest remainders), each at least 1."""
    exact = np.asarray(weights, dtype=np.float64) / sum(weights) * total
    shares = np.maximum(np.floor(exact).astype(int), 1)
    for k in np.argsort(-(exact - np.floor(exact)), kind="stable")[: max(total - int(shares.sum()), 0)]:
        shares[k] += 1
    while shares.sum() > total:  # the minimum of 1 overshot: the largest shares give back
        shares[int(np.argmax(shares))] -= 1
    return shares.tolist()


@register("datasets", "mixture")
class Mixture(Dataset):
    """Children mixed by weight. `datasets` holds dataset config nodes (each may carry a `weight`, default 1)
    or built datasets with `weights` beside them."""

    def __init__(self, datasets: list | None = None, weights: list[float] | None = None,
                 num_samples: int | None = None, seed: int = 0):
        # `datasets` defaults to None only for the config checks, which look at child nodes on their own
        if not isinstance(datasets, (list, tuple)) or not datasets:
            raise ValueError(f"datasets must be a non-empty list of datasets, got {shown(datasets)}")
        if weights is None:
            weights = [float(d.get("weight", 1.0)) if isinstance(d, dict) else 1.0 for d in datasets]
        if len(weights) != len(datasets) or any(not isinstance(w, (int, float)) or w <= 0 for w in weights):
            raise ValueError(f"weights must be one positive number per dataset, got {shown(weights)}")
        self.children = [build("datasets", d, f"datasets.{i}", reserved=("weight",)) if isinstance(d, dict) else d
                         for i, d in enumerate(datasets)]
        self.weights = [float(w) for w in weights]
        total = sum(len(c) for c in self.children) if num_samples is None else num_samples
        if not isinstance(total, int) or total < len(self.children):
            raise ValueError(f"num_samples must be an int >= the number of datasets, got {shown(num_samples)}")
        self.shares = _shares(total, self.weights)
        self.starts = np.cumsum([0] + self.shares[:-1]).tolist()
        rng = np.random.default_rng(seed)
        self.orders = [rng.permutation(len(c)) for c in self.children]
        keys = [sample_keys(c) for c in self.children]
        if len({"video" in k for k in keys}) > 1:
            raise ValueError("datasets must either all have video or none (an audio-only set cannot join video ones)")
        self.sample_keys = set.intersection(*keys) | {k for k in ALWAYS_FILLED if any(k in c for c in keys)}
        self._text_shape = next((c.text_shape for c in self.children if getattr(c, "text_shape", None)), None)
        self._audio_samples = next((c.settings.num_audio_samples for c in self.children
                                    if "audio" in sample_keys(c)), None)

    def __len__(self) -> int:
        return sum(self.shares)

    def locate(self, key: int | SampleKey) -> tuple[int, int | SampleKey]:
        """(child number, the child's key) of a mixture key."""
        index = key.index if isinstance(key, SampleKey) else int(key)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is outside the mixture's {len(self)} samples")
        k = int(np.searchsorted(self.starts, index, side="right")) - 1
        epoch = key.epoch if isinstance(key, SampleKey) else 0
        position = index - self.starts[k] + epoch * self.shares[k]
        size = len(self.children[k])
        child_index = int(self.orders[k][position % size])
        if not isinstance(key, SampleKey):
            return k, child_index
        return k, SampleKey(child_index, position // size, key.seed)  # each pass over a child draws anew

    def source(self, key: int | SampleKey) -> str:
        k, child_key = self.locate(key)
        child = self.children[k]
        return child.source(child_key) if hasattr(child, "source") else f"{type(child).__name__} {child_key}"

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        k, child_key = self.locate(key)
        sample = self.children[k][child_key]
        if "text" in self.sample_keys and "text" not in sample:
            sample["text"] = torch.zeros(self._text_shape, dtype=torch.long)  # [L, W] padding
            sample["text_mask"] = torch.tensor(False)
        if "audio" in self.sample_keys and "audio" not in sample:
            sample["audio"] = torch.zeros(self._audio_samples)  # [A] silence
            sample["audio_mask"] = torch.tensor(False)
        return {key: value for key, value in sample.items() if key in self.sample_keys}
