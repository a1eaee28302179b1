"""MSR-VTT: 10,000 web video clips with 20 captions each; zero-shot retrieval uses the 1k-A test split.

Layout: the videos `root/videos/video<N>.mp4` (any depth under `root`), and for split "test" the 1k-A list
`root/MSRVTT_JSFUSION_test.csv` (key, vid_key, video_id, sentence: 1,000 clips, one query sentence each);
for split "train" the 9k list `root/MSRVTT_train.9k.csv` (a video_id column) with the captions of
`root/MSRVTT_data.json` ({"sentences": [{"video_id": ..., "caption": ...}]}). Captions have no times: the
first one is the clip's query.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from vatt.data.captions import Caption
from vatt.data.datasets.base import ClipDataset, ClipEntry, index_media, report_missing, require_folder, settings_from, tokenizer_for, with_clip_settings
from vatt.data.datasets.index_files import csv_records, json_mapping, reading
from vatt.registry import register

TEST_LIST = "MSRVTT_JSFUSION_test.csv"
TRAIN_LIST = "MSRVTT_train.9k.csv"
TRAIN_CAPTIONS = "MSRVTT_data.json"


def read_split(root: Path, split: str) -> dict[str, list[str]]:
    """Video id → its captions, in file order."""
    if split == "test":
        return {row["video_id"]: [row["sentence"]]
                for _, row in csv_records(root / TEST_LIST, "msrvtt: the test list", ("video_id", "sentence"))}
    captions_file = root / TRAIN_CAPTIONS
    captions, document = defaultdict(list), json_mapping(captions_file, "msrvtt: the caption file")
    with reading(str(captions_file)):
        for sentence in document["sentences"]:
            captions[sentence["video_id"]].append(sentence["caption"])
    return {row["video_id"]: captions[row["video_id"]]
            for _, row in csv_records(root / TRAIN_LIST, "msrvtt: the train list", ("video_id",))}


@with_clip_settings
@register("datasets", "msrvtt")
class MSRVTT(ClipDataset):
    """MSR-VTT clips with their captions ("text", "caption"); split "test" is the 1k-A retrieval set."""

    def __init__(self, root: str, split: str = "test", *, vocabulary: str | None = None, candidates: int = 5,
                 max_words: int = 16, skip_missing: bool = False, **clip):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' (1k-A), got {split!r}")
        folder = require_folder(root, "msrvtt")
        videos = read_split(folder, split)
        media = index_media(folder)
        entries = [ClipEntry(media[vid], captions=tuple(Caption(t) for t in texts))
                   for vid, texts in videos.items() if vid in media]
        index = folder / (TEST_LIST if split == "test" else TRAIN_LIST)
        report_missing(f"msrvtt {split}", [vid for vid in videos if vid not in media], len(videos), index_file=index,
                       skip=skip_missing)
        super().__init__(entries, settings_from(clip, split_is_train=split == "train"), name=f"msrvtt {split}",
                         tokenizer=tokenizer_for(vocabulary, max_words, "msrvtt"), candidates=candidates)
