"""Writing media files with PyAV: the synthetic dataset, the tests' replicas of real layouts and the benchmarks
make real, compressed files this way (H.264 + AAC in mp4 by default), so that everything downstream reads
them exactly as it reads a user's data.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# extension → (video codec, audio codec, pixel format)
CONTAINER_CODECS = {
    ".mp4": ("libx264", "aac", "yuv420p"), ".m4v": ("libx264", "aac", "yuv420p"),
    ".mov": ("libx264", "aac", "yuv420p"), ".mkv": ("libx264", "flac", "yuv420p"),
    ".webm": ("libvpx-vp9", "libopus", "yuv420p"), ".avi": ("mpeg4", "pcm_s16le", "yuv420p"),
}
# encoder options for a given H.264-style crf (lower is better), so every container keeps the picture
QUALITY = {
    "libx264": lambda crf: {"crf": str(crf), "preset": "veryfast"},
    "libvpx-vp9": lambda crf: {"crf": str(crf), "b": "0"},
    "mpeg4": lambda crf: {"qmin": "1", "qmax": str(max(2, crf // 6))},
}
AUDIO_CODECS = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus",
                ".opus": "libopus", ".m4a": "aac"}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def _as_int16(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        return audio
    return np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def _add_audio(container, codec: str, rate: int):
    if codec == "libopus" and rate not in OPUS_RATES:
        raise ValueError(f"audio_rate must be one of {OPUS_RATES} for Opus (webm, ogg), got {rate}")
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "mono"
    return stream


def _encode_audio(container, stream, audio: np.ndarray, rate: int) -> None:
    samples = _as_int16(audio).reshape(1, -1)  # [1, S] mono, packed
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = Fraction(1, rate)
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_video(path: str | Path, frames: np.ndarray, *, fps: float, audio: np.ndarray | None = None,
                audio_rate: int = 48000, crf: int = 18, options: dict | None = None) -> None:
    """Encode RGB frames uint8 [T, H, W, 3] (even H and W) at `fps`, with mono `audio` [S] (float in [-1, 1]
    or int16) when given. The codecs follow the extension (mp4: H.264 + AAC; mkv: H.264 + FLAC; webm: VP9 +
    Opus; avi: MPEG-4 + PCM); `crf` sets the picture quality in H.264 terms (lower is better)."""
    path = Path(path)
    if path.suffix.lower() not in CONTAINER_CODECS:
        raise ValueError(f"path must end in one of {sorted(CONTAINER_CODECS)}, got {str(path)!r}")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"frames need an even height and width for 4:2:0 video, got {list(frames.shape[1:3])}")
    video_codec, audio_codec, pixel_format = CONTAINER_CODECS[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream(video_codec, rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], pixel_format
        video.options = {**QUALITY[video_codec](crf), **(options or {})}
        sound = _add_audio(container, audio_codec, audio_rate) if audio is not None else None
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            _encode_audio(container, sound, audio, audio_rate)


def write_audio(path: str | Path, audio: np.ndarray, *, rate: int) -> None:
    """Encode mono `audio` [S] (float in [-1, 1] or int16); the codec follows the extension."""
    path = Path(path)
    codec = AUDIO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"path must end in one of {sorted(AUDIO_CODECS)}, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = _add_audio(container, codec, rate)
        _encode_audio(container, stream, audio, rate)


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Encode one RGB picture uint8 [H, W, 3] (even H and W) as JPEG or PNG, by the extension."""
    path = Path(path)
    codecs = {".jpg": ("mjpeg", "yuvj420p"), ".jpeg": ("mjpeg", "yuvj420p"), ".png": ("png", "rgb24")}
    if path.suffix.lower() not in codecs:
        raise ValueError(f"path must end in one of {sorted(codecs)}, got {str(path)!r}")
    codec, pixel_format = codecs[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], pixel_format
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in stream.encode(frame) + stream.encode(None):
            container.mux(packet)
