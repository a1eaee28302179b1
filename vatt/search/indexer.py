"""`python -m vatt.search index`: embed every window of a source's files into an index folder.

Decoding runs in DataLoader workers (`WindowStream`), each reading its share of the files into batches of
windows, while the main process embeds the batches it receives and commits each file once all its windows
are embedded: the pipeline overlaps decoding with the forward pass, and an interruption loses no committed
file. A re-run indexes only new or changed files (by path, size and mtime) and drops the files the source
no longer has. A file that cannot be read (`MediaError`) is skipped, counted and listed in the summary.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from vatt.data.decode import MediaError, MediaFile
from vatt.errors import UserError
from vatt.search import approximate
from vatt.search.model import MediaSettings, SearchModel
from vatt.search.store import FileRecord, Index
from vatt.search.windows import check_length, file_kind, read_windows, span_of, window_starts, windows_per_chunk

KINDS = ("video", "audio")
PREFETCH = 4  # batches each worker reads ahead of the forward pass
SHOWN_FAILURES = 20  # unreadable files named in the error when none could be read


@dataclass(frozen=True)
class Job:
    position: int
    path: str
    size: int
    mtime_ns: int


@dataclass
class WindowBatch:
    """What a worker sends: up to `batch_size` windows of one kind (inputs [B, *sample], with their file
    positions and times), the files whose last window is in this batch or an earlier one (`done`: position,
    duration) and the files that failed (`failed`: position, reason)."""
    kind: str = "video"
    inputs: torch.Tensor | None = None
    files: list[int] = field(default_factory=list)
    times: list[tuple[float, float]] = field(default_factory=list)
    done: list[tuple[int, float]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


class _Pending:
    """A worker's windows of one kind not yet sent, and its finished files whose windows are all sent."""

    def __init__(self, kind: str):
        self.kind = kind
        self.inputs: list[torch.Tensor] = []  # one [*sample] per window
        self.files: list[int] = []
        self.times: list[tuple[float, float]] = []
        self.finished: dict[int, float] = {}

    def add(self, position: int, inputs: torch.Tensor, times: list[tuple[float, float]]) -> None:
        self.inputs.extend(inputs.unbind(0))
        self.files.extend([position] * len(inputs))
        self.times.extend(times)

    def drop(self, position: int) -> None:
        keep = [i for i, p in enumerate(self.files) if p != position]
        self.inputs, self.files, self.times = ([xs[i] for i in keep] for xs in (self.inputs, self.files, self.times))
        self.finished.pop(position, None)

    def take(self, count: int) -> WindowBatch:
        inputs, self.inputs = self.inputs[:count], self.inputs[count:]
        files, self.files = self.files[:count], self.files[count:]
        times, self.times = self.times[:count], self.times[count:]
        waiting = set(self.files)
        done = [(p, d) for p, d in self.finished.items() if p not in waiting]
        for position, _ in done:
            del self.finished[position]
        return WindowBatch(self.kind, torch.stack(inputs) if inputs else None, files, times, done)


class WindowStream(IterableDataset):
    """The windows of `jobs`, read by each DataLoader worker from its own share of the files."""

    def __init__(self, jobs: list[Job], media: MediaSettings, strides: dict[str, float], batch_size: int,
                 towers: tuple[str, ...]):
        self.jobs = jobs
        self.towers = towers
        self.media = media
        self.strides = strides
        self.batch_size = batch_size

    def __iter__(self):
        worker = get_worker_info()
        jobs = self.jobs if worker is None else self.jobs[worker.id::worker.num_workers]
        pending = {kind: _Pending(kind) for kind in KINDS}
        failed: list[tuple[int, str]] = []
        for job in jobs:
            kind = None
            try:
                with MediaFile(job.path) as file:
                    info = file.info
                    kind = file_kind(info)
                    if kind not in self.towers:
                        raise MediaError(job.path, f"is a {kind} file and the model has no {kind} tower")
                    check_length(info, self.media)
                    span = span_of(self.media, kind)
                    starts = window_starts(info.start, info.end, span, self.strides[kind])
                    step = windows_per_chunk(info, self.media)
                    for first in range(0, len(starts), step):
                        chunk = starts[first:first + step]
                        inputs = read_windows(file, kind, chunk, self.media)  # [n, *sample]
                        pending[kind].add(job.position, inputs, [(s, min(s + span, info.end)) for s in chunk])
                        while len(pending[kind].files) >= self.batch_size:
                            yield self._with(pending[kind].take(self.batch_size), failed)
                    pending[kind].finished[job.position] = info.duration
            except MediaError as exc:
                if kind is not None:
                    pending[kind].drop(job.position)
                failed.append((job.position, exc.reason))
        for kind in KINDS:
            while pending[kind].files or pending[kind].finished:
                yield self._with(pending[kind].take(self.batch_size), failed)
        if failed:
            yield self._with(WindowBatch(), failed)

    @staticmethod
    def _with(batch: WindowBatch, failed: list[tuple[int, str]]) -> WindowBatch:
        batch.failed, failed[:] = list(failed), []
        return batch


def _as_is(batch: WindowBatch) -> WindowBatch:
    return batch


@dataclass
class Summary:
    indexed: int = 0
    windows: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self, directory: Path, counts: dict[str, int]) -> list[str]:
        rate = self.windows / self.seconds if self.seconds > 0 else 0.0
        lines = [f"indexed {self.indexed} file(s), {self.windows} window(s) in {self.seconds:.1f} s ({rate:.1f} "
                 f"windows/s); {self.unchanged} unchanged, {self.removed} removed, {len(self.failed)} unreadable",
                 f"{directory}: " + ", ".join(f"{v} {k}" for k, v in counts.items())]
        if self.failed:
            lines.append(f"unreadable, skipped ({len(self.failed)}):")
            lines += [f"  {path}: {reason}" for path, reason in self.failed]
        return lines


def window_loader(model: SearchModel, jobs: list[Job], *, stride: float | None, batch_size: int,
                  num_workers: int) -> DataLoader:
    """The WindowBatches of `jobs`, read by `num_workers` DataLoader processes (none: in this one)."""
    strides = {kind: stride or span_of(model.media, kind) for kind in KINDS}
    workers = min(num_workers, len(jobs))
    return DataLoader(WindowStream(jobs, model.media, strides, batch_size, model.modalities), batch_size=None,
                      collate_fn=_as_is, num_workers=workers, prefetch_factor=PREFETCH if workers else None)


def index_metadata(model: SearchModel, stride: float | None) -> dict:
    return {"model": model.path, "fingerprint": model.fingerprint, "media": model.media.to_dict(),
            "stride": stride, "widths": {kind: model.space_widths(kind) for kind in KINDS if kind in model.modalities}}


def plan(index: Index, paths: list[str]) -> tuple[list[Job], list[int], int, list[tuple[str, str]]]:
    """(jobs for new and changed files, ids of indexed files to remove, unchanged count, files that vanished)."""
    known = index.files()
    jobs, remove, unchanged, missing = [], [], 0, []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError as exc:
            missing.append((path, f"cannot be read: {exc.strerror}"))
            continue
        record = known.pop(path, None)
        if record is not None and (record.size, record.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            unchanged += 1
            continue
        if record is not None:
            remove.append(record.id)
        jobs.append(Job(len(jobs), path, stat.st_size, stat.st_mtime_ns))
    remove += [record.id for record in known.values()]  # indexed, but the source no longer has them
    return jobs, remove, unchanged, missing


def build_index(model: SearchModel, paths: list[str], directory: str | Path, *, stride: float | None = None,
                batch_size: int = 32, num_workers: int = 2, progress: bool = True,
                approximate_index: bool = False) -> tuple[Summary, Index]:
    """Index `paths` into `directory` (created or updated); returns the summary and the open index. With
    `approximate_index` (or when the index has one already) the approximate indexes are brought up to date."""
    if stride is not None and stride <= 0:
        raise UserError(f"--stride must be a positive number of seconds, got {stride}")
    index = Index.create_or_open(directory, index_metadata(model, stride))
    jobs, remove, unchanged, failed = plan(index, paths)
    summary = Summary(unchanged=unchanged, removed=len(remove), failed=failed)
    index.remove_files(remove)
    started = time.perf_counter()
    loader = window_loader(model, jobs, stride=stride, batch_size=batch_size, num_workers=num_workers)
    buffers: dict[int, list] = {}
    with tqdm(total=len(jobs), unit="file", desc="indexing", disable=not progress or not jobs,
              dynamic_ncols=True) as bar:
        for batch in loader:
            if batch.inputs is not None:
                vectors = {space: z.numpy().astype(np.float16)
                           for space, z in model.embed(batch.kind, batch.inputs).items()}  # {space: [B, d]}
                for n, (position, times) in enumerate(zip(batch.files, batch.times)):
                    buffers.setdefault(position, []).append((times, {s: v[n] for s, v in vectors.items()}))
                summary.windows += len(batch.files)
            for position, reason in batch.failed:
                buffers.pop(position, None)
                summary.failed.append((jobs[position].path, reason))
            added = [_finished(jobs[p], batch.kind, duration, buffers.pop(p)) for p, duration in batch.done]
            if added:
                index.add_files(added)
                summary.indexed += len(added)
            bar.update(len(added) + len(batch.failed))
            elapsed = time.perf_counter() - started
            bar.set_postfix_str(f"{summary.windows / max(elapsed, 1e-9):.1f} windows/s", refresh=False)
    if index.unused_rows():
        index.compact()
    if approximate_index or approximate.built(index):
        for kind, spaces in index.widths.items():
            for space in spaces:
                if index.rows(kind) and approximate.load(index, kind, space) is None:
                    approximate.build(index, kind, space)
    summary.seconds = time.perf_counter() - started
    if summary.failed and not index.counts()["files"]:  # nothing searchable came of it: say so, and fail
        raise UserError(f"none of the {len(paths)} file(s) could be read:\n"
                        + "\n".join(f"  {p}: {r}" for p, r in summary.failed[:SHOWN_FAILURES]))
    return summary, index


def _finished(job: Job, kind: str, duration: float, windows: list) -> tuple:
    record = FileRecord(job.path, job.size, job.mtime_ns, kind, duration)
    times = [times for times, _ in windows]
    vectors = {space: np.stack([v[space] for _, v in windows]) for space in windows[0][1]}  # {space: [n, d]}
    return record, times, vectors
