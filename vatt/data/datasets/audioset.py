"""AudioSet: 10-second YouTube segments with multi-label sound classes from the AudioSet ontology.

Layout: the segment lists `root/{balanced_train,unbalanced_train,eval}_segments.csv` (comment lines start
with "#"; rows `YTID, start_seconds, end_seconds, "label_mid,label_mid"`), the class list
`root/class_labels_indices.csv` (index,mid,display_name) and the downloaded segments under
`root/<split>/`, named `<YTID>.<ext>`, `Y<YTID>.<ext>` or `<YTID>_<start>_<end>.<ext>` (video or audio
files). Segments without a file are left out and counted. AudioSet has no text: in a pre-training mix its
samples carry an empty text block with text_mask 0.
"""

from __future__ import annotations

from pathlib import Path

from vatt.data.datasets.base import ClipDataset, ClipEntry, index_media, report_missing, require_folder, settings_from, with_clip_settings
from vatt.data.datasets.index_files import csv_records, csv_rows, reading
from vatt.registry import register

SPLITS = ("balanced_train", "unbalanced_train", "eval")


def read_segments(path: Path) -> list[tuple[str, float, float, list[str]]]:
    rows = []
    for where, fields in csv_rows(path, "AudioSet segment list", comment="#", skipinitialspace=True):
        with reading(where):
            ytid, start, end, labels = fields[0], float(fields[1]), float(fields[2]), fields[3]
        rows.append((ytid, start, end, [m for m in labels.split(",") if m]))
    return rows


def read_classes(path: Path) -> tuple[list[str], dict[str, str]]:
    """Display names in index order, and mid → display name."""
    indexed = []
    for where, row in csv_records(path, "AudioSet class list", ("index", "mid", "display_name")):
        with reading(where):
            indexed.append((int(row["index"]), row))
    rows = [row for _, row in sorted(indexed, key=lambda pair: pair[0])]
    return [r["display_name"] for r in rows], {r["mid"]: r["display_name"] for r in rows}


@with_clip_settings
@register("datasets", "audioset")
class AudioSet(ClipDataset):
    """AudioSet segments with multi-hot "labels" [527]; an empty text block for pre-training mixes."""

    def __init__(self, root: str, split: str = "balanced_train", *, candidates: int = 5, skip_missing: bool = True,
                 **clip):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        folder = require_folder(root, "audioset")
        names, by_mid = read_classes(folder / "class_labels_indices.csv")
        media = index_media(folder / split)
        entries, missing = [], []
        for ytid, start, end, mids in read_segments(folder / f"{split}_segments.csv"):
            path = next((media[k] for k in (ytid, f"Y{ytid}", f"{ytid}_{start:g}_{end:g}",
                                            f"{ytid}_{int(start * 1000)}_{int(end * 1000)}") if k in media), None)
            if path is None:
                missing.append(ytid)
                continue
            unknown = [m for m in mids if m not in by_mid]
            if unknown:
                raise ValueError(f"audioset {split}: segment {ytid} has labels {unknown} outside the class list")
            entries.append(ClipEntry(path, labels=tuple(by_mid[m] for m in mids)))
        report_missing(f"audioset {split}", missing, len(entries) + len(missing),
                       index_file=folder / f"{split}_segments.csv", skip=skip_missing)
        super().__init__(entries, settings_from(clip, split_is_train=split != "eval"), name=f"audioset {split}",
                         class_names=names, multi_label=True, candidates=candidates, empty_text=True)
