"""The DataLoader's worker processes, as every reader of samples runs them (`vatt.data.loader`).

Each worker notes in a shared table what it is reading, so that a worker killed outright (a crash in a
decoder) is reported naming the file; it turns an unreadable sample (`MediaError`) into a `Failure` that the
main process counts, and any other exception into an error naming the file. Workers seed numpy and `random`
from their torch seed, and ignore the stop signals a terminal or a launcher sends to the whole process group
(Ctrl-C, SIGTERM): the main process finishes its step and saves a checkpoint first, then shuts them down
itself.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import threading
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vatt.data.decode import MediaError
from vatt.data.failures import Failure, ReadingTable, note_reading
from vatt.data.sampler import SampleKey, collate


def describe(dataset: Dataset, key: Any) -> str:
    source = getattr(dataset, "source", None)
    index = key.index if isinstance(key, SampleKey) else key
    return source(key) if callable(source) else f"sample {index}"


class GuardedDataset(Dataset):
    """Runs in the workers: notes what it reads, turns MediaError into a Failure, names the file otherwise."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> dict | Failure:
        where = describe(self.dataset, key)
        note_reading(where)
        try:
            return self.dataset[key]
        except MediaError as exc:
            return Failure(key.index if isinstance(key, SampleKey) else int(key), exc.path, exc.reason)
        except Exception as exc:
            raise RuntimeError(f"data loading failed while reading {where}: {type(exc).__name__}: {exc}") from exc


def explain_crash(exc: RuntimeError, table: ReadingTable | None) -> None:
    if table is not None:
        table.explain_crash(exc)


def collate_kept(items: list, collate_fn: Callable = collate) -> tuple[Any, list[Failure]]:
    failures = [item for item in items if isinstance(item, Failure)]
    kept = [item for item in items if not isinstance(item, Failure)]
    return (collate_fn(kept) if kept else None), failures


class SeedWorker:
    """worker_init_fn: numpy and `random` seeded from the worker's torch seed (itself from the loader's
    seeded generator), so code using global RNGs is reproducible too; records the worker's pid and installs
    the table of what each worker reads (see `note_reading`); leaves the stop signals to the main process."""

    def __init__(self, table: ReadingTable | None):
        self.table = table

    def __call__(self, worker_id: int) -> None:
        seed = torch.initial_seed() % 2**32
        np.random.seed(seed)
        random.seed(seed)
        if self.table is not None:
            self.table.attach(worker_id)
        _ignore_group_stop_signals()


def _ignore_group_stop_signals() -> None:
    """In a worker: ignore SIGINT, and SIGTERM unless the main process sends it. A terminal's Ctrl-C, a `kill`
    of the process group and torchrun's forwarding reach every process of the group, the workers included; a
    worker that died of them would end the main process's step with an error blaming the file it was reading.
    The main process's own SIGTERM is the DataLoader's `terminate()` of a worker that does not exit: that one
    still ends the worker, as torch's worker handler ends it (a Python handler cannot tell who sent a signal,
    so a thread waits for SIGTERM, blocked everywhere else, and reads its sender)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):  # macOS: SIGTERM keeps torch's handler
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # inherited by every thread started from here
    threading.Thread(target=_end_on_sigterm_from, args=(os.getppid(),), name="sigterm-from-main",
                     daemon=True).start()


def _end_on_sigterm_from(main_pid: int) -> None:
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == main_pid:
            os._exit(0)


def guarded_loader(dataset: Dataset, batches: Iterable[list], *, num_workers: int, collate_fn: Callable = collate,
                    generator: torch.Generator | None = None, prefetch_factor: int | None = None,
                    pin_memory: bool = False) -> tuple[DataLoader, ReadingTable | None]:
    """A DataLoader over `batches` of keys whose items are samples or `Failure`s, collated as
    (batch or None, failures), with the table of what each worker reads: (loader, table)."""
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
    table = ReadingTable.for_workers(num_workers)
    options: dict[str, Any] = {"prefetch_factor": prefetch_factor} if num_workers and prefetch_factor else {}
    loader = DataLoader(GuardedDataset(dataset), batch_sampler=batches,
                        collate_fn=functools.partial(collate_kept, collate_fn=collate_fn),
                        num_workers=num_workers, worker_init_fn=SeedWorker(table), generator=generator,
                        pin_memory=pin_memory, **options)
    return loader, table
