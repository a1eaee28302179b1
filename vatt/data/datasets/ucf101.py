"""UCF101: 13,320 clips of 101 actions, with the three official train/test splits.

Layout: the videos `root/UCF-101/<Class>/v_<Class>_gXX_cYY.avi` (or the class folders directly under root)
and the split files `root/ucfTrainTestlist/`: classInd.txt ("1 ApplyEyeMakeup", fixing the class ids),
trainlist0N.txt ("ApplyEyeMakeup/v_..._c01.avi 1") and testlist0N.txt ("ApplyEyeMakeup/v_..._c01.avi").
"""

from __future__ import annotations

from pathlib import Path

from vatt.data.datasets.base import ClipDataset, ClipEntry, report_missing, require_folder, settings_from, with_clip_settings
from vatt.data.datasets.index_files import reading, text_lines
from vatt.registry import register

SPLITS = ("train", "test")


def read_split_list(path: Path) -> list[str]:
    """Relative video paths ("Class/v_....avi") listed in a train or test list."""
    return [line.split()[0] for _, line in text_lines(path, "UCF101 split file")]


@with_clip_settings
@register("datasets", "ucf101")
class UCF101(ClipDataset):
    """UCF101 clips of one official split (`split_number` 1-3) with "label" (int64, classInd order)."""

    def __init__(self, root: str, split: str = "train", *, split_number: int = 1, skip_missing: bool = False, **clip):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if split_number not in (1, 2, 3):
            raise ValueError(f"split_number must be 1, 2 or 3, got {split_number!r}")
        folder = require_folder(root, "ucf101")
        lists = folder / "ucfTrainTestlist"
        indexed = []
        for where, line in text_lines(lists / "classInd.txt", "ucf101: the class list"):
            with reading(where):
                index, name = line.split()
                indexed.append((int(index), name))
        classes = [name for _, name in sorted(indexed)]
        videos = folder / "UCF-101" if (folder / "UCF-101").is_dir() else folder
        entries, missing = [], []
        split_file = lists / f"{split}list0{split_number}.txt"
        for relative in read_split_list(split_file):
            path = videos / relative
            if not path.is_file():
                missing.append(relative)
                continue
            entries.append(ClipEntry(str(path.resolve()), labels=(relative.split("/")[0],)))
        report_missing(f"ucf101 {split}{split_number}", missing, len(entries) + len(missing), index_file=split_file,
                       skip=skip_missing)
        super().__init__(entries, settings_from(clip, split_is_train=split == "train"),
                         name=f"ucf101 {split} split {split_number}", class_names=classes)
