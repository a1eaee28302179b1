"""`vatt.Encoder`: embed your own videos, sounds and sentences with a trained VATT.

    enc = vatt.Encoder("runs/quickstart", device="cpu")
    videos = enc.video(["a.mp4", "b.mp4"], clips=4)   # {"vt": [2, d_vt], "va": [2, d_va]}, unit length
    words = enc.text(["a red ball rises"])            # {"vt": [1, d_vt]}
    scores = similarity(words["vt"], videos["vt"])    # [1, 2] cosine

Files are read by the project's evaluation reader (`vatt.data.clips.ClipReader`, no augmentation) at the
frame rate, frame size and sample rate of the model's config: `clips` evenly spaced clips per file and
`crops` spatial views of each (the centre crop, or three along the long side). A video's embedding is the
normalised mean of its views' embeddings, as the paper scores videos; `average="similarities"` keeps each
view's normalised embedding ([N, V, d]) so that `similarity` averages the views' similarities instead.

Items may also be tensors: a video as uint8 frames [T, H, W, 3] at the model's frame rate (any size, any
length of at least one clip), a sound as a float waveform [S] in [-1, 1] at the model's sample rate (shorter
ones are zero-padded). Inputs are read and embedded `batch_size` clips at a time, so any number fits.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vatt.data.clips import ClipReader
from vatt.data.decode import DecodedMedia, MediaError, MediaInfo
from vatt.ranges import require
from vatt.search.model import SearchModel

Item = Union[str, os.PathLike, torch.Tensor, np.ndarray]
AVERAGES = ("embeddings", "similarities")


def similarity(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Cosine similarities [Q, N] of unit queries [Q, d] with unit items [N, d], or with items of several
    views [N, V, d], whose V similarities are averaged."""
    if items.dim() == 2:
        return queries @ items.T  # [Q, N]
    return torch.einsum("qd,nvd->qnv", queries, items).mean(dim=-1)  # [Q, N]


def _as_media(item: torch.Tensor | np.ndarray, modality: str, name: str, fps: float, rate: int):
    """A tensor item as decoded media that the clip reader cuts like a file."""
    array = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
    if modality == "video":
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"{name}: a video tensor must be uint8 frames [T, H, W, 3] at {fps:g} fps, got "
                             f"{array.dtype} {list(array.shape)}")
        info = MediaInfo(path=name, start=0.0, end=len(array) / fps, has_video=True, has_audio=False, fps=fps,
                         width=array.shape[2], height=array.shape[1])
        return DecodedMedia(info, np.arange(len(array)) / fps, array, None, None)  # times [T]
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name}: a waveform must be float [S] in [-1, 1] at {rate} Hz, got {array.dtype} "
                         f"{list(array.shape)}")
    info = MediaInfo(path=name, start=0.0, end=len(array) / rate, has_video=False, has_audio=True, audio_rate=rate)
    return DecodedMedia(info, None, None, array.astype(np.float32), rate)


class _Unreadable(NamedTuple):
    """A MediaError as data: it crosses a DataLoader worker intact (the exception does not pickle)."""
    path: str
    reason: str


class _Clips(Dataset):
    """The V views of each item as [V, *sample]; a file that cannot be read gives back `_Unreadable`, which the
    caller raises as the MediaError naming the file."""

    def __init__(self, items: Sequence[Item], reader: ClipReader, modality: str):
        self.items = items
        self.reader = reader
        self.modality = modality

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor | _Unreadable:
        item = self.items[index]
        s = self.reader.settings
        try:
            if isinstance(item, (str, os.PathLike)):
                clip = self.reader.read(str(Path(item).expanduser()))
                name = str(item)
            else:
                name = f"item {index}"
                clip = self.reader.cut(_as_media(item, self.modality, name, s.fps, s.audio_rate))
        except MediaError as exc:
            return _Unreadable(exc.path, exc.reason)
        if self.modality == "audio" and not clip.audio_mask:
            return _Unreadable(name, "has no audio stream")
        views = clip.video if self.modality == "video" else clip.audio
        return views.reshape(s.views, *views.shape[-(4 if self.modality == "video" else 1):])  # [V, *sample]


def _stack_or_fail(samples: list) -> torch.Tensor | _Unreadable:
    failed = [s for s in samples if isinstance(s, _Unreadable)]
    return failed[0] if failed else torch.stack(samples)  # [B, V, *sample]


class Encoder:
    """L2-normalised embeddings of files, tensors and sentences in the model's common spaces.

    `model`: a converted model folder, a training run's directory, or a loaded `SearchModel`. `batch_size`
    counts clips per forward pass; `num_workers` DataLoader processes decode files. `fps`, `sample_rate` and
    `vocabulary` (a `Vocabulary` or a file) override what the model's config says.
    """

    def __init__(self, model: str | os.PathLike | SearchModel, device: str | torch.device = "cpu", *,
                 batch_size: int = 16, num_workers: int = 0, fps: float | None = None,
                 sample_rate: int | None = None, vocabulary=None):
        require(1, whole=True, batch_size=batch_size)
        if isinstance(model, SearchModel):
            self.model = model
        else:
            if isinstance(vocabulary, (str, os.PathLike)):
                from vatt.data.text import Vocabulary
                vocabulary = Vocabulary.load(vocabulary)
            self.model = SearchModel.load(model, device, vocabulary=vocabulary, fps=fps, audio_rate=sample_rate)
        self.batch_size = batch_size
        self.num_workers = num_workers

    @property
    def media(self):
        return self.model.media

    def video(self, items: Sequence[Item], clips: int = 4, crops: int = 1,
              average: str = "embeddings") -> dict[str, torch.Tensor]:
        """{"vt": ..., "va": ...}: [N, d] per item, or [N, V, d] per view with average="similarities"."""
        return self._embed(items, "video", clips, crops, average)

    def audio(self, items: Sequence[Item], clips: int = 4, average: str = "embeddings") -> dict[str, torch.Tensor]:
        """{"va": [N, d]} (or [N, clips, d]): sound files (or the sound of videos) and waveforms."""
        return self._embed(items, "audio", clips, 1, average)

    def text(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """{"vt": [N, d]} of sentences, tokenized as the model was trained."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a list of strings, got {texts!r:.80}")
        ids = self.model.tokenizer.encode_batch(list(texts))  # [N, W]
        parts = [self.model.embed("text", ids[i:i + self.batch_size]) for i in range(0, len(ids), self.batch_size)]
        return _concatenated(parts, self.model, "text")

    def _embed(self, items: Sequence[Item], modality: str, clips: int, crops: int,
               average: str) -> dict[str, torch.Tensor]:
        if isinstance(items, (str, os.PathLike, torch.Tensor, np.ndarray)):
            raise ValueError(f"items must be a list of files or tensors, got a single {type(items).__name__}")
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}")
        self.model.require(modality)
        settings = self.media.clip_settings(clips=clips, crops=crops, read_video=modality == "video",
                                            read_audio=modality == "audio")
        views = settings.views
        loader = DataLoader(_Clips(list(items), ClipReader(settings, train=False), modality),
                            batch_size=max(1, self.batch_size // views), num_workers=self.num_workers,
                            collate_fn=_stack_or_fail)
        parts = []
        for batch in loader:
            if isinstance(batch, _Unreadable):
                raise MediaError(batch.path, batch.reason)
            raw = self.model.embed(modality, batch.flatten(0, 1), normalise=False)  # {space: [B·V, d]}
            parts.append({space: _views_averaged(z.reshape(len(batch), views, -1), average)
                          for space, z in raw.items()})
        return _concatenated(parts, self.model, modality)


def _views_averaged(z: torch.Tensor, average: str) -> torch.Tensor:
    """Raw embeddings [B, V, d] → the normalised mean [B, d], or each view normalised [B, V, d]."""
    if average == "embeddings":
        return torch.nn.functional.normalize(z.mean(dim=1), dim=-1)
    return torch.nn.functional.normalize(z, dim=-1)


def _concatenated(parts: list[dict[str, torch.Tensor]], model: SearchModel, modality: str) -> dict[str, torch.Tensor]:
    if not parts:  # no items: empty embeddings of the right widths
        widths = model.space_widths(modality)
        return {space: torch.zeros(0, width) for space, width in widths.items()}
    return {space: torch.cat([p[space] for p in parts]) for space in parts[0]}
