"""A seeded synthetic video-audio-text dataset whose three modalities describe the same hidden content.

Each clip shows one coloured shape (6 colours x 4 shapes) moving in one of 4 directions over a noisy
background. Its audio is a tone whose pitch follows the colour and whose beep rhythm follows the shape (the
direction is silent). Its text is a caption naming colour, shape and direction with varied templates and
synonyms. The clip's label is the index of its (colour, shape, direction) triple, 96 classes.

Nuisance factors vary per clip (object size, position, speed, colour shade, background level and texture,
pixel noise, pitch detune, phases, loudness, audio noise) so that the content has to be read off the signal.

MIL-NCE needs L candidate sentences per clip. The release takes a clip's own narration and its temporal
neighbours; here the L candidates are L independently drawn paraphrases of the same content (candidate 0 is
the clip's `caption`), which keeps the text strongly tied to the clip.

Clips are made once and cached as compact .npy files (uint8 video, int16 audio, uint16 ids) with a manifest
of checksums written last; a cache whose manifest or checksums do not match is regenerated.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vatt.data.text import Vocabulary, WordTokenizer, build_vocabulary
from vatt.registry import register

GENERATOR_VERSION = 1  # part of the cache key: bump it when the generated data changes
MAX_WORDS = 16
SPLIT_STREAMS = {"train": 0, "test": 1}
DEFAULT_NUM_CLIPS = {"train": 2048, "test": 256}
CHUNK = 256  # clips rendered per vectorised pass, bounds the float temporaries
ARRAY_FILES = ("video", "audio", "text", "text_mask", "label")
VOCABULARY_FILE = "vocabulary.txt"
MANIFEST_FILE = "manifest.json"

COLOURS = {  # name -> RGB in [0, 1]
    "red": (0.90, 0.10, 0.10), "green": (0.10, 0.80, 0.20), "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.90, 0.10), "purple": (0.60, 0.15, 0.85), "white": (0.95, 0.95, 0.95),
}
SHAPES = {"square": ("square", "box", "block"), "circle": ("circle", "ball", "disc"),
          "triangle": ("triangle", "wedge"), "cross": ("cross", "plus")}
DIRECTIONS = {  # name -> (unit step in x, unit step in y with y pointing down, verb phrases)
    "left": (-1, 0, ("moves to the left", "slides left", "goes left", "drifts leftwards", "travels to the left")),
    "right": (1, 0, ("moves to the right", "slides right", "goes right", "drifts rightwards", "travels to the right")),
    "up": (0, -1, ("moves up", "rises", "goes up", "floats upwards", "climbs")),
    "down": (0, 1, ("moves down", "falls", "goes down", "sinks downwards", "drops")),
}
SUBJECTS = ("a {colour} {shape}", "the {colour} {shape}", "one {colour} {shape}", "a small {colour} {shape}",
            "a bright {colour} {shape}")
SENTENCES = ("{subject} {motion}", "{subject} {motion} across the screen", "here {subject} {motion}",
             "in this clip {subject} {motion}", "we see how {subject} {motion}",
             "{subject} {motion} over a noisy background", "look, {subject} {motion}!")
# Tone frequency as a fraction of the sample rate, one per colour: a factor 1.5 apart, and the second
# harmonic of the highest stays below Nyquist, so any sample rate works.
PITCH_FRACTIONS = tuple(0.03 * 1.5**i for i in range(len(COLOURS)))
BEEPS_PER_CLIP = (0, 2, 4, 8)  # one per shape; 0 is a continuous tone
NUM_CLASSES = len(COLOURS) * len(SHAPES) * len(DIRECTIONS)


def label_of(colour: np.ndarray, shape: np.ndarray, direction: np.ndarray) -> np.ndarray:
    return (colour * len(SHAPES) + shape) * len(DIRECTIONS) + direction


def attributes_of(label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colour, shape, direction) indices of content labels."""
    rest, direction = np.divmod(label, len(DIRECTIONS))
    colour, shape = np.divmod(rest, len(SHAPES))
    return colour, shape, direction


def class_names() -> list[str]:
    """Readable name of every label, e.g. "red square left"."""
    return [f"{c} {s} {d}" for c in COLOURS for s in SHAPES for d in DIRECTIONS]


def caption_vocabulary() -> Vocabulary:
    """Every word any caption can use; the same for all splits and seeds."""
    fragments = [t.format(subject="", motion="", colour="", shape="") for t in SENTENCES + SUBJECTS]
    fragments += list(COLOURS) + [w for names in SHAPES.values() for w in names]
    fragments += [p for *_, phrases in DIRECTIONS.values() for p in phrases]
    return Vocabulary(build_vocabulary(fragments))


def _render_video(rng: np.random.Generator, labels: np.ndarray, frames: int, size: int) -> np.ndarray:
    n = len(labels)
    colour, shape, direction = attributes_of(labels)
    radius = size * rng.uniform(0.16, 0.22, n)  # [n]
    travel = size * rng.uniform(0.25, 0.40, n)  # [n] distance covered over the clip
    step = np.array([d[:2] for d in DIRECTIONS.values()], dtype=np.float64)[direction]  # [n, 2]
    # Place the path so the whole object stays inside the frame.
    along_lo, along_hi = radius + travel / 2, size - radius - travel / 2
    along = rng.uniform(0, 1, n) * np.maximum(along_hi - along_lo, 0) + along_lo
    across = rng.uniform(radius, size - radius)
    horizontal = step[:, 0] != 0
    middle = np.stack([np.where(horizontal, along, across), np.where(horizontal, across, along)], 1)  # [n, 2]
    progress = np.linspace(-0.5, 0.5, frames) if frames > 1 else np.zeros(1)  # [T]
    centre = middle[:, None] + step[:, None] * travel[:, None, None] * progress[None, :, None]  # [n, T, 2]
    pixel = np.arange(size) + 0.5
    dx = (pixel[None, None, None, :] - centre[..., 0, None, None]) / radius[:, None, None, None]  # [n, T, 1, W]
    dy = (pixel[None, None, :, None] - centre[..., 1, None, None]) / radius[:, None, None, None]  # [n, T, H, 1]
    adx, ady = np.abs(dx), np.abs(dy)
    masks = np.stack(np.broadcast_arrays(
        np.maximum(adx, ady) <= 0.85,  # square
        dx**2 + dy**2 <= 1.0,  # circle
        (ady <= 1.0) & (adx <= (dy + 1.0) / 2),  # triangle, apex up
        ((adx <= 0.35) & (ady <= 1.0)) | ((ady <= 0.35) & (adx <= 1.0)),  # cross
    ), 1)  # [n, 4, T, H, W]
    mask = np.take_along_axis(masks, shape[:, None, None, None, None], 1)[:, 0]  # [n, T, H, W]
    rgb = np.clip(np.array(list(COLOURS.values()))[colour] + rng.uniform(-0.06, 0.06, (n, 3)), 0, 1)  # [n, 3]
    level = rng.uniform(0.2, 0.45, (n, 1, 1, 1)) + rng.uniform(-0.05, 0.05, (n, 3, 1, 1))  # [n, 3, 1, 1] tint
    background = level + 0.08 * rng.standard_normal((n, 3, size, size))  # [n, 3, H, W] static texture
    video = np.where(mask[:, None], rgb[:, :, None, None, None], background[:, :, None])  # [n, 3, T, H, W]
    video = video + 0.04 * rng.standard_normal(video.shape)
    return np.round(np.clip(video, 0, 1) * 255).astype(np.uint8)


def _render_audio(rng: np.random.Generator, labels: np.ndarray, samples: int, sample_rate: int) -> np.ndarray:
    n = len(labels)
    colour, shape, _ = attributes_of(labels)
    t = np.arange(samples) / sample_rate  # [S] seconds
    pitch = sample_rate * np.array(PITCH_FRACTIONS)[colour] * rng.uniform(0.97, 1.03, n)  # [n] Hz
    phase = rng.uniform(0, 2 * np.pi, (n, 2, 1))
    tone = (np.sin(2 * np.pi * pitch[:, None] * t + phase[:, 0])
            + 0.35 * np.sin(4 * np.pi * pitch[:, None] * t + phase[:, 1])) / 1.35  # [n, S]
    beeps = np.array(BEEPS_PER_CLIP)[shape][:, None]  # [n, 1]
    cycle = 2 * np.pi * beeps * t / (samples / sample_rate) + rng.uniform(0, 2 * np.pi, (n, 1))
    # A clipped, steep cosine is an on/off gate with soft edges (no clicks).
    envelope = np.where(beeps > 0, np.clip(0.5 + 3 * np.cos(cycle), 0, 1), 1.0)  # [n, S]
    loudness = rng.uniform(0.35, 0.7, (n, 1))
    noise = rng.uniform(0.02, 0.06, (n, 1)) * rng.standard_normal((n, samples))
    audio = np.clip(loudness * envelope * tone + noise, -1, 1)
    return np.round(audio * 32767).astype(np.int16)


def _caption(rng: np.random.Generator, label: int) -> str:
    colour, shape, direction = (int(a) for a in attributes_of(np.asarray(label)))
    shape_words = list(SHAPES.values())[shape]
    phrases = list(DIRECTIONS.values())[direction][2]
    subject = SUBJECTS[rng.integers(len(SUBJECTS))].format(
        colour=list(COLOURS)[colour], shape=shape_words[rng.integers(len(shape_words))])
    return SENTENCES[rng.integers(len(SENTENCES))].format(
        subject=subject, motion=phrases[rng.integers(len(phrases))])


def generate_clips(*, split: str, num_clips: int, frames: int, size: int, audio_samples: int,
                   sample_rate: int, candidates: int, no_text_fraction: float, seed: int) -> dict:
    """All clips of one split as compact numpy arrays plus the captions; a pure function of its arguments."""
    streams = np.random.SeedSequence([seed, SPLIT_STREAMS[split], GENERATOR_VERSION]).spawn(5)
    rng_label, rng_video, rng_audio, rng_text, rng_missing = (np.random.default_rng(s) for s in streams)
    labels = rng_label.permutation(np.arange(num_clips) % NUM_CLASSES)  # balanced classes
    video = np.concatenate([_render_video(rng_video, labels[i : i + CHUNK], frames, size)
                            for i in range(0, num_clips, CHUNK)])  # [N, 3, T, H, W] uint8
    audio = np.concatenate([_render_audio(rng_audio, labels[i : i + CHUNK], audio_samples, sample_rate)
                            for i in range(0, num_clips, CHUNK)])  # [N, S] int16
    sentences = [[_caption(rng_text, label) for _ in range(candidates)] for label in labels]
    tokenizer = WordTokenizer(caption_vocabulary(), max_words=MAX_WORDS)
    text = tokenizer.encode_batch([s for clip in sentences for s in clip]).numpy().astype(np.uint16)
    text = text.reshape(num_clips, candidates, MAX_WORDS)  # [N, L, W]
    has_text = np.ones(num_clips, dtype=bool)
    has_text[rng_missing.permutation(num_clips)[: round(no_text_fraction * num_clips)]] = False
    text[~has_text] = 0
    captions = [clip[0] if keep else "" for clip, keep in zip(sentences, has_text)]
    return {"video": video, "audio": audio, "text": text, "text_mask": has_text,
            "label": labels.astype(np.int64), "captions": captions}


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_cache(directory: Path, params: dict, clips: dict, vocabulary: Vocabulary) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    blobs = {f"{name}.npy": _npy_bytes(clips[name]) for name in ARRAY_FILES}
    blobs["captions.json"] = json.dumps(clips["captions"]).encode()
    blobs[VOCABULARY_FILE] = ("\n".join(vocabulary.words) + "\n").encode()
    for file, data in blobs.items():
        _write_atomic(directory / file, data)
    # The manifest goes last: its presence with matching checksums marks a complete cache.
    manifest = {"params": params, "sha256": {file: _sha256(data) for file, data in blobs.items()}}
    _write_atomic(directory / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True).encode())


def _read_cache(directory: Path, params: dict) -> dict | None:
    """The cached clips, or None when the cache is missing, stale, partial or corrupt."""
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        if manifest["params"] != params:
            return None
        blobs = {file: (directory / file).read_bytes() for file in manifest["sha256"]}
        if any(_sha256(blobs[file]) != digest for file, digest in manifest["sha256"].items()):
            return None
        clips = {name: np.load(io.BytesIO(blobs[f"{name}.npy"]), allow_pickle=False) for name in ARRAY_FILES}
        clips["captions"] = json.loads(blobs["captions.json"])
        if blobs[VOCABULARY_FILE].decode().splitlines() != caption_vocabulary().words:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return clips


def default_cache_root() -> Path:
    root = os.environ.get("VATT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "vatt"


@register("datasets", "synthetic", example={"num_clips": 8, "frames": 4, "size": 16, "audio_samples": 512})
class SyntheticClips(Dataset):
    """Embedded synthetic clips: a coloured shape moving, a tone following it, a caption describing it.

    Items follow the batch contract: "video" float32 [3, T, H, W] and "audio" float32 [S] in [-1, 1], "text"
    int64 [L, 16] (all zero when the clip has no text), "text_mask" and "audio_mask" bool scalars, "label"
    int64 scalar in [0, 96), "caption" str ("" without text). `num_clips` defaults to 2048 for "train" and
    256 for "test"; the splits come from independent random streams. The cache lives in
    `cache_dir`/<hash of the arguments>, `cache_dir` defaulting to $VATT_CACHE/synthetic or
    ~/.cache/vatt/synthetic.
    """

    def __init__(self, split: str = "train", num_clips: int | None = None, frames: int = 8, size: int = 32,
                 audio_samples: int = 6400, sample_rate: int = 8000, candidates: int = 5,
                 no_text_fraction: float = 0.0, seed: int = 0, cache_dir: str | None = None):
        if split not in SPLIT_STREAMS:
            raise ValueError(f"split must be one of {sorted(SPLIT_STREAMS)}, got {split!r}")
        num_clips = DEFAULT_NUM_CLIPS[split] if num_clips is None else num_clips
        for name, value, low in (("num_clips", num_clips, 1), ("frames", frames, 1), ("size", size, 8),
                                 ("audio_samples", audio_samples, 1), ("sample_rate", sample_rate, 100),
                                 ("candidates", candidates, 1), ("seed", seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not isinstance(no_text_fraction, (int, float)) or not 0.0 <= no_text_fraction <= 1.0:
            raise ValueError(f"no_text_fraction must be a number in [0, 1], got {no_text_fraction!r}")
        params = {"version": GENERATOR_VERSION, "split": split, "num_clips": num_clips, "frames": frames,
                  "size": size, "audio_samples": audio_samples, "sample_rate": sample_rate,
                  "candidates": candidates, "no_text_fraction": float(no_text_fraction), "seed": seed}
        key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root() / "synthetic"
        self.directory = root / key
        self.split = split
        self.num_classes = NUM_CLASSES
        self.class_names = class_names()
        self.vocabulary = caption_vocabulary()
        self.tokenizer = WordTokenizer(self.vocabulary, max_words=MAX_WORDS)
        self.vocabulary_path = self.directory / VOCABULARY_FILE

        clips = _read_cache(self.directory, params)
        if clips is None:
            print(f"vatt: generating {num_clips} synthetic {split} clips into {self.directory} ...",
                  end="", file=sys.stderr, flush=True)
            started = time.perf_counter()
            clips = generate_clips(**{k: v for k, v in params.items() if k != "version"})
            _write_cache(self.directory, params, clips, self.vocabulary)
            print(f" done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        self._video, self._audio, self._text = clips["video"], clips["audio"], clips["text"]
        self._text_mask, self.labels, self.captions = clips["text_mask"], clips["label"], clips["captions"]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        video = torch.from_numpy(self._video[index]).float() / 127.5 - 1.0  # [3, T, H, W] in [-1, 1]
        audio = torch.from_numpy(self._audio[index].astype(np.float32) / 32767.0)  # [S] in [-1, 1]
        return {
            "video": video,
            "audio": audio,
            "text": torch.from_numpy(self._text[index].astype(np.int64)),  # [L, 16]
            "text_mask": torch.tensor(bool(self._text_mask[index])),
            "audio_mask": torch.tensor(True),
            "label": torch.tensor(int(self.labels[index]), dtype=torch.long),
            "caption": self.captions[index],
        }
