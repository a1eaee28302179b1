"""Tiny replicas of every supported layout, made of real media files (H.264/AAC mp4, MPEG-4 avi, wav, JPEG),
with the index files laid out as the published datasets lay them out.

The tests and the registry's contract tests build each registered dataset on one of these:
`REPLICAS[name](folder)` writes the replica into `folder` and returns the keyword arguments that build the
dataset on it (small clip settings included, so reading it is fast). Each class has its own colour and
tone, so a sample's content says which class it belongs to.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import numpy as np

from vatt.data.encode import write_audio, write_image, write_video
from vatt.data.pack import pack_manifest
from vatt.data.text import Vocabulary, build_vocabulary

FPS = 10
SECONDS = 1.2
HEIGHT, WIDTH = 24, 32
AUDIO_RATE = 8000
SMALL_CLIPS = {"frames": 4, "size": 16, "fps": FPS, "audio_rate": AUDIO_RATE}  # 0.4 s clips
COLOURS = ((220, 40, 40), (40, 200, 60), (50, 80, 230), (230, 220, 40))


def clip_content(label: int, seconds: float = SECONDS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 [T, H, W, 3] of class `label` (its colour, with a bar moving across) and its tone."""
    rng = np.random.default_rng([label, seed])
    frames = np.empty((round(seconds * FPS), HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames[:] = COLOURS[label % len(COLOURS)]
    for t in range(len(frames)):
        frames[t, :, (2 * t) % WIDTH] = 255  # motion, so that frames differ
    t = np.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
    tone = 0.5 * np.sin(2 * np.pi * (300 + 150 * label) * t) + 0.01 * rng.standard_normal(len(t))
    return frames, tone.astype(np.float32)


def _video(path: Path, label: int, seconds: float = SECONDS, audio: bool = True, seed: int = 0) -> None:
    frames, tone = clip_content(label, seconds, seed)
    write_video(path, frames, fps=FPS, audio=tone if audio else None, audio_rate=AUDIO_RATE)


def _vocabulary(folder: Path, texts: list[str]) -> str:
    path = folder / "vocabulary.txt"
    Vocabulary(build_vocabulary(texts)).save(path)
    return str(path)


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def manifest(folder: Path) -> dict:
    captions = ["a red clip", "a green clip", "a blue clip"]
    lines = []
    for n in range(3):
        _video(folder / "clips" / f"{n}.mp4", n, seconds=2.0)
        lines.append({"video": f"clips/{n}.mp4", "start": 0.2, "end": 1.8, "labels": [f"class{n}"],
                      "captions": [{"start": 0.2, "end": 1.0, "text": captions[n]},
                                   {"start": 1.0, "end": 1.8, "text": f"then {captions[n]} again"}]})
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return {"path": str(folder / "manifest.jsonl"), "vocabulary": _vocabulary(folder, captions + ["then again"]),
            **SMALL_CLIPS}


def howto100m(folder: Path) -> dict:
    texts = []
    for n in range(2):
        _video(folder / "videos" / f"vid{n}.mp4", n, seconds=3.0)
        rows = [[0.0, 1.0, f"first we cut the onion {n}"], [1.0, 2.0, "now stir the pan"],
                [2.0, 3.0, "finally serve it"]]
        _csv(folder / "captions" / f"vid{n}.csv", ["start", "end", "text"], rows)
        texts += [r[2] for r in rows]
    return {"root": str(folder), "vocabulary": _vocabulary(folder, texts), **SMALL_CLIPS}


def audioset(folder: Path) -> dict:
    _csv(folder / "class_labels_indices.csv", ["index", "mid", "display_name"],
         [[0, "/m/09x0r", "Speech"], [1, "/m/04rlf", "Music"], [2, "/m/0jbk", "Animal"]])
    segments = [("abcdefghijk", "/m/09x0r,/m/04rlf"), ("bcdefghijkl", "/m/0jbk"), ("cdefghijklm", "/m/04rlf")]
    for split in ("balanced_train", "eval"):
        lines = ["# Segments csv created Sun Mar  5 10:54:31 2017", "# num_ytids=3, num_segs=3, num_unique_labels=3",
                 "# YTID, start_seconds, end_seconds, positive_labels"]
        for n, (ytid, mids) in enumerate(segments):
            lines.append(f'{ytid}, 30.000, 31.200, "{mids}"')
            _video(folder / split / f"Y{ytid}.mp4", n)
        (folder / f"{split}_segments.csv").write_text("\n".join(lines) + "\n")
    return {"root": str(folder), "split": "balanced_train", **SMALL_CLIPS}


def kinetics(folder: Path) -> dict:
    labels = ["abseiling", "juggling balls"]
    for split, name in (("train", "train"), ("val", "validate")):
        rows = []
        for n in range(4):
            youtube_id = f"{split}{n:08d}"[:11]
            rows.append([labels[n % 2], youtube_id, 10, 20, split])
            _video(folder / split / labels[n % 2] / f"{youtube_id}_000010_000020.mp4", n % 2)
        _csv(folder / f"{name}.csv", ["label", "youtube_id", "time_start", "time_end", "split"], rows)
    return {"root": str(folder), "split": "train", **SMALL_CLIPS}


def ucf101(folder: Path) -> dict:
    classes = ["ApplyEyeMakeup", "Basketball"]
    lists = folder / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    for number in (1, 2, 3):
        train, test = [], []
        for label, name in enumerate(classes):
            for group in (1, 2, 3):
                relative = f"{name}/v_{name}_g{group:02d}_c01.avi"
                (test if group == number else train).append((relative, label + 1))
        (lists / f"trainlist0{number}.txt").write_text("".join(f"{r} {l}\n" for r, l in train))
        (lists / f"testlist0{number}.txt").write_text("".join(f"{r}\n" for r, _ in test))
    for label, name in enumerate(classes):
        for group in (1, 2, 3):
            _video(folder / "UCF-101" / name / f"v_{name}_g{group:02d}_c01.avi", label, seed=group)
    return {"root": str(folder), "split": "train", "split_number": 1, **SMALL_CLIPS}


def hmdb51(folder: Path) -> dict:
    classes = ["brush_hair", "cartwheel"]
    lists = folder / "testTrainMulti_7030_splits"
    lists.mkdir(parents=True)
    for label, name in enumerate(classes):
        videos = [f"{name}_video{k}.avi" for k in range(3)]
        for k, video in enumerate(videos):
            _video(folder / name / video, label, seed=k)
        for number in (1, 2, 3):
            tags = ["1", "2", "0"][number - 1 :] + ["1", "2", "0"][: number - 1]
            (lists / f"{name}_test_split{number}.txt").write_text("".join(f"{v} {t} \n" for v, t in zip(videos, tags)))
    return {"root": str(folder), "split": "train", "split_number": 1, **SMALL_CLIPS}


def esc50(folder: Path) -> dict:
    categories = ["dog", "rain"]
    rows = []
    for fold in range(1, 6):
        for target, category in enumerate(categories):
            name = f"{fold}-{100 + target}-A-{target}.wav"
            rows.append([name, fold, target, category, "False", 100 + target, "A"])
            write_audio(folder / "audio" / name, clip_content(target, seconds=1.0, seed=fold)[1], rate=AUDIO_RATE)
    _csv(folder / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)
    return {"root": str(folder), "split": "train", "fold": 1, **SMALL_CLIPS}


def msrvtt(folder: Path) -> dict:
    sentences = [[f"a person cooks dish {n}", f"someone is cooking {n}"] for n in range(3)]
    for n in range(3):
        _video(folder / "videos" / "all" / f"video{n}.mp4", n)
    _csv(folder / "MSRVTT_JSFUSION_test.csv", ["key", "vid_key", "video_id", "sentence"],
         [[f"ret{n}", f"msr{n}", f"video{n}", sentences[n][0]] for n in range(2)])
    _csv(folder / "MSRVTT_train.9k.csv", ["video_id"], [["video2"]])
    data = {"sentences": [{"video_id": f"video{n}", "caption": s, "sen_id": 2 * n + k}
                          for n in range(3) for k, s in enumerate(sentences[n])]}
    (folder / "MSRVTT_data.json").write_text(json.dumps(data))
    return {"root": str(folder), "split": "test", "vocabulary": _vocabulary(folder, sum(sentences, [])),
            **SMALL_CLIPS}


def youcook2(folder: Path) -> dict:
    database, texts = {}, []
    for n, subset in enumerate(("training", "validation", "validation")):
        video_id = f"yc2video{n:03d}"
        steps = [{"segment": [0, 1], "id": 0, "sentence": f"crack the eggs {n}"},
                 {"segment": [1, 3], "id": 1, "sentence": "whisk them in a bowl"}]
        texts += [s["sentence"] for s in steps]
        database[video_id] = {"subset": subset, "recipe_type": "101", "duration": 3.0, "annotations": steps}
        _video(folder / "raw_videos" / subset / "101" / f"{video_id}.mp4", n, seconds=3.0)
    (folder / "youcookii_annotations_trainval.json").write_text(json.dumps({"database": database}))
    return {"root": str(folder), "split": "val", "vocabulary": _vocabulary(folder, texts), **SMALL_CLIPS}


def moments_in_time(folder: Path) -> dict:
    categories = ["clapping", "running"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "moments_categories.txt").write_text("".join(f"{c},{i}\n" for i, c in enumerate(categories)))
    for split, listing in (("training", "trainingSet.csv"), ("validation", "validationSet.csv")):
        rows = []
        for n in range(4):
            label = categories[n % 2]
            relative = f"{label}/clip{n}.mp4"
            _video(folder / split / relative, n % 2, seed=n)
            rows.append([relative, label, 3, 0])
        with (folder / listing).open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return {"root": str(folder), "split": "train", **SMALL_CLIPS}


def image_folder(folder: Path) -> dict:
    for split in ("train", "val"):
        for label, name in enumerate(("n01440764", "n01443537")):
            for k in range(2):
                image = clip_content(label, seconds=0.1, seed=k)[0][0]
                write_image(folder / split / name / f"{name}_{k}.JPEG", image)
    return {"root": str(folder), "split": "train", "size": 16}


def shards(folder: Path) -> dict:
    source = manifest(folder / "source")
    pack_manifest(source["path"], folder / "packed", fps=FPS, size=HEIGHT, audio_rate=AUDIO_RATE, clips_per_shard=2)
    return {"root": str(folder / "packed"), "vocabulary": source["vocabulary"], **SMALL_CLIPS}


def mixture(folder: Path) -> dict:
    pretraining = [{"type": "howto100m", **howto100m(folder / "howto100m"), "weight": 2.0},
                   {"type": "audioset", **audioset(folder / "audioset"), "weight": 1.0}]
    return {"datasets": pretraining, "num_samples": 6}


REPLICAS: dict[str, Callable[[Path], dict]] = {
    "manifest": manifest, "howto100m": howto100m, "audioset": audioset, "kinetics": kinetics, "ucf101": ucf101,
    "hmdb51": hmdb51, "esc50": esc50, "msrvtt": msrvtt, "youcook2": youcook2, "moments_in_time": moments_in_time,
    "image_folder": image_folder, "shards": shards, "mixture": mixture,
}
