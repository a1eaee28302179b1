"""The tiny generated image set: pictures of the right class, written once, read as tiled clips."""
import numpy as np
import pytest
import torch

from vatt_image import CLASS_NAMES, ShapeImages, render
from vatt_image.shapes import COLOURS, SHAPES, ensure_split


def test_each_class_is_a_colour_and_a_shape():
    assert len(CLASS_NAMES) == len(COLOURS) * len(SHAPES) == 24
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASS_NAMES):
        picture = render(rng, label, 64).astype(float) / 255  # [64, 64, 3]
        colour = np.array(COLOURS[name.split("_")[0]])
        close = np.abs(picture - colour).max(axis=-1) < 0.2  # pixels of the object's colour
        assert 0.02 < close.mean() < 0.5, name  # one object, neither missing nor filling the picture


def test_shapes_differ_in_outline():
    masks = {}
    for label in range(len(SHAPES)):  # the first colour in every shape, same random placement
        picture = render(np.random.default_rng(1), label, 64).astype(float) / 255
        masks[SHAPES[label]] = np.abs(picture - np.array(COLOURS["red"])).max(axis=-1) < 0.2
    areas = {shape: mask.sum() for shape, mask in masks.items()}
    # in units of the radius squared: circle π, square 1.7², cross 2·1.4 − 0.7², triangle 2
    assert areas["circle"] > areas["square"] > areas["cross"] > areas["triangle"]


def test_a_split_is_written_once_and_rewritten_when_damaged(tmp_path):
    args = {"split": "train", "images_per_class": 2, "image_size": 16, "seed": 0}
    folder = ensure_split(tmp_path, **args)
    pictures = sorted((folder / "train").rglob("*.png"))
    assert len(pictures) == 48 and sorted(p.name for p in (folder / "train").iterdir()) == sorted(CLASS_NAMES)
    stamp = pictures[0].stat().st_mtime_ns
    assert ensure_split(tmp_path, **args) == folder and pictures[0].stat().st_mtime_ns == stamp
    (folder / "params.json").write_text("{broken")
    assert ensure_split(tmp_path, **args) == folder
    assert len(list((folder / "train").rglob("*.png"))) == 48


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="split"):
        ensure_split(tmp_path, split="val", images_per_class=1, image_size=16, seed=0)
    with pytest.raises(ValueError, match="image_size"):
        ensure_split(tmp_path, split="train", images_per_class=1, image_size=4, seed=0)


def test_samples_are_images_tiled_in_time_with_their_label(tmp_path):
    images = ShapeImages("test", images_per_class=2, image_size=32, size=32, cache_dir=str(tmp_path))
    assert len(images) == 48 and images.num_classes == 24 and images.class_names == sorted(CLASS_NAMES)
    sample = images[5]
    video = sample["video"]  # [3, 4, 32, 32]: the image repeated 4 times in time
    assert video.shape == (3, 4, 32, 32) and video.dtype == torch.uint8  # pixels, as vatt datasets give them
    assert all(torch.equal(video[:, 0], video[:, t]) for t in range(4))
    assert 0 <= int(sample["label"]) < 24
    assert images.class_names[int(sample["label"])] in images.source(5)  # its folder names its class
