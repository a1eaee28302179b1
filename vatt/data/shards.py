"""Streaming packed shards (written by `vatt.data.pack`, whose docstring shows the layout).

`ShardDataset` (registered as "shards") splits the shards over distributed ranks and DataLoader workers
without overlap, shuffles samples in a buffer, decodes only the JPEGs the clip needs and cuts, augments and
labels clips exactly as the file datasets do. Unreadable samples follow the data's failure policy
(`vatt.data.failures`): a corrupt sample, or one not named KEY.SUFFIX with a numeric KEY, is skipped, counted
and logged as `SHARD:KEY`, a shard that breaks off (truncated, missing) loses the samples it still held, and a
reader stops with `DataError` once more than `max_failure_rate` of its samples failed.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import simplejpeg
import torch
from torch.utils.data import IterableDataset, get_worker_info

from vatt.data.captions import Caption
from vatt.data.datasets.base import ClipEntry, SampleMaker, settings_from, tokenizer_for, with_clip_settings
from vatt.data.datasets.index_files import json_mapping, reading
from vatt.data.decode import EPSILON, MediaError, MediaInfo, pick_frames
from vatt.data.failures import DEFAULT_MAX_FAILURE_RATE, FailureCounter, check_failure_rate, note_reading
from vatt.data.pack import INDEX, frame_member
from vatt.messages import cut
from vatt.registry import register

log = logging.getLogger("vatt.data")


def decode_jpegs(pictures: Sequence[bytes], where: str) -> np.ndarray:
    """uint8 [N, H, W, 3] from N JPEGs of one size, decoded by libjpeg-turbo (simplejpeg) straight into one
    array: 0.6 of the time of FFmpeg's decoder plus its RGB conversion, and no stacking copy. The fast integer
    IDCT is the one the release's frames went through (tf.image.decode_jpeg's default, INTEGER_FAST)."""
    height, width, _, _ = simplejpeg.decode_jpeg_header(pictures[0])
    out = np.empty((len(pictures), height, width, 3), dtype=np.uint8)
    for k, (data, picture) in enumerate(zip(pictures, out)):
        decoded = simplejpeg.decode_jpeg(data, fastdct=True, buffer=picture)  # ValueError on corrupt data
        if decoded.shape != picture.shape:
            raise MediaError(where, f"frame {k} is {decoded.shape[1]}x{decoded.shape[0]}, the first is "
                                    f"{width}x{height}")
    return out


class PackedClip:
    """One packed sample used like an open media file (see ClipReader.cut): decodes only the frames asked."""

    def __init__(self, name: str, members: dict[str, bytes]):
        self.members = members
        self.meta = json.loads(members["json"])
        self.info = MediaInfo(path=name, start=0.0, end=self.meta["duration"], has_video=self.meta["frames"] > 0,
                              has_audio="wav" in members, fps=self.meta["fps"],
                              audio_rate=self.meta["audio_rate"])
        self.frame_times = np.arange(self.meta["frames"]) / self.meta["fps"]

    def entry(self) -> ClipEntry:
        captions = tuple(Caption(c["text"], c["start"], c["end"]) for c in self.meta["captions"])
        return ClipEntry(self.info.path, captions=captions, labels=tuple(self.meta["labels"]))

    def clip(self, frame_times, audio_start, num_samples: int = 0, rate: int = 0):
        frames = sound = None
        if frame_times is not None:
            if not self.info.has_video:
                raise MediaError(self.info.path, "has no video frames")
            wanted = np.searchsorted(self.frame_times, np.asarray(frame_times) + EPSILON, side="right") - 1
            needed = sorted(set(np.maximum(wanted, 0).tolist()))
            pictures = decode_jpegs([self.members[frame_member(k)] for k in needed], self.info.path)  # [N, H, W, 3]
            frames = pick_frames(self.frame_times[needed], pictures, frame_times, self.info.path, self.info)
        if audio_start is not None and self.info.has_audio:
            if rate != self.info.audio_rate:
                raise MediaError(self.info.path, f"sound packed at {self.info.audio_rate} Hz, asked at {rate} Hz")
            with wave.open(io.BytesIO(self.members["wav"])) as source:
                pcm = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
            sound = np.zeros(num_samples, dtype=np.float32)
            first = round(audio_start * rate)
            piece = pcm[max(first, 0) : first + num_samples].astype(np.float32) / 32767
            sound[max(-first, 0) : max(-first, 0) + len(piece)] = piece
        return frames, sound


class ShardError(Exception):
    """A shard that cannot be read on from some point (truncated, corrupt headers, unreadable file)."""


def _tar_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, data) of the regular files of a tar archive, in order. A plain reader of the ustar/pax blocks:
    Python's tarfile spends more time per member than decoding a small JPEG takes. Raises `ShardError` where
    the archive breaks off or its headers make no sense."""
    with open(path, "rb") as handle:
        long_name = None
        while True:
            offset = handle.tell()
            header = handle.read(512)
            if not header or header == bytes(512):
                return
            if len(header) < 512:
                raise ShardError(f"truncated: a member header at byte {offset} is cut short")
            try:
                size = int(header[124:136].strip(b"\0 ") or b"0", 8)
            except ValueError:
                raise ShardError(f"corrupt member header at byte {offset}") from None
            data = handle.read(size)
            if len(data) < size:
                raise ShardError(f"truncated: the member at byte {offset} holds {len(data)} of its {size} bytes")
            handle.seek(-size % 512, os.SEEK_CUR)
            kind = header[156:157]
            if kind == b"x":  # pax extended header: may carry the next member's long name
                records = dict(r.split(b" ", 1)[1].split(b"=", 1) for r in data.split(b"\n") if b"=" in r)
                long_name = records.get(b"path", b"").decode() or None
            elif kind in (b"0", b"\0"):
                prefix, name = header[345:500].rstrip(b"\0"), header[:100].rstrip(b"\0")
                yield long_name or (prefix + b"/" + name if prefix else name).decode(), data
                long_name = None


def _samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, members by suffix) of each sample of a tar shard, read in one sequential pass."""
    key, members = None, {}
    for name, data in _tar_files(path):
        if "." not in name:
            raise ShardError(f"member {name!r} is not named KEY.SUFFIX")
        name_key, suffix = name.split(".", 1)
        if name_key != key and members:
            yield key, members
            members = {}
        key = name_key
        members[suffix] = data
    if members:
        yield key, members


# what a broken packed sample raises (a missing member, bad JSON, a corrupt JPEG or WAV); anything else is a bug
SAMPLE_ERRORS = (MediaError, KeyError, ValueError, wave.Error, EOFError)
NUMERIC_KEY = re.compile(r"[0-9]+")  # sample keys as `vatt.data.pack` writes them


@dataclass(frozen=True)
class PackedSample:
    """The members (by suffix) of the sample ``key`` of a shard; ``where`` names it as SHARD:KEY."""
    shard: Path
    key: str
    members: dict[str, bytes]

    @property
    def where(self) -> str:
        return f"{self.shard}:{self.key}"


@dataclass(frozen=True)
class Unreadable:
    """What of a shard cannot be read (a badly named sample, or the rest of a shard that breaks off: `samples`
    of them), and why."""
    where: str
    reason: str
    samples: int = 1


def packed_samples(shard: Path, expected: int) -> Iterator[PackedSample | Unreadable]:
    """Each sample of ``shard`` in order, or what cannot be read of it; ``expected`` (the index's count) says
    how many samples a shard that breaks off has lost. Members are only ever read into memory, so a member
    named ``../x`` or ``/etc/x`` is just a badly named sample: nothing is extracted anywhere."""
    read, samples = 0, _samples(shard)
    while True:
        try:
            item = next(samples, None)
        except (ShardError, OSError) as exc:  # the rest of the shard is lost
            kind = f"{type(exc).__name__}: " if isinstance(exc, OSError) else ""
            yield Unreadable(str(shard), f"unreadable after {read} of {expected} samples: {kind}{exc}",
                             samples=max(1, expected - read))
            return
        except Exception as exc:
            raise RuntimeError(f"data loading failed while reading shard {shard}: "
                               f"{type(exc).__name__}: {exc}") from exc
        if item is None:
            if read < expected:  # ended cleanly on a member boundary: truncated there
                yield Unreadable(str(shard), f"ends after {read} of its {expected} samples", samples=expected - read)
            return
        key, members = item
        read += 1
        if NUMERIC_KEY.fullmatch(key):
            yield PackedSample(shard, key, members)
            continue
        member = cut(f"{key}.{next(iter(members))}")
        yield Unreadable(f"{shard}:{member}", f"member {member!r} is not named KEY.SUFFIX with a numeric KEY "
                                              f"(as `python -m vatt.data pack` names them)")


def _process_slot() -> tuple[int, int]:
    """(this reader's number, number of readers) over distributed ranks × DataLoader workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    worker = get_worker_info()
    workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
    return rank * workers + worker_id, world * workers


@with_clip_settings
@register("datasets", "shards")
class ShardDataset(SampleMaker, IterableDataset):
    """Packed shards streamed with a shuffle buffer, split over ranks and workers without overlap.

    Each epoch (`set_epoch`) shuffles the shard order with (seed, epoch), gives reader r of R the shards
    r, r + R, ... of that order, and draws each sample's clip from (seed, epoch, sample key). `fps` and
    `audio_rate` default to the packed ones; the sound must be read at its packed rate. Each reader skips
    and logs what it cannot read and stops with `DataError` when more than `max_failure_rate` of the samples
    of its shards failed in one pass; `failed` counts the failures this object has seen.
    """

    def __init__(self, root: str, *, vocabulary: str | None = None, candidates: int = 5, max_words: int = 16,
                 shuffle_buffer: int = 256, seed: int = 0, max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE,
                 **clip):
        check_failure_rate(max_failure_rate)
        folder = Path(root)
        if not (folder / INDEX).is_file():
            raise ValueError(f"shards: {folder} has no {INDEX}; pack a manifest there with `python -m vatt.data pack`")
        index = json_mapping(folder / INDEX, "shards: the index")
        with reading(str(folder / INDEX)):  # written by `pack`; one edited by hand may lack what it holds
            fps, audio_rate = index["params"]["fps"], index["params"]["audio_rate"]
            captioned, classes, multi_label = index["captioned"], index["classes"], index["multi_label"]
            clips_in = {folder / s["file"]: int(s["clips"]) for s in index["shards"]}
            num_clips = int(index["clips"])
        settings = settings_from(clip, split_is_train=True, fps=fps, audio_rate=audio_rate)
        if settings.audio_rate != audio_rate:
            raise ValueError(f"audio_rate must be the packed rate {audio_rate}, got {settings.audio_rate}")
        tokenizer = tokenizer_for(vocabulary, max_words, f"shards {root}") if captioned else None
        super().__init__(settings, name=f"shards {root}", class_names=classes or None,
                         multi_label=multi_label, tokenizer=tokenizer, candidates=candidates)
        self.shards = [path for path, clips in clips_in.items() if clips]
        self.clips_in = clips_in
        self.num_clips = num_clips
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.max_failure_rate = max_failure_rate
        self.epoch = 0
        self.failed = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_shards(self) -> list[Path]:
        reader, readers = _process_slot()
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        return [self.shards[i] for i in order[reader::readers]]

    def sample(self, packed: PackedSample) -> dict:
        """The training (or evaluation) sample of a packed one, its clip drawn from (seed, epoch, key). Raises
        one of SAMPLE_ERRORS if the sample is broken."""
        clip = PackedClip(f"{packed.shard.name}:{packed.key}", packed.members)
        return self.make(clip.entry(), np.random.default_rng([self.seed, self.epoch, int(packed.key)]), media=clip)

    def _clips(self, shards: Sequence[Path], counter: FailureCounter) -> Iterator[dict]:
        for shard in shards:
            for packed in packed_samples(shard, self.clips_in.get(shard, 0)):
                if isinstance(packed, Unreadable):
                    self._fail(counter, packed.where, packed.where, packed.reason, samples=packed.samples)
                    continue
                note_reading(packed.where)
                try:
                    sample = self.sample(packed)
                except SAMPLE_ERRORS as exc:
                    self._fail(counter, packed.where, packed.where, f"{type(exc).__name__}: {exc}")
                    continue
                except Exception as exc:
                    raise RuntimeError(f"data loading failed while reading {packed.where}: "
                                       f"{type(exc).__name__}: {exc}") from exc
                yield sample

    def _fail(self, counter: FailureCounter, key: str, path: str, reason: str, samples: int = 1) -> None:
        if key not in counter.failures:
            self.failed += samples
        counter.add(key, path, reason, samples=samples)

    def __iter__(self) -> Iterator[dict]:
        reader, readers = _process_slot()
        rng = np.random.default_rng([self.seed, self.epoch, reader, readers])
        mine = self.my_shards()
        if not mine:
            log.warning("%s: reader %d of %d (ranks x DataLoader workers) gets none of the %d shards", self.name,
                        reader, readers, len(self.shards))
        counter = FailureCounter(sum(self.clips_in.get(shard, 0) for shard in mine), self.max_failure_rate,
                                 what=f"{self.name} (reader {reader} of {readers}, epoch {self.epoch})",
                                 hint="run `python -m vatt.data check` on the packed manifest, or pack it again")
        buffer: list[dict] = []
        for sample in self._clips(mine, counter):
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            slot = int(rng.integers(len(buffer)))
            buffer[slot], sample = sample, buffer[slot]
            yield sample
        rng.shuffle(buffer)
        yield from buffer
