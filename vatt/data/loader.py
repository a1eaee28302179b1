"""Training batches from a dataset: resumable order, seeded workers, and bad files skipped and counted.

`make_loader` wraps a DataLoader around a keyed `StepBatchSampler`, so the batch of step s is a pure
function of (seed, s) whatever the number of workers or where the run resumed. A sample whose file is
missing, truncated, corrupt or too short (`MediaError`) is dropped from its batch, counted once per distinct
sample and logged with its path; when more than `max_failure_rate` of the dataset's samples have failed, the
run stops with `DataError` naming the count and some of the files. Any other exception in a worker is a bug:
it is re-raised naming the file the worker was reading, and a worker killed outright (a crash in a decoder)
is reported the same way, from a shared table of what each worker is reading.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from vatt.data.decode import MediaError
from vatt.data.sampler import SampleKey, StepBatchSampler, collate
from vatt.registry import UserError

log = logging.getLogger("vatt.data")
SLOT_BYTES = 1024  # room for the path each worker is reading
SHOWN_PATHS = 5


class DataError(UserError):
    """Too many unreadable samples: the data, not the code, needs fixing."""


@dataclass(frozen=True)
class Failure:
    index: int
    path: str
    reason: str


def describe(dataset: Dataset, key: Any) -> str:
    source = getattr(dataset, "source", None)
    index = key.index if isinstance(key, SampleKey) else key
    return source(key) if callable(source) else f"sample {index}"


class _Guarded(Dataset):
    """Runs in the workers: notes what it reads, turns MediaError into a Failure, names the file otherwise."""

    def __init__(self, dataset: Dataset, slots, pids):
        self.dataset = dataset
        self.slots = slots
        self.pids = pids

    def __len__(self) -> int:
        return len(self.dataset)

    def _note(self, text: str) -> None:
        info = torch.utils.data.get_worker_info()
        if info is None or self.slots is None:
            return
        data = text.encode("utf-8", "replace")[: SLOT_BYTES - 1] + b"\0"
        start = info.id * SLOT_BYTES
        self.slots[start : start + len(data)] = data

    def __getitem__(self, key: Any) -> dict | Failure:
        where = describe(self.dataset, key)
        self._note(where)
        try:
            return self.dataset[key]
        except MediaError as exc:
            return Failure(key.index if isinstance(key, SampleKey) else int(key), exc.path, exc.reason)
        except Exception as exc:
            raise RuntimeError(f"data loading failed while reading {where}: {type(exc).__name__}: {exc}") from exc


def _collate_kept(items: list) -> tuple[dict | None, list[Failure]]:
    failures = [item for item in items if isinstance(item, Failure)]
    kept = [item for item in items if not isinstance(item, Failure)]
    return (collate(kept) if kept else None), failures


class _SeedWorker:
    """worker_init_fn: numpy and `random` seeded from the worker's torch seed (itself from the loader's
    seeded generator), so code using global RNGs is reproducible too; records the worker's pid."""

    def __init__(self, pids):
        self.pids = pids

    def __call__(self, worker_id: int) -> None:
        seed = torch.initial_seed() % 2**32
        np.random.seed(seed)
        random.seed(seed)
        if self.pids is not None:
            self.pids[worker_id] = os.getpid()


class Batches:
    """Iterator of collated batches (dicts) from `start_step` on; see `make_loader`."""

    def __init__(self, dataset: Dataset, loader: DataLoader, max_failure_rate: float, slots, pids):
        self.dataset = dataset
        self.max_failure_rate = max_failure_rate
        self.failures: dict[int, Failure] = {}  # distinct failed sample index → its first failure
        self._slots, self._pids = slots, pids
        self._iterator = iter(loader)

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> dict:
        while True:
            try:
                batch, failures = next(self._iterator)
            except RuntimeError as exc:
                self._explain_crash(exc)
                raise
            self._count(failures)
            if batch is not None:  # a batch whose every sample failed is skipped
                return batch

    def _count(self, failures: list[Failure]) -> None:
        for failure in failures:
            if failure.index not in self.failures:
                self.failures[failure.index] = failure
                log.warning("skipping unreadable sample %d: %s: %s", failure.index, failure.path, failure.reason)
        allowed = self.max_failure_rate * len(self.dataset)
        if len(self.failures) > allowed:
            shown = list(self.failures.values())[:SHOWN_PATHS]
            lines = "\n".join(f"    {f.path}: {f.reason}" for f in shown)
            raise DataError(
                f"{len(self.failures)} of {len(self.dataset)} samples could not be read, more than the allowed "
                f"{self.max_failure_rate:.2%} (max_failure_rate); the first ones:\n{lines}\n"
                f"run `python -m vatt.data check` on the dataset to list every unreadable file")

    def _explain_crash(self, exc: RuntimeError) -> None:
        found = re.search(r"DataLoader worker \(pids?(?:\(s\))? ([\d, ]+)\)", str(exc))
        if self._slots is None or found is None:
            return
        for pid in (int(p) for p in re.findall(r"\d+", found.group(1))):
            for worker_id, known in enumerate(self._pids):
                if known == pid:
                    raw = bytes(self._slots[worker_id * SLOT_BYTES : (worker_id + 1) * SLOT_BYTES])
                    path = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
                    raise RuntimeError(f"data loader worker {worker_id} (pid {pid}) died while reading "
                                       f"{path}") from exc


def _stream_batches(dataset: IterableDataset, *, batch_size: int, start_step: int, num_workers: int,
                    drop_last: bool, generator: torch.Generator) -> Iterator[dict]:
    steps_per_epoch = max(1, getattr(dataset, "num_clips", batch_size) // batch_size)
    epoch = start_step // steps_per_epoch
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate, drop_last=drop_last,
                        num_workers=num_workers, worker_init_fn=_SeedWorker(None), generator=generator)
    while True:
        dataset.set_epoch(epoch)
        yield from loader
        epoch += 1


def make_loader(dataset: Dataset, *, batch_size: int, seed: int = 0, start_step: int = 0, num_workers: int = 0,
                max_failure_rate: float = 0.01, drop_last: bool = True, num_steps: int | None = None,
                shard: Callable[[Iterable[list]], Iterable[list]] | None = None,
                prefetch_factor: int | None = None, pin_memory: bool = False) -> Iterator[dict]:
    """Batches of `dataset` for global steps `start_step`, `start_step`+1, ... (endless unless `num_steps`).

    The batch of step s is the same for any `num_workers` and any `start_step` <= s. Datasets receive
    `SampleKey`s; see `vatt.data.sampler`. `shard` maps the stream of global batches to this process's
    slices of them (vatt.engine.distributed.ShardedBatchSampler). A failed sample is dropped from its
    batch, so a batch may be smaller than `batch_size`.

    A stream (an IterableDataset such as the "shards" dataset, which splits itself over ranks and workers
    and skips what it cannot read) is read epoch after epoch through its `set_epoch`; a resumed run starts
    at the beginning of the epoch that holds `start_step`, so streams do not replay batches exactly.
    """
    if not isinstance(max_failure_rate, (int, float)) or not 0 <= max_failure_rate <= 1:
        raise ValueError(f"max_failure_rate must be in [0, 1], got {max_failure_rate!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, start_step]).generate_state(1)[0]))
    if isinstance(dataset, IterableDataset):
        return _stream_batches(dataset, batch_size=batch_size, start_step=start_step, num_workers=num_workers,
                               drop_last=drop_last, generator=generator)
    sampler = StepBatchSampler(len(dataset), batch_size, seed=seed, start_step=start_step, drop_last=drop_last,
                               num_steps=num_steps, keyed=True)
    batches = shard(sampler) if shard is not None else sampler
    context = multiprocessing.get_context() if num_workers else None
    slots = context.Array("c", SLOT_BYTES * num_workers, lock=False) if num_workers else None
    pids = context.Array("q", num_workers, lock=False) if num_workers else None
    options: dict[str, Any] = {"prefetch_factor": prefetch_factor} if num_workers and prefetch_factor else {}
    loader = DataLoader(_Guarded(dataset, slots, pids), batch_sampler=batches, collate_fn=_collate_kept,
                        num_workers=num_workers, worker_init_fn=_SeedWorker(pids), generator=generator,
                        multiprocessing_context=context, pin_memory=pin_memory, **options)
    return Batches(dataset, loader, max_failure_rate, slots, pids)
