"""A tiny generated image set in the ImageNet layout: one coloured shape per picture, 24 classes.

Each PNG shows one of 4 shapes in one of 6 colours (the class is the pair) at a random size and place on a
textured, noisy background with a random tint; these are the objects the quickstart's synthetic clips show
moving, so a tower pre-trained on those clips has features to transfer. A split is written once, as
``<root>/<key>/<split>/<colour>_<shape>/<n>.png`` (the key hashes the arguments), into a temporary folder
that is renamed into place when complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from vatt.ranges import require

COLOURS = {  # name -> RGB in [0, 1]
    "red": (0.90, 0.10, 0.10), "green": (0.10, 0.80, 0.20), "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.90, 0.10), "purple": (0.60, 0.15, 0.85), "white": (0.95, 0.95, 0.95),
}
SHAPES = ("square", "circle", "triangle", "cross")
CLASS_NAMES = tuple(f"{colour}_{shape}" for colour in COLOURS for shape in SHAPES)
SPLIT_STREAMS = {"train": 0, "test": 1}
PARAMS_FILE = "params.json"
VERSION = 2  # part of the key: bump it when the pictures change


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Pixels inside ``shape``, given offsets from its centre in units of its radius (y pointing down)."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "square":
        return np.maximum(ax, ay) <= 0.85
    if shape == "circle":
        return dx ** 2 + dy ** 2 <= 1.0
    if shape == "triangle":  # apex up
        return (ay <= 1.0) & (ax <= (dy + 1.0) / 2)
    if shape == "cross":
        return ((ax <= 0.35) & (ay <= 1.0)) | ((ay <= 0.35) & (ax <= 1.0))
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


def render(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """The picture of class ``label``: uint8 [size, size, 3]."""
    colour, shape = divmod(label, len(SHAPES))
    radius = size * rng.uniform(0.22, 0.32)
    centre_x, centre_y = rng.uniform(radius, size - radius, 2)
    pixel = np.arange(size) + 0.5
    dx = (pixel[None, :] - centre_x) / radius  # [1, W]
    dy = (pixel[:, None] - centre_y) / radius  # [H, 1]
    inside = np.broadcast_to(shape_mask(SHAPES[shape], dx, dy), (size, size))  # [H, W]
    rgb = np.clip(np.array(list(COLOURS.values())[colour]) + rng.uniform(-0.06, 0.06, 3), 0, 1)  # [3]
    tint = rng.uniform(0.2, 0.45) + rng.uniform(-0.05, 0.05, 3)  # [3]
    background = tint + 0.08 * rng.standard_normal((size, size, 3))  # [H, W, 3]
    picture = np.where(inside[..., None], rgb, background) + 0.04 * rng.standard_normal((size, size, 3))
    return np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8)


def write_split(directory: Path, *, split: str, images_per_class: int, image_size: int, seed: int) -> None:
    """Every picture of one split, the same ones for the same arguments."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_STREAMS[split], VERSION]))
    for label, name in enumerate(CLASS_NAMES):
        folder = directory / split / name
        folder.mkdir(parents=True)
        for n in range(images_per_class):
            Image.fromarray(render(rng, label, image_size)).save(folder / f"{n:04d}.png")


def ensure_split(root: Path, *, split: str, images_per_class: int, image_size: int, seed: int) -> Path:
    """The folder whose ``split`` subfolder holds the pictures these arguments describe; written if missing."""
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {sorted(SPLIT_STREAMS)}, got {split!r}")
    require(1, whole=True, images_per_class=images_per_class)
    require(8, whole=True, image_size=image_size)
    require(0, whole=True, seed=seed)
    params = {"version": VERSION, "split": split, "images_per_class": images_per_class, "image_size": image_size,
              "seed": seed}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    directory = root / key
    try:
        if json.loads((directory / PARAMS_FILE).read_text()) == params:
            return directory
    except (OSError, ValueError):
        pass  # missing or damaged: write it
    print(f"vatt-image: generating {images_per_class * len(CLASS_NAMES)} {split} images into {directory}",
          file=sys.stderr, flush=True)
    building = root / f"{key}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    try:
        write_split(building, split=split, images_per_class=images_per_class, image_size=image_size, seed=seed)
        (building / PARAMS_FILE).write_text(json.dumps(params, sort_keys=True))
        shutil.rmtree(directory, ignore_errors=True)  # a damaged earlier attempt
        os.replace(building, directory)
    except OSError:
        if not (directory / PARAMS_FILE).is_file():  # not a lost race with another process: a real failure
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return directory
