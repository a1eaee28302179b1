"""Clip augmentation and evaluation views as torch ops (no torchvision).

Frames come in as decoded, uint8 [T, H, W, 3] and stay uint8 from end to end: through cropping and resizing
(torch's uint8 antialiased resize is several times faster than the float one), through the colour jitter
(computed in float, rounded back to pixels) and out of the dataset as uint8 [3, T, h, w]. The model maps
uint8 pixels to its [-1, 1] on the device (`vatt.models.multimodal`), so a clip crosses the DataLoader's
shared memory and the host-to-device copy at a quarter of its float32 size. Training takes ONE random
resized crop for the whole clip (so motion is not distorted), an optional horizontal flip and a colour
jitter, all drawn from a numpy Generator so that a sample is a pure function of its seed. Evaluation
resizes the short side and takes a centre crop or three crops along the long side.

The colour jitter has the release's strengths (brightness ±32/255, saturation ±0.4, hue ±0.2, contrast
±0.4, in that order) but each step is a linear colour map: saturation blends with the luma, hue rotates
around the grey axis (a third of a turn takes red to green, as in HSV), contrast blends with each frame's
per-channel mean. Their composition is one 3×3 matrix and an offset per frame, applied in a single pass;
the HSV round trip of tf.image costs ~20 passes over the clip. The release clips the result to [0, 1]; here
it saturates to [0, 255] and is rounded to the nearest grey level, the resolution the decoded frames had.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

LUMA = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)


def frames_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [T, H, W, 3] → a uint8 [T, 3, H, W] view (channels-last memory, no copy)."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    return frames.permute(0, 3, 1, 2)


def resize(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of uint8 [T, 3, H, W]; antialiased when shrinking. Returns a contiguous tensor."""
    if tuple(video.shape[-2:]) != (height, width):
        shrinking = height < video.shape[-2] or width < video.shape[-1]
        video = F.interpolate(video, size=(height, width), mode="bilinear", align_corners=False,
                              antialias=shrinking)
    return video.contiguous()


def random_crop_box(height: int, width: int, rng: np.random.Generator, area: tuple[float, float] = (0.08, 1.0),
                    aspect: tuple[float, float] = (0.5, 2.0), attempts: int = 10) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop covering a random share of the frame's area with a random aspect ratio
    (log-uniform); after `attempts` misses, the largest centred crop whose aspect lies in range."""
    frame_area = height * width
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    for _ in range(attempts):
        target = frame_area * rng.uniform(*area)
        ratio = math.exp(rng.uniform(*log_aspect))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    ratio = min(max(width / height, aspect[0]), aspect[1])
    h, w = (height, min(width, round(height * ratio))) if width / height >= ratio else (round(width / ratio), width)
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(frames: np.ndarray, size: int, rng: np.random.Generator, area=(0.08, 1.0),
                        aspect=(0.5, 2.0)) -> torch.Tensor:
    """One random crop for all frames, resized to size × size: uint8 [T, H, W, 3] → uint8 [T, 3, S, S]."""
    top, left, h, w = random_crop_box(frames.shape[1], frames.shape[2], rng, area, aspect)
    return resize(frames_tensor(frames)[:, :, top : top + h, left : left + w], size, size)


def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [T, 3, H, W] resized so that min(H, W) == size, keeping the aspect ratio."""
    height, width = video.shape[-2:]
    scale = size / min(height, width)
    return resize(video, max(size, round(height * scale)), max(size, round(width * scale)))


def spatial_views(frames: np.ndarray, size: int, crops: int) -> torch.Tensor:
    """Evaluation views: short side resized to `size`, then the centre crop (crops=1) or three crops spread
    along the long side (crops=3). uint8 [T, H, W, 3] → uint8 [crops, T, 3, S, S]."""
    if crops not in (1, 3):
        raise ValueError(f"crops must be 1 or 3, got {crops}")
    video = resize_short_side(frames_tensor(frames), size)
    height, width = video.shape[-2:]
    spare_h, spare_w = height - size, width - size
    offsets = (0.5,) if crops == 1 else (0.0, 0.5, 1.0)
    views = []
    for offset in offsets:
        top = round(spare_h * offset) if spare_h >= spare_w else spare_h // 2
        left = round(spare_w * offset) if spare_w > spare_h else spare_w // 2
        views.append(video[:, :, top : top + size, left : left + size])
    return torch.stack(views)


def saturation_matrix(factor: float) -> torch.Tensor:
    """3×3 map scaling the distance of each colour from its luma by `factor`."""
    return factor * torch.eye(3, dtype=torch.float64) + (1 - factor) * LUMA.expand(3, 3)


def hue_matrix(turn: float) -> torch.Tensor:
    """3×3 rotation around the grey axis by `turn` of a full circle, red → yellow → green for turn > 0."""
    angle = 2 * math.pi * turn
    axis = torch.full((3,), 1 / math.sqrt(3), dtype=torch.float64)
    cross = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]],
                         dtype=torch.float64)
    return (math.cos(angle) * torch.eye(3, dtype=torch.float64) + math.sin(angle) * cross
            + (1 - math.cos(angle)) * torch.outer(axis, axis))


PLANE_VALUES = 2**18  # floats of the scratch plane (1 MiB): stays in cache, reused for every block of frames


def _apply_colour_map(video: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """out[c, t] = Σ_d matrix[c, d]·video[t, d] + offset[t, c], saturated to [0, 255] and rounded: uint8
    [T, 3, H, W] → uint8 [3, T, H, W], block of frames by block through one small float plane."""
    frames, height, width = video.shape[0], video.shape[-2], video.shape[-1]
    out = torch.empty((3, frames, height, width), dtype=torch.uint8)
    block = max(1, PLANE_VALUES // (height * width))
    scratch = torch.empty((block, height, width))
    weights = matrix.tolist()
    offset = offset + 0.5  # then the truncating cast to uint8 rounds to the nearest value
    for first in range(0, frames, block):
        pixels = video[first : first + block]  # [b, 3, H, W]
        plane = scratch[: len(pixels)]
        for c in range(3):
            torch.add(offset[first : first + block, c].view(-1, 1, 1), pixels[:, 0], alpha=weights[c][0], out=plane)
            plane.add_(pixels[:, 1], alpha=weights[c][1])  # reads uint8, accumulates in float
            plane.add_(pixels[:, 2], alpha=weights[c][2])
            out[c, first : first + block].copy_(plane.clamp_(0.0, 255.0))
    return out


def color_jitter(video: torch.Tensor, rng: np.random.Generator, *, brightness: float = 32 / 255,
                 saturation: float = 0.4, hue: float = 0.2, contrast: float = 0.4) -> torch.Tensor:
    """Jitter a uint8 clip [T, 3, H, W] with one draw for the whole clip; returns uint8 [3, T, H, W]. A zero
    strength leaves its step out (and its draw)."""
    delta = rng.uniform(-brightness, brightness) if brightness else 0.0
    mix = torch.eye(3, dtype=torch.float64)
    if saturation:
        mix = saturation_matrix(rng.uniform(1 - saturation, 1 + saturation)) @ mix
    if hue:
        mix = hue_matrix(rng.uniform(-hue, hue)) @ mix
    spread = rng.uniform(1 - contrast, 1 + contrast) if contrast else 1.0
    # On x in [0, 1]: y = spread·mix·(x + delta) + (1 - spread)·mean(mix·(x + delta)); grey stays grey under
    # mix, so mix·delta = delta. In pixels (255·x): 255·y = spread·mix·pixel + offset.
    frames, pixels = video.shape[0], video.shape[-2] * video.shape[-1]
    # numpy's integer sum of flat uint8 rows is ~8x faster than torch's sum with a dtype cast
    sums = video.contiguous().view(frames * 3, pixels).numpy().sum(1, dtype=np.uint32 if pixels < 2**24 else np.uint64)
    mean = torch.from_numpy(sums.astype(np.float64)).view(frames, 3) / (255 * pixels)  # [T, 3] in [0, 1]
    matrix = spread * mix
    offset = 255 * (delta + (1 - spread) * mean @ mix.T)  # [T, 3]
    return _apply_colour_map(video, matrix, offset.float())


def to_clip_layout(video: torch.Tensor) -> torch.Tensor:
    """uint8 [T, 3, H, W] → the datasets' uint8 [3, T, H, W] (contiguous)."""
    return video.transpose(0, 1).contiguous()


def add_audio_noise(audio: torch.Tensor, rng: np.random.Generator, scale: float = 0.01) -> torch.Tensor:
    """Gaussian noise with std `scale`·max|x|, as the release adds to pre-training waveforms."""
    peak = float(audio.abs().max()) if audio.numel() else 0.0
    if not scale or peak == 0.0:
        return audio
    noise = torch.from_numpy(rng.standard_normal(audio.shape[-1], dtype=np.float32))
    return (audio + scale * peak * noise).clamp(-1, 1)
