"""The data's failure policy, shared by every reader of samples, and the table that names what a worker read.

A sample whose file is missing, truncated, corrupt or too short is skipped, counted once (`FailureCounter`)
and logged with its path; more than `max_failure_rate` of the samples failing stops the read with
`DataError`, a configuration-level error that names the count and the first files. Any other exception is a
bug. A DataLoader worker killed outright (a crash inside a decoder) cannot report anything itself, so each
worker notes what it is reading in shared memory (`note_reading`, `ReadingTable`) and the main process names
it when the DataLoader reports the death.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
from dataclasses import dataclass
from typing import Any

import torch

from vatt.errors import DataError
from vatt.ranges import require

log = logging.getLogger("vatt.data")
SLOT_BYTES = 1024  # room for the path each worker is reading
SHOWN_PATHS = 5  # failed files named in a DataError
DEFAULT_MAX_FAILURE_RATE = 0.01
CHECK_HINT = "run `python -m vatt.data check` on the dataset to list every unreadable file"


@dataclass(frozen=True)
class Failure:
    index: Any  # the sample's index (a stream's: its name)
    path: str
    reason: str


class FailureCounter:
    """The distinct failed samples of one read: each is logged once with its path; more than
    `max_failure_rate` of `total` stops the read with `DataError` naming the count and the first files."""

    def __init__(self, total: int, max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE, *, what: str = "",
                 hint: str = CHECK_HINT):
        check_failure_rate(max_failure_rate)
        self.total = total
        self.max_failure_rate = max_failure_rate
        self.what = what  # e.g. "evaluation of msrvtt": prefixes the messages
        self.hint = hint
        self.failures: dict[Any, Failure] = {}  # distinct failed sample → its first failure
        self.count = 0  # failed samples; an entry may stand for several (the rest of a truncated shard)

    def __len__(self) -> int:
        return self.count

    def add(self, key: Any, path: str, reason: str, *, samples: int = 1, check: bool = True) -> None:
        """Count sample `key` (or `samples` samples lost together) as failed, unless already counted; then
        `check` the share unless told not to (a batch's failures are all counted first)."""
        if key not in self.failures:
            self.failures[key] = Failure(key, path, reason)
            self.count += samples
            where = f"{self.what}: " if self.what else ""
            lost = f"{samples} samples" if samples != 1 else f"sample {key}" if isinstance(key, int) else "sample"
            log.warning("%sskipping unreadable %s: %s: %s", where, lost, path, reason)
        if check:
            self.check()

    def check(self) -> None:
        if self.count > self.max_failure_rate * self.total:
            shown = list(self.failures.values())[:SHOWN_PATHS]
            lines = "\n".join(f"    {f.path}: {f.reason}" for f in shown)
            where = f"{self.what}: " if self.what else ""
            raise DataError(
                f"{where}{self.count} of {self.total} samples could not be read, more than the allowed "
                f"{self.max_failure_rate:.2%} (max_failure_rate); the first ones:\n{lines}\n{self.hint}")


def check_failure_rate(max_failure_rate: Any) -> None:
    require(0, 1, max_failure_rate=max_failure_rate)


_READING: dict[str, Any] = {}  # in a DataLoader worker: the shared table of what each worker is reading


def note_reading(where: str) -> None:
    """Note in the shared table that this DataLoader worker now reads `where`, so that if the worker dies
    outright the error can name it; does nothing outside a worker attached to a `ReadingTable`."""
    info = torch.utils.data.get_worker_info()
    slots = _READING.get("slots")
    if info is None or slots is None:
        return
    data = where.encode("utf-8", "replace")[: SLOT_BYTES - 1] + b"\0"
    start = info.id * SLOT_BYTES
    slots[start : start + len(data)] = data


@dataclass(frozen=True)
class ReadingTable:
    """Shared memory the workers write what they read into (`slots`, SLOT_BYTES each) and their `pids`."""
    slots: Any
    pids: Any

    @classmethod
    def for_workers(cls, num_workers: int) -> "ReadingTable | None":
        if not num_workers:
            return None
        context = multiprocessing.get_context()
        return cls(context.Array("c", SLOT_BYTES * num_workers, lock=False),
                   context.Array("q", num_workers, lock=False))

    def attach(self, worker_id: int) -> None:
        """In worker `worker_id` (from its worker_init_fn): record its pid, and make `note_reading` write here."""
        self.pids[worker_id] = os.getpid()
        _READING["slots"] = self.slots

    def explain_crash(self, exc: RuntimeError) -> None:
        """Re-raise a DataLoader's "worker (pid N) exited unexpectedly" naming what that worker was reading."""
        found = re.search(r"DataLoader worker \(pids?(?:\(s\))? ([\d, ]+)\)", str(exc))
        if found is None:
            return
        for pid in (int(p) for p in re.findall(r"\d+", found.group(1))):
            for worker_id, known in enumerate(self.pids):
                if known == pid:
                    raw = bytes(self.slots[worker_id * SLOT_BYTES : (worker_id + 1) * SLOT_BYTES])
                    path = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
                    raise RuntimeError(f"data loader worker {worker_id} (pid {pid}) died while reading "
                                       f"{path}") from exc
