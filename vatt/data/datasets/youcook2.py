"""YouCook2: cooking videos whose procedure steps are annotated with a time segment and a sentence.

Layout: the annotation file `root/youcookii_annotations_trainval.json` ({"database": {video_id: {"subset":
"training" | "validation", "recipe_type": ..., "annotations": [{"segment": [start, end], "sentence": ...}]}}})
and the videos under `root/raw_videos/` (any depth; the official downloader writes
raw_videos/<subset>/<recipe_type>/<video_id>.<ext>). Every annotated segment is one clip source with its
sentence; its neighbouring steps in the same video are its other MIL-NCE candidates. Zero-shot retrieval
uses the validation segments.
"""

from __future__ import annotations

from vatt.data.captions import Caption
from vatt.data.datasets.base import ClipDataset, ClipEntry, index_media, report_missing, require_folder, settings_from, tokenizer_for, with_clip_settings
from vatt.data.datasets.index_files import json_mapping, reading
from vatt.registry import register

SUBSETS = {"train": "training", "val": "validation"}
ANNOTATIONS = "youcookii_annotations_trainval.json"


@with_clip_settings
@register("datasets", "youcook2")
class YouCook2(ClipDataset):
    """YouCook2 step segments with their sentences ("text", "caption")."""

    def __init__(self, root: str, split: str = "val", *, vocabulary: str | None = None, candidates: int = 5,
                 max_words: int = 16, skip_missing: bool = False, **clip):
        if split not in SUBSETS:
            raise ValueError(f"split must be one of {', '.join(SUBSETS)}, got {split!r}")
        folder = require_folder(root, "youcook2")
        annotation_file = folder / ANNOTATIONS
        document = json_mapping(annotation_file, "youcook2: the annotation file")
        with reading(str(annotation_file)):
            database = dict(document["database"])
        media = index_media(folder / "raw_videos" if (folder / "raw_videos").is_dir() else folder)
        entries, missing = [], []
        for video_id, video in database.items():
            with reading(f"{annotation_file}, video {video_id!r}"):
                if video["subset"] != SUBSETS[split]:
                    continue
                steps = tuple(Caption(a["sentence"], float(a["segment"][0]), float(a["segment"][1]))
                              for a in video["annotations"])
            if video_id not in media:
                missing.append(video_id)
                continue
            for step in steps:  # the step's own sentence first, its neighbours after (see captions.candidates)
                entries.append(ClipEntry(media[video_id], begin=step.start, end=step.end, captions=steps))
        report_missing(f"youcook2 {split}", missing, len(missing) + len({e.path for e in entries}),
                       index_file=annotation_file, skip=skip_missing)
        super().__init__(entries, settings_from(clip, split_is_train=split == "train"), name=f"youcook2 {split}",
                         tokenizer=tokenizer_for(vocabulary, max_words, "youcook2"), candidates=candidates)
