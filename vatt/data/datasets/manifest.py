"""The generic manifest: one clip source per line, in JSONL or (for the flat case) CSV.

JSONL, every key but "video" optional, paths relative to the manifest's folder:

    {"video": "clips/a.mp4", "start": 12.0, "end": 22.0,
     "captions": [{"start": 12.5, "end": 15.0, "text": "..."}], "labels": ["..."]}

"video" names any media file (audio-only files too). A caption may also be a bare string, which then spans
the whole source; "labels" may be a single string. CSV: a header naming `video` and any of `start`, `end`,
`caption` (one caption spanning the source) and `label` (several separated by ";").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vatt.data.captions import Caption
from vatt.data.datasets.base import ClipDataset, ClipEntry, settings_from, sorted_classes, tokenizer_for, with_clip_settings
from vatt.data.datasets.index_files import csv_records, require_file, text_lines
from vatt.messages import shown
from vatt.registry import register

CSV_LABEL_SEPARATOR = ";"


def _number(value: Any, where: str, key: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {key} must be a number of seconds, got {shown(value)}") from None
    if number < 0:
        raise ValueError(f"{where}: {key} must be >= 0, got {number}")
    return number


def _caption(value: Any, where: str) -> Caption:
    if isinstance(value, str):
        return Caption(value)
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        raise ValueError(f"{where}: a caption must be a string or {{\"text\": ..., \"start\": .., \"end\": ..}}, "
                         f"got {shown(value)}")
    return Caption(value["text"], _number(value.get("start"), where, "caption start"),
                   _number(value.get("end"), where, "caption end"))


def entry_from_record(record: dict, folder: Path, where: str) -> ClipEntry:
    """A ClipEntry from one manifest record (a JSON object or a CSV row turned into one)."""
    if not isinstance(record, dict) or not isinstance(record.get("video"), str) or not record["video"]:
        raise ValueError(f"{where}: each line needs a \"video\" path, got {shown(record)}")
    begin, end = _number(record.get("start"), where, "start"), _number(record.get("end"), where, "end")
    if begin is not None and end is not None and end <= begin:
        raise ValueError(f"{where}: end ({end}) must come after start ({begin})")
    captions = record.get("captions") or []
    labels = record.get("labels") or []
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(captions, list) or not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{where}: captions must be a list and labels a list of strings, got {shown(record)}")
    return ClipEntry(path=str((folder / record["video"]).resolve()), begin=begin, end=end,
                     captions=tuple(_caption(c, where) for c in captions), labels=tuple(labels))


def read_manifest(path: str | Path, root: str | Path | None = None) -> list[ClipEntry]:
    """Entries of a .jsonl or .csv manifest; media paths resolve against `root` (default: its folder)."""
    path = require_file(path, "manifest")
    folder = Path(root) if root is not None else path.parent
    if path.suffix.lower() == ".csv":
        records = [(where, {"video": row["video"], "start": row.get("start"), "end": row.get("end"),
                            "captions": [row["caption"]] if row.get("caption") else [],
                            "labels": [x for x in (row.get("label") or "").split(CSV_LABEL_SEPARATOR) if x]})
                   for where, row in csv_records(path, "manifest", ("video",))]
        return [entry_from_record(record, folder, where) for where, record in records]
    entries = []
    for where, line in text_lines(path, "manifest"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not a JSON object: {exc}") from None
        entries.append(entry_from_record(record, folder, where))
    return entries


@with_clip_settings
@register("datasets", "manifest", example={"path": "MANIFEST.jsonl"})
class ManifestDataset(ClipDataset):
    """Clips listed in a JSONL or CSV manifest (see the module docstring).

    `vocabulary` (a file from `python -m vatt.data build-vocab`) is needed when the manifest has captions.
    `classes` is a file with one class name per line fixing label ids across splits (default: the sorted
    label names found in this manifest); `multi_label` defaults to whether any entry has several labels.
    `empty_text` gives an uncaptioned manifest all-zero text blocks (text_mask 0), for pre-training mixes.
    """

    def __init__(self, path: str, *, root: str | None = None, vocabulary: str | None = None,
                 classes: str | None = None, multi_label: bool | None = None, candidates: int = 5,
                 max_words: int = 16, empty_text: bool = False, **clip):
        entries = read_manifest(path, root)
        has_captions = any(entry.captions for entry in entries)
        tokenizer = tokenizer_for(vocabulary, max_words, f"manifest {path}") if has_captions or vocabulary else None
        class_names = [line for _, line in text_lines(classes, "classes file")] if classes else sorted_classes(entries) or None
        if multi_label is None:
            multi_label = any(len(entry.labels) > 1 for entry in entries)
        super().__init__(entries, settings_from(clip, split_is_train=True), name=f"manifest {path}",
                         class_names=class_names, multi_label=multi_label, tokenizer=tokenizer,
                         candidates=candidates, empty_text=empty_text)
