"""Moments in Time: one million 3-second clips of 339 actions and events.

Layout: `root/moments_categories.txt` ("name,index" per line), the lists `root/trainingSet.csv` and
`root/validationSet.csv` (rows "label/file.mp4,label,..."), and the clips `root/training/<label>/<file>`,
`root/validation/<label>/<file>`.
"""

from __future__ import annotations

from vatt.data.datasets.base import ClipDataset, ClipEntry, report_missing, require_folder, settings_from, with_clip_settings
from vatt.data.datasets.index_files import csv_rows, reading, text_lines
from vatt.registry import register

SPLITS = {"train": ("trainingSet.csv", "training"), "val": ("validationSet.csv", "validation")}


@with_clip_settings
@register("datasets", "moments_in_time")
class MomentsInTime(ClipDataset):
    """Moments in Time clips with "label" (int64, moments_categories.txt order)."""

    def __init__(self, root: str, split: str = "train", *, skip_missing: bool = False, **clip):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        folder = require_folder(root, "moments_in_time")
        categories = folder / "moments_categories.txt"
        listing, videos = (folder / name for name in SPLITS[split])
        indexed = []
        for where, line in text_lines(categories, "moments_in_time: the category list"):
            with reading(where):
                name, index = line.rsplit(",", 1)
                indexed.append((int(index), name))
        classes = [name for _, name in sorted(indexed)]
        entries, missing = [], []
        for where, fields in csv_rows(listing, "moments_in_time: the clip list"):
            with reading(where):
                relative, label = fields[0], fields[1]
            path = videos / relative
            if not path.is_file():
                missing.append(relative)
                continue
            entries.append(ClipEntry(str(path.resolve()), labels=(label,)))
        report_missing(f"moments_in_time {split}", missing, len(entries) + len(missing), index_file=listing,
                       skip=skip_missing)
        super().__init__(entries, settings_from(clip, split_is_train=split == "train"),
                         name=f"moments_in_time {split}", class_names=classes)
