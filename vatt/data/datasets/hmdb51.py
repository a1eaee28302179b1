"""HMDB51: 6,766 clips of 51 actions, with the three official 70/30 splits.

Layout: the videos `root/<class>/<name>.avi` (or under `root/videos/`) and the split files
`root/testTrainMulti_7030_splits/<class>_test_split<N>.txt`, whose lines "<name>.avi <tag>" put a video in
the train set (tag 1), the test set (2) or neither (0). Classes are numbered in sorted order.
"""

from __future__ import annotations

import re

from vatt.data.datasets.base import ClipDataset, ClipEntry, report_missing, require_folder, settings_from, with_clip_settings
from vatt.data.datasets.index_files import text_lines
from vatt.registry import register

TAGS = {"train": "1", "test": "2"}
SPLIT_FILE = re.compile(r"^(?P<label>.+)_test_split(?P<number>[123])\.txt$")


@with_clip_settings
@register("datasets", "hmdb51")
class HMDB51(ClipDataset):
    """HMDB51 clips of one official split (`split_number` 1-3) with "label" (int64, sorted class order)."""

    def __init__(self, root: str, split: str = "train", *, split_number: int = 1, skip_missing: bool = False, **clip):
        if split not in TAGS:
            raise ValueError(f"split must be one of {', '.join(TAGS)}, got {split!r}")
        if split_number not in (1, 2, 3):
            raise ValueError(f"split_number must be 1, 2 or 3, got {split_number!r}")
        folder = require_folder(root, "hmdb51")
        lists = folder / "testTrainMulti_7030_splits"
        files = {m["label"]: lists / name for name in sorted(p.name for p in lists.glob("*.txt"))
                 if (m := SPLIT_FILE.match(name)) and m["number"] == str(split_number)} if lists.is_dir() else {}
        if not files:
            raise ValueError(f"hmdb51: no <class>_test_split{split_number}.txt files in {lists}")
        videos = folder / "videos" if (folder / "videos").is_dir() else folder
        entries, missing = [], []
        for label, list_file in sorted(files.items()):
            for where, line in text_lines(list_file, "hmdb51: the split file"):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise ValueError(f"{where}: expected '<name>.avi <tag>' with tag 0, 1 or 2, got {line!r}")
                if parts[1] != TAGS[split]:
                    continue
                path = videos / label / parts[0]
                if not path.is_file():
                    missing.append(f"{label}/{parts[0]}")
                    continue
                entries.append(ClipEntry(str(path.resolve()), labels=(label,)))
        report_missing(f"hmdb51 {split}{split_number}", missing, len(entries) + len(missing),
                       index_file=lists / f"<class>_test_split{split_number}.txt", skip=skip_missing)
        super().__init__(entries, settings_from(clip, split_is_train=split == "train"),
                         name=f"hmdb51 {split} split {split_number}", class_names=sorted(files))
