"""Training batches from a dataset: resumable order, seeded workers, and bad files skipped and counted.

`make_loader` wraps a DataLoader around a keyed `StepBatchSampler`, so the batch of step s is a pure
function of (seed, s) whatever the number of workers or where the run resumed. A sample whose file is
missing, truncated, corrupt or too short (`MediaError`) is dropped from its batch, counted once per distinct
sample and logged with its path, and the batch is refilled from the samples that follow in the sampler's
order (`_Refill`), so a run with many bad files still trains on full batches (a batch of one clip would leave
BatchNorm without statistics); when more than `max_failure_rate` of the dataset's samples have failed, the
run stops with `DataError` naming the count and some of the files. Any other exception in a worker is a bug:
it is re-raised naming the file the worker was reading, and a worker killed outright (a crash in a decoder)
is reported the same way; the workers, which also ignore the process group's stop signals, are
`vatt.data.workers`.

Evaluation reads a dataset once, in order, through the same guarded workers (`read_once`), and streams (the
packed shards) count their failures with the same `FailureCounter`, so every reader of samples follows one
policy: skip, log the path, stop above the share.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from vatt.data.failures import CHECK_HINT, DEFAULT_MAX_FAILURE_RATE, Failure, FailureCounter, ReadingTable, check_failure_rate
from vatt.data.sampler import SampleKey, StepBatchSampler, collate
from vatt.data.workers import GuardedDataset, SeedWorker, explain_crash, guarded_loader
from vatt.errors import DataError
from vatt.ranges import require

log = logging.getLogger("vatt.data")


def _concatenated(batch: dict, extra: dict) -> dict:
    return {key: torch.cat([value, extra[key]]) if torch.is_tensor(value) else value + extra[key]
            for key, value in batch.items()}


class _Refill:
    """Tops up, in the main process, a batch that lost unreadable samples: from the samples that follow the
    step's own in its epoch's order (then those before them), every `world`-th one starting at `rank`, so
    processes never draw the same sample and none draws one of the step's global batch. Samples known to fail
    are passed over. What replaces a sample is a pure function of (seed, step, rank), so a resumed run refills
    as the uninterrupted one did."""

    MIN_CLIPS = 2  # a batch of one clip leaves BatchNorm without statistics and a contrastive loss without negatives

    def __init__(self, dataset: Dataset, sampler: StepBatchSampler, rank: int, world: int):
        self.dataset = dataset
        self.sampler = sampler
        self.rank = rank
        self.world = world

    def fill(self, step: int, batch: dict | None, missing: int, counter: FailureCounter) -> dict:
        """``batch`` (None: every sample failed) of global step ``step`` with ``missing`` samples put back; a
        batch that stays below MIN_CLIPS for want of readable samples is a DataError."""
        target = _size(batch) + missing
        epoch, position = divmod(step, self.sampler.steps_per_epoch)
        order = self.sampler.epoch_order(epoch)
        start, end = position * self.sampler.batch_size, (position + 1) * self.sampler.batch_size
        candidates = itertools.chain(order[end:], order[:start])
        found = []
        for index in itertools.islice(candidates, self.rank, None, self.world):
            if len(found) == missing:
                break
            if int(index) in counter.failures:
                continue
            item = self.dataset[SampleKey(int(index), epoch, self.sampler.seed)]
            if isinstance(item, Failure):
                counter.add(item.index, item.path, item.reason)
            else:
                found.append(item)
        if found:
            batch = collate(found) if batch is None else _concatenated(batch, collate(found))
        if _size(batch) < min(self.MIN_CLIPS, target):
            raise DataError(f"step {step}: {_size(batch)} readable clip(s) for a batch of {target}, and no other "
                            f"sample of the dataset left to fill it: {len(counter)} of {counter.total} samples "
                            f"could not be read; {CHECK_HINT}")
        return batch


def _size(batch: dict | None) -> int:
    return 0 if batch is None else len(next(iter(batch.values())))


class Batches:
    """Iterator of collated batches (dicts) from `start_step` on; see `make_loader`."""

    def __init__(self, dataset: Dataset, loader: DataLoader, max_failure_rate: float, table: ReadingTable | None,
                 refill: _Refill, start_step: int):
        self.dataset = dataset
        self.counter = FailureCounter(len(dataset), max_failure_rate)
        self._table = table
        self._iterator = iter(loader)
        self._refill = refill
        self._step = start_step  # the global step of the next batch

    @property
    def max_failure_rate(self) -> float:
        return self.counter.max_failure_rate

    @property
    def failures(self) -> dict[Any, Failure]:
        """Distinct failed sample index → its first failure."""
        return self.counter.failures

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> dict:
        try:
            batch, failures = next(self._iterator)
        except RuntimeError as exc:
            explain_crash(exc, self._table)
            raise
        for failure in failures:
            self.counter.add(failure.index, failure.path, failure.reason, check=False)
        self.counter.check()
        step, self._step = self._step, self._step + 1
        return self._refill.fill(step, batch, len(failures), self.counter) if failures else batch


class OnePass:
    """One in-order pass over a map-style dataset for evaluation; see `read_once`.

    Iterating yields (indices [the dataset indices of the batch's samples], batch); afterwards `skipped` is
    the number of samples that could not be read and `failures` says which and why.
    """

    def __init__(self, dataset: Dataset, *, batch_size: int, num_workers: int, collate_fn: Callable,
                 max_failure_rate: float, what: str):
        require(1, whole=True, batch_size=batch_size)
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.counter = FailureCounter(len(dataset), max_failure_rate, what=what)

    @property
    def skipped(self) -> int:
        return len(self.counter)

    @property
    def failures(self) -> dict[Any, Failure]:
        return self.counter.failures

    def __iter__(self) -> Iterator[tuple[list[int], Any]]:
        size = len(self.dataset)
        keys = [list(range(start, min(start + self.batch_size, size))) for start in range(0, size, self.batch_size)]
        loader, table = guarded_loader(self.dataset, keys, num_workers=self.num_workers,
                                        collate_fn=self.collate_fn)
        iterator = iter(loader)
        for batch_keys in keys:  # the loader keeps the order of its batches
            try:
                batch, failures = next(iterator)
            except RuntimeError as exc:
                explain_crash(exc, table)
                raise
            for failure in failures:
                self.counter.add(failure.index, failure.path, failure.reason, check=False)
            self.counter.check()
            if batch is not None:
                failed = {failure.index for failure in failures}
                yield [key for key in batch_keys if key not in failed], batch
        if self.skipped:
            where = f"{self.counter.what}: " if self.counter.what else ""
            log.warning("%s%d of %d samples could not be read and were skipped; results are over the other %d",
                        where, self.skipped, size, size - self.skipped)


def read_once(dataset: Dataset, *, batch_size: int, num_workers: int = 0, collate_fn: Callable = collate,
              max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE, what: str = "") -> OnePass:
    """Every sample of `dataset` once, in order, in batches, as evaluation reads it: (indices, batch) pairs.

    A sample whose file is missing, truncated, corrupt or too short (`MediaError`) is left out of its batch
    (hence `indices`), counted and logged with its path, as in training; more than `max_failure_rate` of the
    dataset failing stops with `DataError`. Any other error names the file being read. `collate_fn` turns the
    readable samples of a batch into the batch (default: stacked into a dict). `what` prefixes the messages.
    """
    return OnePass(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_fn,
                   max_failure_rate=max_failure_rate, what=what)


def _stream_batches(dataset: IterableDataset, *, batch_size: int, start_step: int, num_workers: int,
                    drop_last: bool, generator: torch.Generator) -> Iterator[dict]:
    steps_per_epoch = max(1, getattr(dataset, "num_clips", batch_size) // batch_size)
    epoch = start_step // steps_per_epoch
    table = ReadingTable.for_workers(num_workers)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate, drop_last=drop_last,
                        num_workers=num_workers, worker_init_fn=SeedWorker(table), generator=generator)
    while True:
        dataset.set_epoch(epoch)
        batches = 0
        try:
            for batch in loader:
                batches += 1
                yield batch
        except DataError as exc:  # raised in a worker: DataLoader wraps the message in the worker's traceback
            marker = f"{DataError.__module__}.{DataError.__qualname__}: "
            if "Traceback (most recent call last)" in str(exc) and marker in str(exc):
                raise DataError(str(exc).rsplit(marker, 1)[1].strip()) from None
            raise
        except RuntimeError as exc:  # a worker killed outright: name the shard sample it was reading
            explain_crash(exc, table)
            raise
        if not batches:  # an empty epoch would be followed by empty epochs forever: a silent hang
            raise DataError(_empty_stream_message(dataset, epoch, batch_size, num_workers, drop_last))
        epoch += 1


def _empty_stream_message(dataset: IterableDataset, epoch: int, batch_size: int, num_workers: int,
                          drop_last: bool) -> str:
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    workers = max(1, num_workers)
    clips = getattr(dataset, "num_clips", None)
    shards = getattr(dataset, "shards", None)
    lines = [f"{getattr(dataset, 'name', type(dataset).__name__)}: epoch {epoch} gave rank {rank} no batch at all, "
             f"so training would wait forever"]
    if isinstance(shards, (list, tuple)):
        mine = [n for n in range(rank * workers, (rank + 1) * workers) if n < len(shards)]
        lines.append(f"{len(shards)} shards are split over {world} ranks x {workers} DataLoader workers = "
                     f"{world * workers} readers, and this rank's readers {rank * workers}..{(rank + 1) * workers - 1} "
                     f"get {'no shard' if not mine else f'shards holding fewer than {batch_size} readable clips'}; "
                     f"use fewer ranks or workers, or pack into more shards (pack --clips-per-shard)")
    if clips is not None:
        lines.append(f"{clips} clips in all, batch_size {batch_size} per rank, drop_last={drop_last}")
    return "\n  ".join(lines)


def make_loader(dataset: Dataset, *, batch_size: int, seed: int = 0, start_step: int = 0, num_workers: int = 0,
                max_failure_rate: float | None = None, drop_last: bool = True, num_steps: int | None = None,
                shard: Callable[[Iterable[list]], Iterable[list]] | None = None,
                prefetch_factor: int | None = None, pin_memory: bool = False) -> Iterator[dict]:
    """Batches of `dataset` for global steps `start_step`, `start_step`+1, ... (endless unless `num_steps`).

    The batch of step s is the same for any `num_workers` and any `start_step` <= s. Datasets receive
    `SampleKey`s; see `vatt.data.sampler`. `shard` maps the stream of global batches to this process's
    slices of them (vatt.engine.distributed.ShardedBatchSampler, whose `rank` and `world` also say which
    replacements for failed samples this process reads). A failed sample is replaced by a readable one from
    further on in the order, so a batch is smaller than `batch_size` only when the dataset has too few
    readable samples left to fill it (and below 2 clips that is a `DataError`).

    `max_failure_rate` (default 1 %) is the share of samples that may fail before the run stops.

    A stream (an IterableDataset such as the "shards" dataset, which splits itself over ranks and workers
    and skips what it cannot read under its own `max_failure_rate`, which a value given here replaces) is
    read epoch after epoch through its `set_epoch`; a resumed run starts at the beginning of the epoch that
    holds `start_step`, so streams do not replay batches exactly. An epoch that gives this process no batch
    at all (e.g. more ranks x workers than shards) stops with `DataError` naming the counts.
    """
    if max_failure_rate is not None:
        check_failure_rate(max_failure_rate)
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, start_step]).generate_state(1)[0]))
    if isinstance(dataset, IterableDataset):
        if max_failure_rate is not None and hasattr(dataset, "max_failure_rate"):
            dataset.max_failure_rate = max_failure_rate
        return _stream_batches(dataset, batch_size=batch_size, start_step=start_step, num_workers=num_workers,
                               drop_last=drop_last, generator=generator)
    sampler = StepBatchSampler(len(dataset), batch_size, seed=seed, start_step=start_step, drop_last=drop_last,
                               num_steps=num_steps, keyed=True)
    batches = shard(sampler) if shard is not None else sampler
    loader, table = guarded_loader(dataset, batches, num_workers=num_workers, generator=generator,
                                    prefetch_factor=prefetch_factor, pin_memory=pin_memory)
    rate = DEFAULT_MAX_FAILURE_RATE if max_failure_rate is None else max_failure_rate
    # its own sampler of the same order: the loader's caches the epoch the workers are being fed, maybe the next
    refill = _Refill(GuardedDataset(dataset), StepBatchSampler(len(dataset), batch_size, seed=seed, drop_last=drop_last),
                     rank=getattr(batches, "rank", 0), world=getattr(batches, "world", 1))
    return Batches(dataset, loader, rate, table, refill, start_step)
