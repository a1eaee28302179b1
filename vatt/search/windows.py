"""A whole file cut into the model's clips: windows of one clip span every `stride` seconds.

A window starts at the file's start, then every `stride` seconds while a whole clip fits; when the last one
ends before the file does, one more window is aligned to the file's end, so that no tail goes unsearched.
Video windows are read as evaluation reads clips (the frames shown at the clip's frame times, the short side
resized to the model's size, the centre crop); a video shorter than one clip is unreadable, as everywhere in
vatt. A sound file shorter than one clip gives one zero-padded window, as audio evaluation reads one.

Windows are read a chunk at a time, all the chunk's frames in one demuxing pass; `windows_per_chunk` bounds
the decoded frames a chunk holds at the source's resolution.
"""
from __future__ import annotations

import numpy as np
import torch

from vatt.data import transforms
from vatt.data.clips import TIME_TOLERANCE
from vatt.data.decode import MediaError, MediaFile, MediaInfo, pick_frames
from vatt.search.model import MediaSettings

CHUNK_BYTES = 256 * 2**20  # decoded source frames a chunk may hold
MAX_WINDOWS_PER_CHUNK = 64


def span_of(media: MediaSettings, kind: str) -> float:
    return media.video_span if kind == "video" else media.audio_span


def window_starts(begin: float, end: float, span: float, stride: float) -> list[float]:
    """Start times of the windows of [begin, end] (see the module docstring); one at `begin` when shorter."""
    room = end - begin - span
    if room <= TIME_TOLERANCE:
        return [begin]
    count = int(np.floor(room / stride + 1e-9)) + 1
    starts = [begin + n * stride for n in range(count)]
    if starts[-1] < begin + room - TIME_TOLERANCE:
        starts.append(begin + room)
    return starts


def windows_per_chunk(info: MediaInfo, media: MediaSettings) -> int:
    if not info.has_video or not info.width or not info.height:
        return MAX_WINDOWS_PER_CHUNK
    window_bytes = media.frames * info.width * info.height * 3
    return int(np.clip(CHUNK_BYTES // window_bytes, 1, MAX_WINDOWS_PER_CHUNK))


def file_kind(info: MediaInfo) -> str:
    return "video" if info.has_video else "audio"


def check_length(info: MediaInfo, media: MediaSettings) -> None:
    """A video shorter than one clip cannot be read (its frames cannot be padded)."""
    if info.has_video and info.duration < media.video_span - TIME_TOLERANCE:
        raise MediaError(info.path, f"lasts {info.duration:.3f} s, shorter than one clip ({media.video_span:.3f} s)")


def read_video_windows(file: MediaFile, starts: list[float], media: MediaSettings) -> torch.Tensor:
    """The windows starting at `starts` as the model's clips: uint8 [n, 3, T, S, S]."""
    times = [media.frame_times(start) for start in starts]  # [n][T]
    wanted = np.unique(np.concatenate(times))
    decoded = file.read(wanted)[0]
    if decoded is None:
        raise MediaError(file.path, "has no video stream")
    clips = []
    for window in times:
        frames = pick_frames(*decoded, window, file.path, file.info)  # [T, H, W, 3]
        view = transforms.spatial_views(frames, media.size, 1)[0]  # [T, 3, S, S]
        clips.append(transforms.to_clip_layout(view))  # [3, T, S, S]
    return torch.stack(clips)  # [n, 3, T, S, S]


def read_audio_windows(file: MediaFile, starts: list[float], media: MediaSettings) -> torch.Tensor:
    """The windows starting at `starts` as waveforms [n, A], zero where the file has no sound."""
    length = starts[-1] - starts[0] + media.audio_span
    total = int(round(length * media.audio_rate)) + media.audio_samples
    sound = file.audio(starts[0], total, media.audio_rate)  # [total], one pass for the chunk
    if sound is None:
        raise MediaError(file.path, "has no audio stream")
    offsets = [int(round((start - starts[0]) * media.audio_rate)) for start in starts]
    return torch.from_numpy(np.stack([sound[o:o + media.audio_samples] for o in offsets]))  # [n, A]


def read_windows(file: MediaFile, kind: str, starts: list[float], media: MediaSettings) -> torch.Tensor:
    if kind == "video":
        return read_video_windows(file, starts, media)
    return read_audio_windows(file, starts, media)
