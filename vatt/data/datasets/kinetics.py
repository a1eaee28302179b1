"""Kinetics-400 / 600 (and 700): 10-second YouTube clips of human actions, one label each.

Layout: the annotation CSVs `root/{train,validate,test}.csv` (or under `root/annotations/`; the header names
label, youtube_id, time_start, time_end), and the clips under `root/<split>/` (any depth), named
`<youtube_id>_<start:06d>_<end:06d>.<ext>` as the common downloaders write them, or `<youtube_id>.<ext>`.
The classes are the sorted labels of the train CSV, so every split shares one numbering; `num_classes` is
400 or 600 by the version downloaded.
"""

from __future__ import annotations

from pathlib import Path

from vatt.data.datasets.base import ClipDataset, ClipEntry, index_media, report_missing, require_folder, settings_from, with_clip_settings
from vatt.data.datasets.index_files import csv_records, reading
from vatt.registry import register

SPLIT_FILES = {"train": ("train",), "val": ("validate", "val"), "test": ("test",)}


def annotation_file(root: Path, split: str) -> Path:
    for folder in (root, root / "annotations"):
        for stem in SPLIT_FILES[split]:
            if (folder / f"{stem}.csv").is_file():
                return folder / f"{stem}.csv"
    raise ValueError(f"kinetics: no {split} annotation CSV ({'/'.join(SPLIT_FILES[split])}.csv) in {root} "
                     f"or {root / 'annotations'}")


def read_annotations(path: Path, *, labelled: bool) -> list[tuple[str, int, int, str]]:
    """(youtube_id, start, end, label) of each row; `labelled`: the file must have a label column."""
    columns = ("label", "youtube_id", "time_start", "time_end") if labelled else ("youtube_id", "time_start", "time_end")
    rows = []
    for where, row in csv_records(path, "kinetics: the annotation CSV", columns):
        with reading(where):
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        rows.append((row["youtube_id"], start, end, row.get("label", "")))
    return rows


@with_clip_settings
@register("datasets", "kinetics")
class Kinetics(ClipDataset):
    """Kinetics clips with "label" (int64) over the train CSV's classes."""

    def __init__(self, root: str, split: str = "train", *, skip_missing: bool = False, **clip):
        if split not in SPLIT_FILES:
            raise ValueError(f"split must be one of {', '.join(SPLIT_FILES)}, got {split!r}")
        folder = require_folder(root, "kinetics")
        classes = sorted({label for *_, label in read_annotations(annotation_file(folder, "train"), labelled=True)})
        media = index_media(folder / split if (folder / split).is_dir() else folder)
        entries, missing = [], []
        for youtube_id, start, end, label in read_annotations(annotation_file(folder, split), labelled=False):
            stem = f"{youtube_id}_{start:06d}_{end:06d}"
            path = media.get(stem) or media.get(youtube_id)
            if path is None:
                missing.append(stem)
                continue
            entries.append(ClipEntry(path, labels=(label,) if label else ()))
        report_missing(f"kinetics {split}", missing, len(entries) + len(missing),
                       index_file=annotation_file(folder, split), skip=skip_missing)
        super().__init__(entries, settings_from(clip, split_is_train=split == "train"), name=f"kinetics {split}",
                         class_names=classes)
