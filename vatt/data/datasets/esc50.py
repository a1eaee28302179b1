"""ESC-50: 2,000 five-second environmental sound recordings in 50 classes and 5 folds.

Layout: `root/meta/esc50.csv` (filename, fold, target, category, ...) and `root/audio/<filename>` (wav).
The test set of fold k is fold k, its train set the four others. Audio only: samples have "audio",
"audio_mask" and "label", no "video".
"""

from __future__ import annotations

from vatt.data.datasets.base import ClipDataset, ClipEntry, report_missing, require_folder, settings_from, with_clip_settings
from vatt.data.datasets.index_files import csv_records, reading
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
        rows = []  # (filename, fold, target, category)
        for where, row in csv_records(meta, "esc50: the metadata", ("filename", "fold", "target", "category")):
            with reading(where):
                rows.append((row["filename"], int(row["fold"]), int(row["target"]), row["category"]))
        classes = [name for _, name in sorted({(target, category) for _, _, target, category in rows})]
        entries, missing = [], []
        for filename, row_fold, _, category in rows:
            if (row_fold == fold) != (split == "test"):
                continue
            path = folder / "audio" / filename
            if not path.is_file():
                missing.append(filename)
                continue
            entries.append(ClipEntry(str(path.resolve()), labels=(category,)))
        report_missing(f"esc50 {split} fold {fold}", missing, len(entries) + len(missing), index_file=meta,
                       skip=skip_missing)
        super().__init__(entries, settings_from({**clip, "read_video": False}, split_is_train=split == "train"),
                         name=f"esc50 {split} fold {fold}", class_names=classes)
