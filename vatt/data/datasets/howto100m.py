"""HowTo100M: narrated instructional videos, each with a caption file of timed ASR sentences.

Layout: `root/videos/<video_id>.<ext>` (any depth, any media extension) and per-video caption files
`root/captions/<video_id>.csv` with a header `start,end,text` (the release's raw captions), or one JSON file
`root/caption.json` mapping each video id to {"start": [...], "end": [...], "text": [...]}. Every video with
captions is one clip source; training centres its clip on a random caption and takes that caption and its
neighbours in time as the MIL-NCE candidates. HowTo100M has no labels and is used for pre-training only.
"""

from __future__ import annotations

from pathlib import Path

from vatt.data.captions import Caption
from vatt.data.datasets.base import ClipDataset, ClipEntry, index_media, report_missing, require_folder, settings_from, tokenizer_for, with_clip_settings
from vatt.data.datasets.index_files import csv_records, json_mapping, reading
from vatt.registry import register


def _captions_from_csv(path: Path) -> tuple[Caption, ...]:
    captions = []
    for where, row in csv_records(path, "howto100m: the caption file", ("start", "end", "text")):
        if row["text"]:
            with reading(where):
                captions.append(Caption(row["text"], float(row["start"]), float(row["end"])))
    return tuple(captions)


def read_captions(root: Path) -> dict[str, tuple[Caption, ...]]:
    """Video id → its timed captions, from captions/*.csv or caption.json."""
    single = root / "caption.json"
    if single.is_file():
        captions = {}
        for vid, c in json_mapping(single, "howto100m: the caption file").items():
            with reading(f"{single}, video {vid!r}"):
                captions[vid] = tuple(Caption(str(t), float(s), float(e))
                                      for s, e, t in zip(c["start"], c["end"], c["text"], strict=True))
        return captions
    folder = root / "captions"
    if not folder.is_dir():
        raise ValueError(f"HowTo100M root {root} needs a captions/ folder of <video_id>.csv files or caption.json")
    return {path.stem: _captions_from_csv(path) for path in sorted(folder.glob("*.csv"))}


@with_clip_settings
@register("datasets", "howto100m")
class HowTo100M(ClipDataset):
    """HowTo100M videos with their timed narrations (video, audio and MIL-NCE text candidates)."""

    def __init__(self, root: str, split: str = "train", *, vocabulary: str | None = None, candidates: int = 5,
                 max_words: int = 16, skip_missing: bool = True, **clip):
        if split != "train":
            raise ValueError(f"split must be 'train' (HowTo100M is for pre-training), got {split!r}")
        folder = require_folder(root, "howto100m")
        captions = read_captions(folder)
        media = index_media(folder / "videos" if (folder / "videos").is_dir() else folder)
        entries = [ClipEntry(media[vid], captions=caps) for vid, caps in captions.items() if vid in media and caps]
        index = folder / "caption.json" if (folder / "caption.json").is_file() else folder / "captions"
        report_missing("howto100m", [vid for vid in captions if vid not in media], len(captions), index_file=index,
                       skip=skip_missing)
        super().__init__(entries, settings_from(clip, split_is_train=True), name=f"howto100m {root}",
                         tokenizer=tokenizer_for(vocabulary, max_words, "howto100m"), candidates=candidates)
