"""What every clip dataset shares: entries (a media file, a time range, captions, labels) → sample dicts.

Layouts (manifest, HowTo100M, Kinetics, ...) only parse their index files into `ClipEntry`s; cutting,
decoding, augmenting, tokenizing and labelling happen here, the same way for all of them. Samples follow
docs/architecture.md: "video" uint8 [3, T, H, W] (pixels; the model maps them to [-1, 1]), "audio" float
[A], "audio_mask" bool (False when the file has no sound), "text" int64 [L, W] with "text_mask" and
"caption" for captioned sets, "label" int64 (-1 when an entry has none) or "labels" float multi-hot [C] for
labelled ones. Evaluation samples carry a leading view axis when clips·crops > 1.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vatt.data.captions import Caption, candidates, random_caption_time
from vatt.data.clips import CLIP_FIELDS, ClipReader, ClipSettings
from vatt.data.decode import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
from vatt.data.sampler import SampleKey, sample_rng
from vatt.data.text import Vocabulary, WordTokenizer

log = logging.getLogger("vatt.data")


@dataclass(frozen=True)
class ClipEntry:
    """One clip source: a media file (absolute path) and optionally a time range, captions and labels."""
    path: str
    begin: float | None = None
    end: float | None = None
    captions: tuple[Caption, ...] = ()
    labels: tuple[str, ...] = ()


def with_clip_settings(cls):
    """Class decorator: the ClipSettings fields become keyword parameters of `cls.__init__`'s signature
    (its `**clip` catches them), so configs are checked against them like any other argument."""
    init = cls.__init__
    signature = inspect.signature(init)
    own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    hints = typing.get_type_hints(ClipSettings)
    taken = {p.name for p in own}
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
              for f in dataclasses.fields(ClipSettings) if f.name not in taken]
    init.__signature__ = signature.replace(parameters=own + shared)
    init.__annotations__ = {**{p.name: p.annotation for p in shared}, **typing.get_type_hints(init)}
    return cls


def settings_from(clip: dict[str, Any], *, split_is_train: bool, **defaults: Any) -> ClipSettings:
    """The ClipSettings of a dataset's `**clip` arguments; `train` defaults to whether the split trains."""
    unknown = sorted(set(clip) - set(CLIP_FIELDS))
    if unknown:
        raise TypeError(f"unexpected argument(s) {', '.join(unknown)}; clip settings are {', '.join(CLIP_FIELDS)}")
    values = {**defaults, **{k: v for k, v in clip.items() if v is not None or k not in defaults}}
    if values.get("train") is None:
        values["train"] = split_is_train
    return ClipSettings(**values)


class SampleMaker:
    """Turns clip sources into sample dicts: cut, decode and augment (ClipReader), MIL-NCE text, labels.
    The base of the map-style ClipDataset and of the streaming ShardDataset."""

    def __init__(self, settings: ClipSettings, *, name: str, class_names: Sequence[str] | None = None,
                 multi_label: bool = False, tokenizer: WordTokenizer | None = None, candidates: int = 5,
                 empty_text: bool = False):
        self.settings = settings
        self.name = name
        self.train = bool(settings.train)
        self.reader = ClipReader(settings, self.train)
        self.tokenizer = tokenizer
        self.candidates = candidates
        # AudioSet-like sets in a pre-training mix carry an empty text block so batches stack
        self.text_shape = (candidates, tokenizer.max_words if tokenizer else 16) if tokenizer or empty_text else None
        self.class_names = list(class_names) if class_names is not None else None
        self.multi_label = multi_label
        if self.class_names is not None:
            self.num_classes = len(self.class_names)
            self._class_index = {c: i for i, c in enumerate(self.class_names)}

    def check_labels(self, entries: Sequence[ClipEntry]) -> None:
        if self.class_names is None:
            return
        for entry in entries:
            missing = [label for label in entry.labels if label not in self._class_index]
            if missing:
                raise ValueError(f"{self.name}: {entry.path} has label(s) {missing} outside the class list")
            if len(entry.labels) > 1 and not self.multi_label:
                raise ValueError(f"{self.name}: {entry.path} has {len(entry.labels)} labels in a single-label set")

    @property
    def sample_keys(self) -> set[str]:
        """The keys every sample carries."""
        keys = set()
        if self.settings.read_video:
            keys.add("video")
        if self.settings.read_audio:
            keys |= {"audio", "audio_mask"}
        if self.text_shape is not None:
            keys |= {"text", "text_mask"} | ({"caption"} if self.tokenizer is not None else set())
        if self.class_names is not None:
            keys.add("labels" if self.multi_label else "label")
        return keys

    def make(self, entry: ClipEntry, rng: np.random.Generator, media=None) -> dict[str, Any]:
        """The sample of `entry`, read from its file or from an already open `media` source."""
        around = None
        if self.train and entry.captions:
            around = random_caption_time(entry.captions, entry.begin or 0.0,
                                         float("inf") if entry.end is None else entry.end, rng)
        clip = self._clip(entry, rng, around, media)
        sample: dict[str, Any] = {}
        if clip.video is not None:
            sample["video"] = clip.video
        if clip.audio is not None:
            sample["audio"] = clip.audio
            sample["audio_mask"] = torch.tensor(clip.audio_mask)
        if self.text_shape is not None:
            window = clip.windows[0] if self.train else (clip.windows[0][0], clip.windows[-1][1])
            sample.update(self._text(entry, window))
        if self.class_names is not None:
            sample.update(self._labels(entry))
        return sample

    def _clip(self, entry: ClipEntry, rng, around: float | None, media):
        if media is not None:
            return self.reader.cut(media, begin=entry.begin, end=entry.end, rng=rng, around=around)
        return self.reader.read(entry.path, begin=entry.begin, end=entry.end, rng=rng, around=around)

    def _text(self, entry: ClipEntry, window: tuple[float, float]) -> dict[str, Any]:
        text = torch.zeros(self.text_shape, dtype=torch.long)  # [L, W], pad id 0
        chosen = []
        if self.tokenizer is not None and entry.captions:
            bounds = (entry.begin if entry.begin is not None else window[0],
                      entry.end if entry.end is not None else window[1])
            chosen = candidates(entry.captions, window, self.candidates, bounds)
            text[: len(chosen)] = self.tokenizer.encode_batch([c.text for c in chosen])
        result = {"text": text, "text_mask": torch.tensor(bool(chosen))}
        if self.tokenizer is not None:
            result["caption"] = chosen[0].text if chosen else ""
        return result

    def _labels(self, entry: ClipEntry) -> dict[str, torch.Tensor]:
        ids = [self._class_index[label] for label in entry.labels]
        if self.multi_label:
            labels = torch.zeros(self.num_classes)  # [C] multi-hot
            labels[ids] = 1.0
            return {"labels": labels}
        return {"label": torch.tensor(ids[0] if ids else -1, dtype=torch.long)}


class ClipDataset(SampleMaker, Dataset):
    """Map-style dataset over `entries`; keys are indices or `SampleKey`s (see vatt.data.sampler)."""

    def __init__(self, entries: Sequence[ClipEntry], settings: ClipSettings, *, name: str, **making: Any):
        if not entries:
            raise ValueError(f"{name}: no clips found")
        super().__init__(settings, name=name, **making)
        self.entries = list(entries)
        self.check_labels(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def source(self, key: int | SampleKey) -> str:
        """The file (and time range) a key reads: for logs and error messages."""
        entry = self.entries[key.index if isinstance(key, SampleKey) else int(key)]
        if entry.begin is None and entry.end is None:
            return entry.path
        return f"{entry.path} [{entry.begin or 0:.2f}-{'end' if entry.end is None else f'{entry.end:.2f}'} s]"

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        index, rng = sample_rng(key)
        return self.make(self.entries[index], rng)


def sorted_classes(entries: Sequence[ClipEntry]) -> list[str]:
    return sorted({label for entry in entries for label in entry.labels})


MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS


def index_media(folder: str | Path, extensions: Sequence[str] = MEDIA_EXTENSIONS) -> dict[str, str]:
    """File stem (and path relative to `folder` without extension) → absolute path, for every media file
    under `folder`: layouts look files up by id however deep the downloader put them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder {str(folder)!r} does not exist")
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in extensions and path.is_file():
            found.setdefault(path.stem, str(path.resolve()))
            found.setdefault(str(path.relative_to(folder).with_suffix("")), str(path.resolve()))
    return found


SHOWN_MISSING = 5


def report_missing(name: str, missing: Sequence[str], total: int, *, index_file: str | Path | None = None,
                   skip: bool = False) -> None:
    """Entries of an index (split) file whose media file is absent: an error naming the file and the first
    of them, unless ``skip`` (a dataset's ``skip_missing``, for partial downloads): then they are left out
    with a warning. When none of the listed clips is there, the warning is given and the dataset then fails
    with "no clips found" (a wrong root, more likely than a partial download). The evaluation sets default to
    the error; the YouTube-scraped pre-training sets (HowTo100M, AudioSet), of which no complete copy can be
    downloaded any more, default to skipping."""
    if not missing:
        return
    shown = ", ".join(missing[:SHOWN_MISSING]) + (" ..." if len(missing) > SHOWN_MISSING else "")
    where = f" (index: {index_file})" if index_file is not None else ""
    if skip or len(missing) == total:
        log.warning("%s: %d of %d listed clips have no media file and are left out%s: %s", name, len(missing),
                    total, where, shown)
        return
    listed = f" listed in {index_file}" if index_file is not None else ""
    raise ValueError(f"{name}: {len(missing)} of the {total} clips{listed} have no media file: {shown}. "
                     f"Complete the download or fix the split file; or set the dataset's skip_missing: true to "
                     f"leave them out with a warning")


def require_folder(root: str | Path, name: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"{name}: root {str(root)!r} is not a folder")
    return root


def tokenizer_for(vocabulary: str | None, max_words: int, name: str) -> WordTokenizer:
    """The word tokenizer of a captioned dataset; its vocabulary file is required."""
    if vocabulary is None:
        raise ValueError(f"{name} has captions, so it needs `vocabulary`: a file made by "
                         f"`python -m vatt.data build-vocab CAPTION_FILES --out vocabulary.txt`")
    return WordTokenizer(Vocabulary.load(vocabulary), max_words=max_words)
