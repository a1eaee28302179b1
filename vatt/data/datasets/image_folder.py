"""An image folder in the ImageNet layout, `root/<split>/<class>/<image>`, for the image recipe: each image
becomes a clip by repeating it `frames` times in time (4 by default: one temporal patch), augmented like
video in training (one random resized crop, flip, colour jitter) and centre-cropped in evaluation.
"""

from __future__ import annotations

from vatt.data.datasets.base import ClipDataset, ClipEntry, index_media, require_folder, settings_from, with_clip_settings
from vatt.data.decode import IMAGE_EXTENSIONS
from vatt.registry import register

STILL_DEFAULTS = {"frames": 4, "clips": 1, "read_audio": False}


@with_clip_settings
@register("datasets", "image_folder")
class ImageFolder(ClipDataset):
    """Images under class folders with "label" (int64, sorted class folders of the train split)."""

    def __init__(self, root: str, split: str = "train", *, train_split: str = "train", **clip):
        folder = require_folder(root, "image_folder")
        if not (folder / split).is_dir():
            raise ValueError(f"image_folder: {folder / split} is not a folder")
        classes = sorted(p.name for p in (folder / train_split).iterdir() if p.is_dir())
        entries = []
        for label in classes:
            if (folder / split / label).is_dir():
                images = index_media(folder / split / label, IMAGE_EXTENSIONS)
                entries += [ClipEntry(path, labels=(label,)) for path in sorted(set(images.values()))]
        settings = settings_from({**STILL_DEFAULTS, **clip}, split_is_train=split == train_split)
        super().__init__(entries, settings, name=f"image_folder {folder / split}", class_names=classes)

    def _clip(self, entry: ClipEntry, rng, around: float | None, media):
        return self.reader.read_still(entry.path, rng)
