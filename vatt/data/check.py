"""`python -m vatt.data check`: read every entry of a dataset (or a random sample of them) the way training
would, and report what is there and what is broken.

For each entry: the file's duration, frame rate and whether it has sound (from its header), the number of
captions, and whether a full sample (cut, decoded, transformed) can be made, timed, which gives the decode
throughput of one process.
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


@dataclass
class EntryReport:
    path: str
    ok: bool
    reason: str = ""
    duration: float | None = None
    fps: float | None = None
    has_audio: bool | None = None
    captions: int = 0
    seconds: float = 0.0


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


def check_dataset(dataset: ClipDataset, *, limit: int | None = None, seed: int = 0) -> list[EntryReport]:
    """Reports for every entry, or for `limit` entries drawn at random (seeded)."""
    indices = range(len(dataset))
    if limit is not None and limit < len(dataset):
        indices = sorted(np.random.default_rng(seed).choice(len(dataset), limit, replace=False).tolist())
    return [check_entry(dataset, i, seed) for i in indices]


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
        "checked": len(reports),
        "readable": len(readable),
        "unreadable": [{"path": r.path, "reason": r.reason} for r in reports if not r.ok],
        "without_audio": [r.path for r in reports if r.has_audio is False],
        "duration_s": _spread([r.duration for r in reports if r.duration is not None]),
        "fps": dict(Counter(f"{r.fps:g}" for r in reports if r.fps is not None).most_common()),
        "captions_per_clip": _spread([float(r.captions) for r in reports]),
        "clips_per_s": len(readable) / busy if busy > 0 else None,
        "reports": [asdict(r) for r in reports],
    }


def format_summary(summary: dict[str, Any], show: int = 20) -> str:
    def spread(key: str, unit: str = "") -> str:
        s = summary[key]
        return "-" if s is None else f"min {s['min']:.3g}{unit}, median {s['median']:.3g}{unit}, max {s['max']:.3g}{unit}"

    lines = [f"{summary['dataset']}: {summary['checked']} of {summary['entries']} entries checked, "
             f"{summary['readable']} readable, {len(summary['unreadable'])} unreadable"]
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
