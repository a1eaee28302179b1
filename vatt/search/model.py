"""A trained model made ready for search: the network, how its inputs are read, its words, its fingerprint.

The model's tokenizers fix what one clip is (frames and frame size, waveform length, words per caption). The
rest of how media becomes a clip — the frame rate, the frame stride, the audio sample rate, the vocabulary —
is not part of the network and lives in the data section of the config it came with (a run's resolved
config, or the converter's). `media_settings` reads it from there, the first dataset node (depth first, eval
before train) that names a value deciding; missing values take the clip defaults of `vatt.data.clips`, the
paper's (10 fps, 48 kHz).

The fingerprint identifies the weights (not the files holding them): an index records it, so that searching
an index with another model is refused instead of giving wrong results.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vatt import config as cfglib
from vatt.data.clips import ClipSettings
from vatt.data.text import Vocabulary, WordTokenizer
from vatt.errors import UserError

CONFIG_NAME = "config.yaml"
VOCABULARY_NAME = "vocabulary.txt"  # the converter writes the release's vocabulary beside the weights
FINGERPRINT_SAMPLES = 4096  # values read from each tensor: enough to tell any two trained models apart
CLIP_DEFAULTS = ClipSettings()
# The synthetic generator names its audio rate `sample_rate` and generates its vocabulary instead of reading one.
RATE_KEYS = ("audio_rate", "sample_rate")
SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class MediaSettings:
    """How a file becomes the model's clips: `frames` frames of `size`² pixels taken every `stride` frames
    of a `fps` timeline, and `audio_samples` of mono sound at `audio_rate`."""
    frames: int
    size: int
    fps: float
    stride: int
    audio_rate: int
    audio_samples: int

    @property
    def video_span(self) -> float:
        return self.frames * self.stride / self.fps

    @property
    def audio_span(self) -> float:
        return self.audio_samples / self.audio_rate

    def frame_times(self, start: float) -> np.ndarray:
        return self.clip_settings().frame_times(start)  # [T]

    def clip_settings(self, *, clips: int = 1, crops: int = 1, read_video: bool = True,
                      read_audio: bool = False) -> ClipSettings:
        """Evaluation-style clip settings (no augmentation) of these media settings."""
        return ClipSettings(frames=self.frames, size=self.size, fps=self.fps, stride=self.stride,
                            audio_rate=self.audio_rate, audio_samples=self.audio_samples, train=False, clips=clips,
                            crops=crops, read_video=read_video, read_audio=read_audio,
                            pad_short_audio=read_audio and not read_video)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _dataset_nodes(node: Any) -> Iterator[dict]:
    """Every dataset node under a data section entry, depth first (a mixture's children after itself)."""
    if isinstance(node, dict):
        if "type" in node:
            yield node
        for value in node.values():
            yield from _dataset_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dataset_nodes(value)


def data_nodes(cfg: dict) -> list[dict]:
    data = cfg.get("data") or {}
    return [node for key in ("eval", "train") for node in _dataset_nodes(data.get(key))]


def _first(nodes: list[dict], keys: tuple[str, ...], default: Any) -> Any:
    for node in nodes:
        for key in keys:
            if node.get(key) is not None:
                return node[key]
    return default


def media_settings(cfg: dict, model: torch.nn.Module, *, fps: float | None = None,
                   audio_rate: int | None = None) -> MediaSettings:
    """The media settings of a model built from `cfg`; `fps` and `audio_rate` override the config's."""
    nodes = data_nodes(cfg)
    towers = model.towers
    # a model without a video (or audio) tower never reads that modality: the defaults only keep clips valid
    frames, size, audio_samples = CLIP_DEFAULTS.frames, CLIP_DEFAULTS.size, CLIP_DEFAULTS.num_audio_samples
    if "video" in towers:
        tokenizer = towers["video"].tokenizer
        height, width = tokenizer.size
        if height != width:
            raise UserError(f"the video tower takes {height}x{width} frames; search reads square centre crops")
        frames, size = tokenizer.frames, height
    if "audio" in towers:
        audio_samples = towers["audio"].tokenizer.sample_shape[0]
    return MediaSettings(frames=frames, size=size, fps=float(fps or _first(nodes, ("fps",), CLIP_DEFAULTS.fps)),
                         stride=int(_first(nodes, ("stride",), CLIP_DEFAULTS.stride)),
                         audio_rate=int(audio_rate or _first(nodes, RATE_KEYS, CLIP_DEFAULTS.audio_rate)),
                         audio_samples=audio_samples)


def find_vocabulary(path: Path, cfg: dict) -> Vocabulary | None:
    """The words of the model's text tower: the converter's file beside the weights, the word2vec table's
    vocabulary, a dataset's vocabulary file, or the synthetic set's generated one."""
    text = ((cfg.get("model") or {}).get("modalities") or {}).get("text") or {}
    candidates = [path / VOCABULARY_NAME, (text.get("word2vec") or {}).get("vocabulary"),
                  _first(data_nodes(cfg), ("vocabulary",), None)]
    for candidate in candidates:
        if candidate is not None and Path(candidate).expanduser().is_file():
            try:
                return Vocabulary.load(Path(candidate).expanduser())
            except ValueError as exc:
                raise UserError(f"the model's vocabulary: {exc}") from None
    if any(node.get("type") == SYNTHETIC for node in data_nodes(cfg)):
        from vatt.data.synthetic import caption_vocabulary
        return caption_vocabulary()
    return None


def fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the weights: every tensor's name and shape, and values spread over each."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // FINGERPRINT_SAMPLES)
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(flat[::step].to("cpu", torch.float64).numpy().tobytes())
    return digest.hexdigest()[:20]


class SearchModel:
    """A MultimodalModel in eval mode with what search needs around it.

    `embed(modality, x)` runs one tower and its head on a batch and gives the L2-normalised embeddings
    `{space: [B, d]}`; `tokenizer` turns sentences into the text tower's ids.
    """

    def __init__(self, model: torch.nn.Module, cfg: dict, *, path: str | os.PathLike = "", device="cpu",
                 vocabulary: Vocabulary | None = None, fps: float | None = None, audio_rate: int | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.cfg = cfg
        self.path = str(Path(path).resolve()) if path else ""
        self.media = media_settings(cfg, model, fps=fps, audio_rate=audio_rate)
        self.fingerprint = fingerprint(model)
        self.modalities = tuple(model.towers)
        self._vocabulary = vocabulary if vocabulary is not None else find_vocabulary(Path(self.path or "."), cfg)
        self._tokenizer: WordTokenizer | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu", **options) -> "SearchModel":
        """A converted model folder or a training run's directory (see `vatt.load_pretrained`)."""
        from vatt.pretrained import load_pretrained
        path = Path(path).expanduser()
        if not path.is_dir():
            raise UserError(f"{path}: no such model folder; give a directory written by python -m vatt.convert "
                            f"or a run directory of python -m vatt.run")
        model = load_pretrained(path, device=device)
        return cls(model, cfglib.load(path / CONFIG_NAME), path=path, device=device, **options)

    @property
    def tokenizer(self) -> WordTokenizer:
        if self._tokenizer is None:
            if "text" not in self.modalities:
                raise UserError(f"the model {self.path} has no text tower")
            if self._vocabulary is None:
                raise UserError(f"no vocabulary found for the model {self.path}: put its {VOCABULARY_NAME} in the "
                                f"model folder or pass one (vocabulary=..., --vocabulary)")
            self._tokenizer = WordTokenizer(self._vocabulary, max_words=self.model.towers["text"].tokenizer.max_words)
        return self._tokenizer

    @torch.no_grad()
    def space_widths(self, modality: str) -> dict[str, int]:
        """{space: d} of a modality's head (read off a zero feature: no input needed)."""
        self.require(modality)
        feature = torch.zeros(1, self.model.towers[modality].out_dim, device=self.device)  # [1, D]
        return {space: z.shape[-1] for space, z in self.model.heads[modality](feature).items()}

    def require(self, modality: str) -> None:
        if modality not in self.modalities:
            raise UserError(f"the model {self.path} has no {modality} tower (it has {', '.join(self.modalities)})")

    @torch.no_grad()
    def embed(self, modality: str, x: torch.Tensor, normalise: bool = True) -> dict[str, torch.Tensor]:
        """{space: [B, d] float32} of a batch of one modality's inputs [B, *sample], of unit length unless
        `normalise` is false (a video's clips are averaged before normalising, as the paper does)."""
        self.require(modality)
        spaces = self.model({modality: x.to(self.device)}, modalities=(modality,))[modality]
        return {space: (F.normalize(z.float(), dim=-1) if normalise else z.float()).cpu()
                for space, z in spaces.items()}
