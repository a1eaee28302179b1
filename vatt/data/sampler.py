"""Deterministic, resumable batch order and batch collation.

The batch of global step s is a pure function of (seed, s): step s falls in epoch e = s // steps_per_epoch,
epoch e visits the samples in the order of a permutation drawn from a generator seeded with (seed, e), and
the step takes its slice of that permutation. A run resumed at step s therefore sees exactly the batches an
uninterrupted run would have seen, without replaying anything.

Random choices inside a sample (which clip of a video, the augmentation) follow the same rule: with
`keyed=True` the sampler yields `SampleKey(index, epoch, seed)` instead of bare indices, and datasets draw
from `sample_rng(key)`, a generator seeded by the key alone, so each video gets a new clip every epoch and
the same one on every replay of that epoch.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import torch


class SampleKey(NamedTuple):
    """What a dataset is asked for: a sample index and the (epoch, seed) its random draws derive from."""
    index: int
    epoch: int
    seed: int


def sample_rng(key: int | SampleKey) -> tuple[int, np.random.Generator]:
    """(index, generator) for a dataset key. A bare int index draws its seed from torch's default generator,
    as torch data pipelines do, so DataLoader worker seeding applies to it."""
    if isinstance(key, SampleKey):
        return key.index, np.random.default_rng([key.seed, key.epoch, key.index])
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key), np.random.default_rng([int(torch.randint(0, 2**62, ())), int(key)])
    raise TypeError(f"a dataset key must be an int index or a SampleKey, got {key!r}")


class StepBatchSampler:
    """Yields lists of sample indices, one per global step, from `start_step` on.

    With `drop_last` an epoch has num_samples // batch_size full batches and the remainder is skipped (a
    different remainder each epoch); without it the last batch of an epoch is smaller. The stream is
    endless unless `num_steps` is given, in which case it stops before global step `num_steps` and has a
    length. Use it as `DataLoader(dataset, batch_sampler=StepBatchSampler(...))`; `keyed=True` yields
    `SampleKey`s (see the module docstring) for datasets that draw random clips.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int = 0,
        start_step: int = 0,
        drop_last: bool = True,
        num_steps: int | None = None,
        keyed: bool = False,
    ):
        for name, value, low in (("num_samples", num_samples, 1), ("batch_size", batch_size, 1),
                                 ("seed", seed, 0), ("start_step", start_step, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if drop_last and batch_size > num_samples:
            raise ValueError(
                f"batch_size must not exceed num_samples when drop_last is set, got batch_size={batch_size} "
                f"for num_samples={num_samples}"
            )
        if num_steps is not None and (not isinstance(num_steps, int) or num_steps < start_step):
            raise ValueError(f"num_steps must be None or an int >= start_step ({start_step}), got {num_steps!r}")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.drop_last = drop_last
        self.num_steps = num_steps
        self.keyed = keyed
        full, remainder = divmod(num_samples, batch_size)
        self.steps_per_epoch = full if drop_last or remainder == 0 else full + 1
        self._cached_epoch: int | None = None
        self._cached_order: np.ndarray | None = None

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The permutation of sample indices visited in `epoch`."""
        if epoch != self._cached_epoch:
            # SeedSequence mixes (seed, epoch) into independent streams, unlike seed + epoch.
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
            self._cached_order = rng.permutation(self.num_samples)
            self._cached_epoch = epoch
        return self._cached_order

    def batch_indices(self, step: int) -> list[int]:
        """The sample indices of global step `step`."""
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        epoch, position = divmod(step, self.steps_per_epoch)
        start = position * self.batch_size
        return self.epoch_order(epoch)[start : start + self.batch_size].tolist()

    def batch_keys(self, step: int) -> list[SampleKey]:
        """The sample keys of global step `step`: its indices with their epoch and the sampler's seed."""
        epoch = step // self.steps_per_epoch
        return [SampleKey(index, epoch, self.seed) for index in self.batch_indices(step)]

    def __iter__(self) -> Iterator[list[int] | list[SampleKey]]:
        steps = itertools.count(self.start_step) if self.num_steps is None else range(self.start_step, self.num_steps)
        for step in steps:
            yield self.batch_keys(step) if self.keyed else self.batch_indices(step)

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("an endless StepBatchSampler has no length; pass num_steps to give it one")
        return self.num_steps - self.start_step


def _stack(values: list[torch.Tensor]) -> torch.Tensor:
    """torch.stack; in a DataLoader worker, straight into shared memory, as the batch has to go there to
    reach the main process: a private stack would be copied once more, into fresh pages (for a batch of
    pre-training clips, ~12 ms per clip)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.stack(values)
    first = values[0]
    storage = first._typed_storage()._new_shared(len(values) * first.numel(), device=first.device)
    return torch.stack(values, out=first.new(storage).resize_(len(values), *first.shape))


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stacks per-sample dicts into a batch dict: tensors and numbers along a new dim 0, strings into lists."""
    if not samples:
        raise ValueError("samples must be a non-empty sequence of dicts, got an empty one")
    keys = list(samples[0].keys())
    for n, sample in enumerate(samples):
        if set(sample.keys()) != set(keys):
            raise ValueError(
                f"samples must share keys, got {sorted(sample.keys())} at index {n}, expected {sorted(keys)}")
    batch: dict[str, Any] = {}
    for key in keys:
        values = [sample[key] for sample in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            batch[key] = _stack(values)  # [B, *sample shape]
        elif isinstance(first, str):
            batch[key] = list(values)
        elif isinstance(first, (bool, int, float)):
            batch[key] = torch.tensor(values)  # [B]
        else:
            raise ValueError(f"samples[..][{key!r}] must be a tensor, str or number, got {type(first).__name__}")
    return batch
