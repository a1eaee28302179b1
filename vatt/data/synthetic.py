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

The clips are real files: the generator encodes each one as a short mp4 (H.264 video at 10 fps, AAC audio)
and writes a manifest with its captions and label, a vocabulary and a class list beside them; the dataset is
then the generic manifest dataset reading those files, exactly as it reads a user's data. A set is generated
once into its own folder (named by a hash of the arguments), built under a temporary name and renamed into
place when complete, so an interrupted generation leaves nothing that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from vatt.data.datasets.base import with_clip_settings
from vatt.data.datasets.manifest import ManifestDataset
from vatt.data.encode import write_video
from vatt.data.text import Vocabulary, build_vocabulary
from vatt.registry import register

GENERATOR_VERSION = 2  # part of the cache key: bump it when the generated data changes
FPS = 10  # the pre-training frame rate; a clip of `frames` frames lasts frames / FPS seconds
SPLIT_STREAMS = {"train": 0, "test": 1}
DEFAULT_NUM_CLIPS = {"train": 2048, "test": 256}
CHUNK = 256  # clips rendered per vectorised pass, bounds the float temporaries
MANIFEST_FILE = "manifest.jsonl"
VOCABULARY_FILE = "vocabulary.txt"
CLASSES_FILE = "classes.txt"
PARAMS_FILE = "params.json"  # written last: its presence marks a complete set
VIDEO_CRF = 12  # near-lossless: the codec must not blur the colours and shapes the captions name
# Augmentation that keeps the content the captions name: no flip (left/right), no hue shift (colour names).
CONTENT_SAFE_AUGMENTATION = {"flip": False, "hue": 0.0, "crop_area": (0.5, 1.0), "crop_aspect": (0.75, 1.33)}
EVAL_VIEWS = {"clips": 1, "crops": 1}  # a file is exactly one clip long
DEFAULT_CACHE_MB = 512

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
    """All clips of one split as numpy arrays plus their candidate captions; a pure function of its arguments.

    "video" uint8 [N, 3, T, H, W], "audio" int16 [N, S], "label" int64 [N], "captions" a list of N lists of
    `candidates` paraphrases (empty for the `no_text_fraction` of clips without text).
    """
    streams = np.random.SeedSequence([seed, SPLIT_STREAMS[split], GENERATOR_VERSION]).spawn(5)
    rng_label, rng_video, rng_audio, rng_text, rng_missing = (np.random.default_rng(s) for s in streams)
    labels = rng_label.permutation(np.arange(num_clips) % NUM_CLASSES)  # balanced classes
    video = np.concatenate([_render_video(rng_video, labels[i : i + CHUNK], frames, size)
                            for i in range(0, num_clips, CHUNK)])  # [N, 3, T, H, W] uint8
    audio = np.concatenate([_render_audio(rng_audio, labels[i : i + CHUNK], audio_samples, sample_rate)
                            for i in range(0, num_clips, CHUNK)])  # [N, S] int16
    sentences = [[_caption(rng_text, label) for _ in range(candidates)] for label in labels]
    has_text = np.ones(num_clips, dtype=bool)
    has_text[rng_missing.permutation(num_clips)[: round(no_text_fraction * num_clips)]] = False
    captions = [clip if keep else [] for clip, keep in zip(sentences, has_text)]
    return {"video": video, "audio": audio, "label": labels.astype(np.int64), "captions": captions}


def write_clip_files(directory: Path, params: dict) -> None:
    """Encode every clip of a split as an mp4 and write the manifest, vocabulary and class list."""
    clips = generate_clips(**{k: v for k, v in params.items() if k != "version"})
    names = class_names()
    lines = []
    for n, label in enumerate(clips["label"]):
        relative = f"clips/{n:05d}.mp4"
        write_video(directory / relative, clips["video"][n].transpose(1, 2, 3, 0), fps=FPS,
                    audio=clips["audio"][n], audio_rate=params["sample_rate"], crf=VIDEO_CRF)
        lines.append(json.dumps({"video": relative, "captions": clips["captions"][n], "labels": [names[label]]}))
    (directory / MANIFEST_FILE).write_text("\n".join(lines) + "\n")
    caption_vocabulary().save(directory / VOCABULARY_FILE)
    (directory / CLASSES_FILE).write_text("\n".join(names) + "\n")
    (directory / PARAMS_FILE).write_text(json.dumps({**params, "files": _file_sizes(directory)}, indent=1,
                                                    sort_keys=True))


def _file_sizes(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_size for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != PARAMS_FILE}


def _is_complete(directory: Path, params: dict) -> bool:
    """The set was generated with `params` and no file has gone missing or changed size since."""
    try:
        recorded = json.loads((directory / PARAMS_FILE).read_text())
        return recorded.pop("files") == _file_sizes(directory) and recorded == params
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def ensure_clip_files(root: Path, params: dict) -> Path:
    """The folder holding the split described by `params`, generating it first if needed."""
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    directory = root / key
    if _is_complete(directory, params):
        return directory
    print(f"vatt: generating {params['num_clips']} synthetic {params['split']} clips (mp4) into {directory} ...",
          end="", file=sys.stderr, flush=True)
    started = time.perf_counter()
    building = root / f"{key}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        write_clip_files(building, params)
        shutil.rmtree(directory, ignore_errors=True)  # a stale or partial set under the final name
        os.replace(building, directory)
    except OSError:
        if not (directory / PARAMS_FILE).is_file():  # lost no race: a real failure
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    print(f" done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return directory


def default_cache_root() -> Path:
    root = os.environ.get("VATT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "vatt"


@with_clip_settings
@register("datasets", "synthetic", example={"num_clips": 8, "frames": 4, "size": 16, "audio_samples": 512})
class SyntheticClips(ManifestDataset):
    """Embedded synthetic clips: a coloured shape moving, a tone following it, a caption describing it.

    Generated once as mp4 files plus a manifest, then read like any manifest dataset (clip settings apply:
    `train` defaults to split == "train", augmentation to one that keeps the captioned content, see
    CONTENT_SAFE_AUGMENTATION, and whole decoded files are cached in memory up to `cache_mb`). Samples carry
    "video", "audio", "audio_mask", "text" [L, 16], "text_mask", "caption" and "label" in [0, 96).
    `num_clips` defaults to 2048 for "train" and 256 for "test"; the splits come from independent random
    streams. Files live in `cache_dir`/<hash of the generation arguments>, `cache_dir` defaulting to
    $VATT_CACHE/synthetic or ~/.cache/vatt/synthetic.
    """

    def __init__(self, split: str = "train", num_clips: int | None = None, frames: int = 8, size: int = 32,
                 audio_samples: int = 6400, sample_rate: int = 8000, candidates: int = 5,
                 no_text_fraction: float = 0.0, seed: int = 0, cache_dir: str | None = None, **clip):
        if split not in SPLIT_STREAMS:
            raise ValueError(f"split must be one of {sorted(SPLIT_STREAMS)}, got {split!r}")
        num_clips = DEFAULT_NUM_CLIPS[split] if num_clips is None else num_clips
        for name, value, low in (("num_clips", num_clips, 1), ("frames", frames, 1), ("size", size, 8),
                                 ("audio_samples", audio_samples, 1), ("sample_rate", sample_rate, 7350),
                                 ("candidates", candidates, 1), ("seed", seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if size % 2:
            raise ValueError(f"size must be even (H.264 4:2:0 video), got {size}")
        if not isinstance(no_text_fraction, (int, float)) or not 0.0 <= no_text_fraction <= 1.0:
            raise ValueError(f"no_text_fraction must be a number in [0, 1], got {no_text_fraction!r}")
        params = {"version": GENERATOR_VERSION, "split": split, "num_clips": num_clips, "frames": frames,
                  "size": size, "audio_samples": audio_samples, "sample_rate": sample_rate,
                  "candidates": candidates, "no_text_fraction": float(no_text_fraction), "seed": seed}
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root() / "synthetic"
        self.directory = ensure_clip_files(root, params)
        self.vocabulary_path = self.directory / VOCABULARY_FILE
        self.vocabulary = Vocabulary.load(self.vocabulary_path)
        defaults = {"train": split == "train", "fps": FPS, "audio_rate": sample_rate, "cache_mb": DEFAULT_CACHE_MB,
                    **EVAL_VIEWS,
                    **CONTENT_SAFE_AUGMENTATION}
        clip = {**defaults, **{k: v for k, v in clip.items() if v is not None}}
        super().__init__(str(self.directory / MANIFEST_FILE), vocabulary=str(self.vocabulary_path),
                         classes=str(self.directory / CLASSES_FILE), multi_label=False, candidates=candidates,
                         frames=frames, size=size, audio_samples=audio_samples, **clip)
        self.split = split
        self.labels = np.array([self._class_index[entry.labels[0]] for entry in self.entries], dtype=np.int64)
