"""From a media file to model-ready clips: where to cut, what to decode, how to augment.

A clip is `frames` frames taken every `stride` frames of a `fps` timeline (span = frames·stride/fps seconds)
and `audio_samples` of mono sound at `audio_rate` starting at the same instant. Training cuts one clip at a
random start (or around a given time, e.g. a caption) and augments it; evaluation cuts `clips` uniformly
spaced clips and takes `crops` spatial views of each, V = clips·crops views in all, ordered clip-major.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vatt.data import transforms
from vatt.data.decode import DecodedMedia, MediaError, MediaFile
from vatt.ranges import require

TIME_TOLERANCE = 1e-3  # seconds a clip may overhang a file's end (rounded container durations)
WHOLE_FILE_SPANS = 4  # with cache_mb, files up to this many clip spans long are decoded whole and kept


@dataclass(frozen=True)
class ClipSettings:
    """How clips are cut and augmented; every clip dataset takes these as keyword arguments.

    `train=None` lets a dataset decide from its split. `audio_samples=None` means the clip's span at
    `audio_rate`. `pad_short_audio` (audio-only reading) lets a recording shorter than `audio_samples` be read
    from its start and zero-padded, e.g. ESC-50's 5 s recordings for a tower trained on 6.4 s. `cache_mb` > 0
    keeps whole decoded short files (up to WHOLE_FILE_SPANS spans) in memory within each process, for small
    datasets read many times (the synthetic one).
    """
    frames: int = 32
    size: int = 224
    fps: float = 10.0
    stride: int = 1
    audio_rate: int = 48000
    audio_samples: int | None = None
    train: bool | None = None
    clips: int = 4
    crops: int = 1
    read_video: bool = True
    read_audio: bool = True
    pad_short_audio: bool = False
    crop_area: tuple[float, float] = (0.08, 1.0)
    crop_aspect: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    brightness: float = 32 / 255
    saturation: float = 0.4
    hue: float = 0.2
    contrast: float = 0.4
    audio_noise: float = 0.01
    cache_mb: int = 0

    def __post_init__(self):
        require(1, whole=True, frames=self.frames, size=self.size, stride=self.stride,
                audio_rate=self.audio_rate, clips=self.clips)
        require(0, whole=True, cache_mb=self.cache_mb)
        if self.audio_samples is not None and (not isinstance(self.audio_samples, int) or self.audio_samples < 1):
            raise ValueError(f"audio_samples must be a positive int or None, got {self.audio_samples!r}")
        if not isinstance(self.fps, (int, float)) or self.fps <= 0:
            raise ValueError(f"fps must be a positive number, got {self.fps!r}")
        if self.crops not in (1, 3):
            raise ValueError(f"crops must be 1 or 3, got {self.crops!r}")
        for name in ("crop_area", "crop_aspect"):
            low, high = _pair(getattr(self, name), name)
            if not 0 < low <= high or (name == "crop_area" and high > 1):
                raise ValueError(f"{name} must be [low, high] with 0 < low <= high{' <= 1' * (name == 'crop_area')},"
                                 f" got {getattr(self, name)!r}")
            object.__setattr__(self, name, (low, high))
        for name in ("brightness", "saturation", "hue", "contrast", "audio_noise"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a number >= 0, got {getattr(self, name)!r}")
        if not (self.read_video or self.read_audio):
            raise ValueError("read_video and read_audio are both false: a clip would hold nothing")
        if self.pad_short_audio and self.read_video:
            raise ValueError("pad_short_audio needs read_video: false (frames missing from a short video cannot be "
                             "padded)")

    @property
    def video_span(self) -> float:
        return self.frames * self.stride / self.fps

    @property
    def num_audio_samples(self) -> int:
        return self.audio_samples if self.audio_samples is not None else round(self.video_span * self.audio_rate)

    @property
    def audio_span(self) -> float:
        return self.num_audio_samples / self.audio_rate

    @property
    def views(self) -> int:
        return self.clips * self.crops

    def frame_times(self, start: float) -> np.ndarray:
        return start + np.arange(self.frames) * (self.stride / self.fps)  # [T]


def _pair(value: Any, name: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, (int, float)) for v in value):
        raise ValueError(f"{name} must be a pair of numbers [low, high], got {value!r}")
    return float(value[0]), float(value[1])


CLIP_FIELDS = tuple(f.name for f in dataclasses.fields(ClipSettings))


@dataclass
class Clip:
    """One sample's signals. Training: video uint8 [3, T, S, S], audio [A]. Evaluation: a leading view axis
    V = clips·crops when V > 1. `windows` holds each clip's (start, end) in seconds."""
    video: torch.Tensor | None
    audio: torch.Tensor | None
    audio_mask: bool
    windows: list[tuple[float, float]]


class ClipReader:
    """Cuts, decodes and augments clips of media files according to `ClipSettings`."""

    def __init__(self, settings: ClipSettings, train: bool):
        self.settings = settings
        self.train = train
        self._cache: OrderedDict[str, DecodedMedia] = OrderedDict()
        self._cached_bytes = 0

    @property
    def span(self) -> float:
        s = self.settings
        return s.video_span if s.read_video else s.audio_span

    def starts(self, begin: float, end: float, rng: np.random.Generator | None, around: float | None,
               path: str) -> list[float]:
        """Clip start times inside [begin, end]: one random (or centred on `around`) in training, `clips`
        evenly spaced in evaluation."""
        room = end - begin - self.span
        if room < -TIME_TOLERANCE and not self.settings.pad_short_audio:
            raise MediaError(path, f"{end - begin:.3f} s between {begin:.3f} and {end:.3f} s is shorter than a "
                                   f"clip ({self.span:.3f} s)")
        room = max(room, 0.0)
        if not self.train:
            if self.settings.clips == 1:
                return [begin + room / 2]
            return [float(t) for t in np.linspace(begin, begin + room, self.settings.clips)]
        if around is not None:
            return [float(np.clip(around - self.span / 2, begin, begin + room))]
        return [begin + float(rng.uniform(0.0, room)) if room > 0 else begin]

    def read(self, path: str, *, begin: float | None = None, end: float | None = None,
             rng: np.random.Generator | None = None, around: float | None = None) -> Clip:
        with self._open(path) as media:
            return self.cut(media, begin=begin, end=end, rng=rng, around=around)

    def cut(self, media, *, begin: float | None = None, end: float | None = None,
            rng: np.random.Generator | None = None, around: float | None = None) -> Clip:
        """The clip(s) of an open media source: anything with an `info` (MediaInfo) and a
        `clip(frame_times, audio_start, num_samples, rate)` method, like MediaFile."""
        info = media.info
        begin = info.start if begin is None else max(begin, info.start)
        end = info.end if end is None else min(end, info.end)
        starts = self.starts(begin, end, rng, around, info.path)
        videos, sounds = [], []
        s = self.settings
        for start in starts:
            frames, sound = media.clip(s.frame_times(start) if s.read_video else None,
                                       start if s.read_audio else None, s.num_audio_samples, s.audio_rate)
            if s.read_video:
                videos.append(frames)  # [T, H, W, 3]
            if s.read_audio:
                sounds.append(sound)  # [A] or None without an audio stream
        windows = [(s, s + self.span) for s in starts]
        has_audio = bool(sounds) and sounds[0] is not None
        if self.settings.read_audio and not has_audio:
            sounds = [np.zeros(self.settings.num_audio_samples, dtype=np.float32) for _ in starts]
        return self._finish(videos, sounds, has_audio, windows, rng)

    def read_still(self, path: str, rng: np.random.Generator | None = None) -> Clip:
        """An image repeated `frames` times in time, the clip the image recipe trains on (no audio)."""
        with MediaFile(path) as media:
            picture = media.still()  # [H, W, 3]
        tiled = np.repeat(picture[None], self.settings.frames, axis=0)  # [T, H, W, 3]
        return self._finish([tiled], [], False, [(0.0, 0.0)], rng)

    def _finish(self, videos, sounds, has_audio, windows, rng) -> Clip:
        s = self.settings
        if self.train:
            video = self._augment(videos[0], rng) if videos else None
            audio = torch.from_numpy(sounds[0]) if sounds else None
            if audio is not None and has_audio:
                audio = transforms.add_audio_noise(audio, rng, s.audio_noise)
            return Clip(video, audio, has_audio, windows)
        video = audio = None
        if videos:
            views = [transforms.spatial_views(frames, s.size, s.crops) for frames in videos]  # [crops, T, 3, S, S]
            video = torch.stack([transforms.to_clip_layout(v) for clip in views for v in clip])  # [V, 3, T, S, S]
        if sounds:
            audio = torch.from_numpy(np.stack([a for a in sounds for _ in range(s.crops)]))  # [V, A]
        if s.views == 1:
            video = video[0] if video is not None else None
            audio = audio[0] if audio is not None else None
        return Clip(video, audio, has_audio, windows)

    def _augment(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        s = self.settings
        video = transforms.random_resized_crop(frames, s.size, rng, s.crop_area, s.crop_aspect)  # uint8 [T, 3, S, S]
        if s.flip and rng.random() < 0.5:
            video = video.flip(-1)
        return transforms.color_jitter(video, rng, brightness=s.brightness, saturation=s.saturation, hue=s.hue,
                                       contrast=s.contrast)  # uint8 [3, T, S, S]

    # decoding, with the optional in-memory cache of whole short files -----------------------------------
    def _open(self, path: str):
        if not self.settings.cache_mb:
            return MediaFile(path)
        if path in self._cache:
            self._cache.move_to_end(path)
            return _Borrowed(self._cache[path])
        with MediaFile(path) as media:
            if media.info.duration > WHOLE_FILE_SPANS * self.span:  # long files are read clip by clip
                return MediaFile(path)
            decoded = media.whole(self.settings.audio_rate if self.settings.read_audio else None,
                                  video=self.settings.read_video)
        if decoded.nbytes <= self.settings.cache_mb * 2**20:
            self._cache[path] = decoded
            self._cached_bytes += decoded.nbytes
            while self._cached_bytes > self.settings.cache_mb * 2**20:
                _, evicted = self._cache.popitem(last=False)
                self._cached_bytes -= evicted.nbytes
        return _Borrowed(decoded)


class _Borrowed:
    """A decoded file used like an open one, in a `with` block."""

    def __init__(self, media: DecodedMedia):
        self.media = media

    def __enter__(self) -> DecodedMedia:
        return self.media

    def __exit__(self, *exc) -> None:
        return None
