"""Packing a dataset into shards, for scale: decoding long source videos cannot feed accelerators, so
`pack_manifest` (`python -m vatt.data pack MANIFEST OUT/ --fps 10`) stores each clip source once as JPEG
frames at the target frame rate, its sound at the target rate and its captions and labels, in tar files laid
out as WebDataset expects (the members of one sample share a key prefix):

    000000042.json          {"duration", "fps", "frames", "audio_rate", "captions" (times from the clip
                             start), "labels", "source"}
    000000042.wav           mono 16-bit PCM (absent when the source has no sound)
    000000042.00000.jpg ... one JPEG per frame, short side resized to `size`

and an index (`index.json`) of the shards, their clip counts and the classes. Packing is resumable (a
finished shard is kept: it is written under a temporary name and renamed) and runs shards in parallel
worker processes. `vatt.data.shards` streams the shards back.
"""

from __future__ import annotations

import io
import json
import math
import multiprocessing
import os
import tarfile
import wave
from pathlib import Path

import av
import numpy as np
import torch

from vatt.data import transforms
from vatt.data.datasets.base import ClipEntry
from vatt.data.datasets.manifest import read_manifest
from vatt.data.decode import EPSILON, MediaError, MediaFile

INDEX = "index.json"
PACK_VERSION = 1


def frame_member(k: int) -> str:
    """The suffix of a packed sample's k-th JPEG frame (its member is KEY.SUFFIX)."""
    return f"{k:05d}.jpg"


def _jpeg(frame: np.ndarray, qscale: int) -> bytes:
    encoder = av.codec.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frame.shape[1], frame.shape[0], "yuvj420p"
    encoder.time_base = 1
    encoder.options = {"qmin": str(qscale), "qmax": str(qscale)}
    picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(packet) for packet in encoder.encode(picture) + encoder.encode(None))


def _wav(sound: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.round(np.clip(sound, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def pack_entry(entry: ClipEntry, *, fps: float, size: int, audio_rate: int, qscale: int) -> dict[str, bytes]:
    """The members (by suffix) of one packed sample: every frame of the entry's range at `fps`, its sound."""
    with MediaFile(entry.path) as media:
        info = media.info
        begin = info.start if entry.begin is None else max(entry.begin, info.start)
        end = info.end if entry.end is None else min(entry.end, info.end)
        count = math.floor((end - begin) * fps + EPSILON) if info.has_video else 0
        if end <= begin or (info.has_video and count < 1):
            raise MediaError(entry.path, f"nothing to pack between {begin:.3f} and {end:.3f} s")
        times = begin + np.arange(count) / fps
        frames, sound = media.clip(times if count else None, begin if info.has_audio else None,
                                   round((end - begin) * audio_rate), audio_rate)
    members = {}
    if frames is not None:
        video = transforms.resize_short_side(transforms.frames_tensor(frames), size)  # uint8 [T, 3, H, W]
        for k, frame in enumerate(video.permute(0, 2, 3, 1).numpy()):
            members[frame_member(k)] = _jpeg(frame, qscale)
    if sound is not None:
        members["wav"] = _wav(sound, audio_rate)
    meta = {"duration": end - begin, "fps": fps, "frames": count, "audio_rate": audio_rate, "source": entry.path,
            "begin": begin, "labels": list(entry.labels),
            "captions": [{"text": c.text, "start": None if c.start is None else c.start - begin,
                          "end": None if c.end is None else c.end - begin} for c in entry.captions]}
    members["json"] = json.dumps(meta).encode()
    return members


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    archive.addfile(member, io.BytesIO(data))


def _pack_shard(job: tuple[int, list[tuple[int, ClipEntry]], dict, str]) -> dict:
    number, items, params, out = job
    path = Path(out) / f"shard-{number:06d}.tar"
    summary_path = path.with_suffix(".json")
    if path.is_file() and summary_path.is_file():
        return {**json.loads(summary_path.read_text()), "reused": True}
    partial = path.with_suffix(".tar.partial")
    skipped, clips = [], 0
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
        for index, entry in items:
            try:
                members = pack_entry(entry, fps=params["fps"], size=params["size"],
                                     audio_rate=params["audio_rate"], qscale=params["qscale"])
            except MediaError as exc:
                skipped.append({"path": exc.path, "reason": exc.reason})
                continue
            for suffix, data in members.items():
                _add(archive, f"{index:09d}.{suffix}", data)
            clips += 1
    summary = {"file": path.name, "clips": clips, "skipped": skipped,
               "captioned": any(entry.captions for _, entry in items),
               "labels": sorted({label for _, entry in items for label in entry.labels}),
               "multi_label": any(len(entry.labels) > 1 for _, entry in items)}
    summary_path.write_text(json.dumps(summary))
    os.replace(partial, path)  # the shard exists only once it is whole
    return {**summary, "reused": False}


def pack_manifest(manifest: str | Path, out: str | Path, *, fps: float = 10.0, size: int = 256,
                  audio_rate: int = 48000, clips_per_shard: int = 256, workers: int = 1, qscale: int = 3) -> dict:
    """Pack every entry of `manifest` into tar shards under `out` and write its index; returns counts."""
    entries = read_manifest(manifest)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = {"version": PACK_VERSION, "fps": fps, "size": size, "audio_rate": audio_rate, "qscale": qscale,
              "clips_per_shard": clips_per_shard, "manifest": str(Path(manifest).resolve())}
    params_file = out / "pack.json"
    if params_file.is_file() and json.loads(params_file.read_text()) != params:
        raise ValueError(f"{out} holds shards packed with other settings ({params_file}); use a new folder")
    params_file.write_text(json.dumps(params, indent=1))
    numbered = list(enumerate(entries))
    jobs = [(n, numbered[n * clips_per_shard : (n + 1) * clips_per_shard], params, str(out))
            for n in range(math.ceil(len(entries) / clips_per_shard))]
    if workers > 1:
        # spawned, not forked: a forked child of a process that has run torch's thread pool can hang in its
        # first parallel region; one thread each, the processes share the cores
        with multiprocessing.get_context("spawn").Pool(workers, initializer=torch.set_num_threads,
                                                       initargs=(1,)) as pool:
            summaries = sorted(pool.imap_unordered(_pack_shard, jobs), key=lambda s: s["file"])
    else:
        summaries = [_pack_shard(job) for job in jobs]
    labels = sorted({label for s in summaries for label in s["labels"]})
    index = {"params": params, "shards": [{"file": s["file"], "clips": s["clips"]} for s in summaries],
             "clips": sum(s["clips"] for s in summaries), "classes": labels,
             "multi_label": any(s["multi_label"] for s in summaries),
             "captioned": any(s["captioned"] for s in summaries),
             "skipped": [bad for s in summaries for bad in s["skipped"]]}
    (out / INDEX).write_text(json.dumps(index, indent=1))
    return {"clips": index["clips"], "shards": len(summaries), "skipped": len(index["skipped"]),
            "reused": sum(s["reused"] for s in summaries)}
