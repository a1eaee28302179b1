"""`python -m vatt.data check`: read every entry of a dataset (or a random sample of them) the way training
would, and report what is there and what is broken.

For each entry: the file's duration, frame rate and whether it has sound (from its header), the number of
captions, and whether a full sample (cut, decoded, transformed) can be made, timed, which gives the decode
throughput of one process. Packed shards are read the same way, sample by sample (their metadata in place of
the header); a shard that breaks off is one report for all the samples it lost.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vatt.data.datasets.base import ClipDataset
from vatt.data.decode import MediaError, probe
from vatt.data.sampler import SampleKey
from vatt.data.shards import PackedClip, PackedSample, ShardDataset, Unreadable, packed_samples


@dataclass
class EntryReport:
    path: str
    ok: bool
    reason: str = ""
    duration: float | None = None
    fps: float | None = None
    has_audio: bool | None = None
    captions: int | None = 0  # None: unknown (a sample whose metadata could not be read)
    seconds: float = 0.0
    samples: int = 1  # how many samples the report stands for (more for the rest of a shard that breaks off)


def check_entry(dataset: ClipDataset, index: int, seed: int) -> EntryReport:
    entry = dataset.entries[index]
    report = EntryReport(path=dataset.source(index), ok=False, captions=len(entry.captions))
    try:
        info = probe(entry.path)
        report.duration, report.fps, report.has_audio = info.duration, info.fps, info.has_audio
        started = time.perf_counter()
        dataset[SampleKey(index, 0, seed)]
        report.seconds = time.perf_counter() - started
        report.ok = True
    except MediaError as exc:
        report.reason = exc.reason
    except Exception as exc:  # a checker reports everything it meets rather than stopping at the first
        report.reason = f"{type(exc).__name__}: {exc}"
    return report


def entry_count(dataset: ClipDataset | ShardDataset) -> int:
    return dataset.num_clips if isinstance(dataset, ShardDataset) else len(dataset)


def _drawn(total: int, limit: int | None, seed: int) -> list[int]:
    """Every index below `total`, or `limit` of them drawn at random (seeded), in order."""
    if limit is None or limit >= total:
        return list(range(total))
    return sorted(np.random.default_rng(seed).choice(total, limit, replace=False).tolist())


def check_dataset(dataset: ClipDataset | ShardDataset, *, limit: int | None = None,
                  seed: int = 0) -> list[EntryReport]:
    """Reports for every entry, or for `limit` entries drawn at random (seeded)."""
    if isinstance(dataset, ShardDataset):
        return check_shards(dataset, _drawn(dataset.num_clips, limit, seed))
    return [check_entry(dataset, i, seed) for i in _drawn(len(dataset), limit, seed)]


def check_packed(dataset: ShardDataset, packed: PackedSample) -> EntryReport:
    report = EntryReport(path=packed.where, ok=False, captions=None)
    try:
        clip = PackedClip(packed.where, packed.members)
        report.duration, report.fps, report.has_audio = clip.info.duration, clip.info.fps, clip.info.has_audio
        report.captions = len(clip.meta["captions"])
        started = time.perf_counter()
        dataset.sample(packed)
        report.seconds = time.perf_counter() - started
        report.ok = True
    except MediaError as exc:
        report.reason = exc.reason
    except Exception as exc:  # as check_entry: report everything
        report.reason = f"{type(exc).__name__}: {exc}"
    return report


def check_shards(dataset: ShardDataset, wanted: list[int]) -> list[EntryReport]:
    """Reports for the packed samples at positions `wanted` (counted over the shards in index order). Only
    shards that hold a wanted sample are read, each up to its last wanted one."""
    reports, first = [], 0
    for shard in dataset.shards:
        count = dataset.clips_in[shard]
        mine = {n - first for n in wanted if first <= n < first + count}  # positions within this shard
        first += count
        position = 0
        for packed in packed_samples(shard, count) if mine else ():
            lost = packed.samples if isinstance(packed, Unreadable) else 1
            hit = len(mine.intersection(range(position, position + lost)))
            position += lost
            if hit and isinstance(packed, Unreadable):
                reports.append(EntryReport(path=packed.where, ok=False, reason=packed.reason, captions=None,
                                           samples=hit))
            elif hit:
                reports.append(check_packed(dataset, packed))
            if position > max(mine):
                break
    return reports


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def summarize(name: str, total: int, reports: list[EntryReport]) -> dict[str, Any]:
    readable = [r for r in reports if r.ok]
    busy = sum(r.seconds for r in readable)
    return {
        "dataset": name,
        "entries": total,
        "checked": sum(r.samples for r in reports),
        "readable": len(readable),
        "unreadable": [{"path": r.path, "reason": r.reason, "samples": r.samples} for r in reports if not r.ok],
        "without_audio": [r.path for r in reports if r.has_audio is False],
        "duration_s": _spread([r.duration for r in reports if r.duration is not None]),
        "fps": dict(Counter(f"{r.fps:g}" for r in reports if r.fps is not None).most_common()),
        "captions_per_clip": _spread([float(r.captions) for r in reports if r.captions is not None]),
        "clips_per_s": len(readable) / busy if busy > 0 else None,
        "reports": [asdict(r) for r in reports],
    }


def format_summary(summary: dict[str, Any], show: int = 20) -> str:
    def spread(key: str, unit: str = "") -> str:
        s = summary[key]
        return "-" if s is None else f"min {s['min']:.3g}{unit}, median {s['median']:.3g}{unit}, max {s['max']:.3g}{unit}"

    lines = [f"{summary['dataset']}: {summary['checked']} of {summary['entries']} entries checked, "
             f"{summary['readable']} readable, {summary['checked'] - summary['readable']} unreadable"]
    for bad in summary["unreadable"][:show]:
        lines.append(f"  unreadable: {bad['path']}: {bad['reason']}")
    if len(summary["unreadable"]) > show:
        lines.append(f"  ... and {len(summary['unreadable']) - show} more (--json lists all)")
    lines.append(f"  without audio: {len(summary['without_audio'])}")
    lines.append(f"  duration: {spread('duration_s', ' s')}")
    lines.append(f"  fps: {', '.join(f'{k} ({v})' for k, v in summary['fps'].items()) or '-'}")
    lines.append(f"  captions per clip: {spread('captions_per_clip')}")
    rate = summary["clips_per_s"]
    lines.append(f"  decode throughput: {rate:.1f} clips/s in one process" if rate else "  decode throughput: -")
    return "\n".join(lines)
