"""Reading frames and sound out of media files with PyAV (FFmpeg).

Times are seconds on the file's own clock. A video frame is shown from its timestamp until the next frame's,
so the frame "at" time t is the last one whose timestamp is <= t; resampling a 30 fps source to 10 fps is
asking for the frames at 0, 0.1, 0.2, ... Audio comes out mono, float32 in [-1, 1], at the rate asked for,
resampled by FFmpeg's resampler and placed on the same clock as the frames by its timestamps, so clips stay
in sync whatever the source rate or the codec's priming delay.

Every failure to read what was asked (a missing, unreadable, corrupt or truncated file, a file without video,
a clip that runs past the end) is raised as `MediaError`, which names the file: the loaders skip and count
those, anything else is a bug and stops the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import av
import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
EPSILON = 1e-6  # seconds: timestamps are rationals turned into floats; never let rounding pick a neighbour
AUDIO_SEEK_MARGIN = 0.25  # seconds decoded before an audio start, so the resampler has settled by then


class MediaError(Exception):
    """A file that cannot give what was asked of it; `path` and `reason` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds. `start`/`end` bound the video (or, without video, the audio) in seconds."""
    path: str
    start: float
    end: float
    has_video: bool
    has_audio: bool
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def _seconds(value, time_base) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


class MediaFile:
    """An open media file; use it as a context manager. Decoding runs on one thread (workers parallelise)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if not Path(path).is_file():
            raise MediaError(path, "no such file")
        try:
            self._open()
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise MediaError(path, f"cannot open: {exc}") from None
        self.is_image = Path(path).suffix.lower() in IMAGE_EXTENSIONS
        self.info = self._read_info()
        self._used = False  # whether the demuxer has moved since the file was opened

    def _open(self) -> None:
        self._container = av.open(self.path)
        self._video = self._container.streams.video[0] if self._container.streams.video else None
        self._audio = self._container.streams.audio[0] if self._container.streams.audio else None
        for stream in (self._video, self._audio):
            if stream is not None:
                stream.codec_context.thread_count = 1

    def __enter__(self) -> "MediaFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _read_info(self) -> MediaInfo:
        main = self._video or self._audio
        if main is None:
            raise MediaError(self.path, "holds neither a video nor an audio stream")
        start = _seconds(main.start_time, main.time_base) or 0.0
        length = _seconds(main.duration, main.time_base)
        if length is None and self._container.duration is not None:  # Matroska/WebM: only the container knows
            length = self._container.duration / av.time_base - start
        if self.is_image:
            length = 0.0  # a still image has no time
        elif not length or length <= 0:
            raise MediaError(self.path, "has no duration in its header (truncated or not a media file)")
        video, audio = self._video, self._audio
        rate = (video.average_rate or video.guessed_rate) if video is not None else None
        return MediaInfo(
            path=self.path, start=start, end=start + length, has_video=video is not None,
            has_audio=audio is not None, fps=float(rate) if rate else None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            audio_rate=audio.codec_context.sample_rate if audio is not None else None,
            audio_channels=audio.codec_context.channels if audio is not None else None,
        )

    # reading --------------------------------------------------------------------------------------------
    def _rewind(self, time: float) -> None:
        """Position the demuxer so that decoding reaches `time` from before it. A fresh file read from its
        start is left alone and a used one is reopened rather than sought to 0: audio decoders (AAC) lose
        their first frame after a seek, which only a margin before the wanted time absorbs."""
        near_start = time <= self.info.start + AUDIO_SEEK_MARGIN
        if near_start and not self._used:
            return
        if near_start:
            self._container.close()
            self._open()
            return
        stream = self._video or self._audio
        self._container.seek(int(round(time / stream.time_base)), stream=stream, backward=True)

    def read(self, frame_times: Sequence[float] | None, audio_start: float | None = None,
             num_samples: int = 0, rate: int = 0, every_frame: bool = False
             ) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray | None]:
        """One demuxing pass that decodes what a clip needs: the video frames shown at `frame_times` (sorted;
        with `every_frame`, all frames from the first time to the last) as timestamps [N] and RGB uint8
        [N, H, W, 3], and `num_samples` of mono sound at `rate` from `audio_start` (zero where the track has
        none; None without an audio stream). Only the frames kept are converted to RGB: a 30 fps source read
        at 10 fps converts a third of what it decodes."""
        want_video = frame_times is not None and len(frame_times) > 0
        want_audio = audio_start is not None and self._audio is not None
        if want_video and self._video is None:
            raise MediaError(self.path, "has no video stream")
        if not (want_video or want_audio):
            return None, None
        wanted = np.asarray(frame_times, dtype=np.float64) + EPSILON if want_video else None
        first, last = (float(wanted[0]), float(wanted[-1])) if want_video else (math.inf, -math.inf)
        audio_stop = audio_start + num_samples / rate if want_audio else -math.inf
        times, frames, held = [], [], None  # held: the last decoded frame, kept once the next one shows
        sound = np.zeros(num_samples, dtype=np.float32) if want_audio else None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate) if want_audio else None
        video_done, audio_done = not want_video, not want_audio

        def settle(until: float) -> None:  # keep the held frame if it is shown at a wanted time before `until`
            shown = every_frame or np.searchsorted(wanted, held.time) < np.searchsorted(wanted, until)
            if shown:
                times.append(held.time)
                frames.append(held.to_ndarray(format="rgb24"))

        try:
            self._rewind(min(first, audio_start - AUDIO_SEEK_MARGIN if want_audio else math.inf))
            self._used = True
            streams = [s for s, chosen in ((self._video, want_video), (self._audio, want_audio)) if chosen]
            for packet in self._container.demux(streams):
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    if packet.stream is self._video and not video_done:
                        if held is not None:
                            settle(frame.time)
                        held = frame if frame.time <= last else None
                        video_done = held is None
                    elif packet.stream is self._audio and not audio_done:
                        for piece in resampler.resample(frame):
                            _place(sound, piece, audio_start, rate)
                        audio_done = frame.time > audio_stop
                if video_done and audio_done:
                    break
            if held is not None:
                settle(math.inf)
            if want_audio:
                for piece in resampler.resample(None):
                    _place(sound, piece, audio_start, rate)
        except av.error.FFmpegError as exc:
            raise MediaError(self.path, f"corrupt data: {exc}") from None
        if want_video and not frames:
            raise MediaError(self.path, f"no video frames decoded between {first:.3f} s and {last:.3f} s")
        video = (np.asarray(times, dtype=np.float64), np.stack(frames)) if want_video else None
        return video, (np.clip(sound, -1.0, 1.0) if want_audio else None)

    def still(self) -> np.ndarray:
        """The first frame (an image file's picture), uint8 [H, W, 3]."""
        if self._video is None:
            raise MediaError(self.path, "has no picture")
        try:
            for frame in self._container.decode(self._video):
                return frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise MediaError(self.path, f"corrupt picture data: {exc}") from None
        raise MediaError(self.path, "no picture could be decoded")

    def clip(self, frame_times: Sequence[float] | None, audio_start: float | None, num_samples: int = 0,
             rate: int = 0) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The frames shown at `frame_times` (sorted; uint8 [T, H, W, 3]) and the sound of `read`."""
        if frame_times is not None and frame_times[-1] >= self.info.end + EPSILON:
            raise MediaError(self.path, f"the clip needs video up to {frame_times[-1]:.3f} s but the file ends at "
                                        f"{self.info.end:.3f} s")
        video, sound = self.read(frame_times, audio_start, num_samples, rate)
        frames = pick_frames(*video, frame_times, self.path, self.info) if video is not None else None
        return frames, sound

    def frames_at(self, times: Sequence[float]) -> np.ndarray:
        return self.clip(times, None)[0]

    def audio(self, start: float, num_samples: int, rate: int) -> np.ndarray | None:
        return self.clip(None, start, num_samples, rate)[1]

    def whole(self, rate: int | None, video: bool = True) -> "DecodedMedia":
        """Every frame (unless `video` is false) and, at `rate`, all the sound of the file, held in memory."""
        info = self.info
        samples = max(1, math.ceil(info.duration * rate)) if rate else 0
        decoded, sound = self.read([info.start, info.end] if video and info.has_video else None,
                                   info.start if rate else None, samples, rate or 0, every_frame=True)
        times, frames = decoded if decoded is not None else (None, None)
        return DecodedMedia(info, times, frames, sound, rate)


def _place(out: np.ndarray, piece: av.AudioFrame, start: float, rate: int) -> None:
    """Copy a resampled piece into `out` (which starts at `start`) where the two overlap."""
    if piece.pts is None:
        raise ValueError("resampled audio lost its timestamps")
    offset = round((float(piece.pts * piece.time_base) - start) * rate)
    samples = piece.to_ndarray().reshape(-1)  # [n] mono
    lo, hi = max(offset, 0), min(offset + len(samples), len(out))
    if lo < hi:
        out[lo:hi] = samples[lo - offset : hi - offset]


def pick_frames(decoded_times: np.ndarray, frames: np.ndarray, times: Sequence[float], path: str,
                info: MediaInfo) -> np.ndarray:
    """Frames shown at `times`: for each, the last decoded frame whose timestamp is <= it."""
    times = np.asarray(times, dtype=np.float64)
    frame_length = 1.0 / info.fps if info.fps else 0.0
    shown_until = decoded_times[-1] + frame_length
    if times[-1] > shown_until + EPSILON or times[-1] >= info.end + EPSILON:
        raise MediaError(path, f"the clip needs video up to {times[-1]:.3f} s but the decoded frames end at "
                               f"{min(shown_until, info.end):.3f} s (truncated file?)")
    index = np.maximum(np.searchsorted(decoded_times, times + EPSILON, side="right") - 1, 0)  # [T]
    if len(index) == len(frames) and (index == np.arange(len(frames))).all():
        return frames  # every decoded frame once, in order: no copy
    return frames[index]


@dataclass
class DecodedMedia:
    """A whole file decoded into memory; answers `frames_at` and `audio` like an open MediaFile does."""
    info: MediaInfo
    times: np.ndarray | None        # [N] frame timestamps
    frames: np.ndarray | None       # [N, H, W, 3] uint8
    sound: np.ndarray | None        # [S] float32 from info.start at `rate`
    rate: int | None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.times, self.frames, self.sound) if a is not None)

    def clip(self, frame_times: Sequence[float] | None, audio_start: float | None, num_samples: int = 0,
             rate: int = 0) -> tuple[np.ndarray | None, np.ndarray | None]:
        frames = self.frames_at(frame_times) if frame_times is not None else None
        return frames, self.audio(audio_start, num_samples, rate) if audio_start is not None else None

    def frames_at(self, times: Sequence[float]) -> np.ndarray:
        if self.frames is None:
            raise MediaError(self.info.path, "has no video stream")
        return pick_frames(self.times, self.frames, times, self.info.path, self.info)

    def audio(self, start: float, num_samples: int, rate: int) -> np.ndarray | None:
        if self.sound is None:
            return None
        if rate != self.rate:
            raise ValueError(f"rate must be the decoded rate {self.rate}, got {rate}")
        out = np.zeros(num_samples, dtype=np.float32)
        offset = round((start - self.info.start) * rate)
        lo, hi = max(offset, 0), min(offset + num_samples, len(self.sound))
        if lo < hi:
            out[lo - offset : hi - offset] = self.sound[lo:hi]
        return out


def probe(path: str | Path) -> MediaInfo:
    with MediaFile(path) as media:
        return media.info

