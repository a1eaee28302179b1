"""``shape_images``: the tiny generated image set, read back through vatt's own ``image_folder``."""
from __future__ import annotations

from pathlib import Path

from vatt.data.datasets.base import with_clip_settings
from vatt.data.datasets.image_folder import ImageFolder
from vatt.data.synthetic import default_cache_root
from vatt_image.shapes import ensure_split


@with_clip_settings
class ShapeImages(ImageFolder):
    """24 classes of coloured shapes written once as PNG class folders, then an ``image_folder`` over them.

    Each image becomes a clip by tiling it ``frames`` times in time (4 by default), augmented in training
    and centre-cropped to ``size`` in evaluation, like any image folder. The pictures are ``image_size``
    pixels square and cached under ``cache_dir`` (default $VATT_CACHE/shape_images or
    ~/.cache/vatt/shape_images); the train and test splits come from independent random streams.
    """

    vatt_example = {"images_per_class": 1, "image_size": 16, "size": 16}

    def __init__(self, split: str = "train", *, images_per_class: int = 16, image_size: int = 64, seed: int = 0,
                 cache_dir: str | None = None, **clip):
        cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root() / "shape_images"
        root = ensure_split(cache, split=split, images_per_class=images_per_class, image_size=image_size, seed=seed)
        super().__init__(str(root), split, train_split=split, **clip)
