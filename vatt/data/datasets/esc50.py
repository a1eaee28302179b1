"""ESC-50: 2,000 five-second environmental sound recordings in 50 classes and 5 folds.

Layout: `root/meta/esc50.csv` (filename, fold, target, category, ...) and `root/audio/<filename>` (wav).
The test set of fold k is fold k, its train set the four others. Audio only: samples have "audio",
"audio_mask" and "label", no "video".
"""

from __future__ import annotations

import csv

from vatt.data.datasets.base import ClipDataset, ClipEntry, report_missing, require_folder, settings_from, with_clip_settings
from vatt.registry import register

SPLITS = ("train", "test")


@with_clip_settings
@register("datasets", "esc50")
class ESC50(ClipDataset):
    """ESC-50 recordings of one cross-validation fold (1-5) with "label" (int64, the CSV's target ids)."""

    def __init__(self, root: str, split: str = "train", *, fold: int = 1, skip_missing: bool = False, **clip):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if fold not in (1, 2, 3, 4, 5):
            raise ValueError(f"fold must be 1 to 5, got {fold!r}")
        folder = require_folder(root, "esc50")
        meta = folder / "meta" / "esc50.csv"
        if not meta.is_file():
            raise ValueError(f"esc50: {meta} does not exist")
        with meta.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        classes = [name for _, name in sorted({(int(r["target"]), r["category"]) for r in rows})]
        entries, missing = [], []
        for row in rows:
            if (int(row["fold"]) == fold) != (split == "test"):
                continue
            path = folder / "audio" / row["filename"]
            if not path.is_file():
                missing.append(row["filename"])
                continue
            entries.append(ClipEntry(str(path.resolve()), labels=(row["category"],)))
        report_missing(f"esc50 {split} fold {fold}", missing, len(entries) + len(missing), index_file=meta,
                       skip=skip_missing)
        super().__init__(entries, settings_from({**clip, "read_video": False}, split_is_train=split == "train"),
                         name=f"esc50 {split} fold {fold}", class_names=classes)
