"""How a raw signal is cut into patches: the one statement of the layout, for the ops, the models and the tests.

``x`` is ``[B, C, *signal]`` or, with one channel, ``[B, *signal]`` (a video ``[B, C, T, H, W]`` with
``(pt, ph, pw)``, a waveform ``[B, S]`` with ``p`` or ``(p,)``, a 2-D map such as a spectrogram ``[B, C, F, T]``
with ``(pf, pt)``); ``patch_size`` has one entry per signal axis. The grid has ``signal_i // p_i`` cells per
axis: trailing samples that fill no whole patch are ignored, as by a convolution with stride = kernel and no
padding. Patches are numbered row-major over the grid (video: time-major, then height, then width), so
``N = prod(grid)``, and flattened in ``[C, p_1, ..., p_d]`` order (a ConvNd kernel's order), giving
``P = C * prod(p)`` values.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def normalise_patch_size(patch_size: int | Sequence[int], axes: int | None = None) -> tuple[int, ...]:
    """``patch_size`` as a tuple of positive ints, one per signal axis (an int is one axis); ``axes``, when
    given, is how many signal axes there must be."""
    size = (patch_size,) if isinstance(patch_size, int) else tuple(patch_size)
    if not size or not all(isinstance(p, int) and p > 0 for p in size):
        raise ValueError(f"patch_size must be positive ints, one per signal axis, got {patch_size!r}")
    if axes is not None and len(size) != axes:
        raise ValueError(f"patch_size must be {axes} positive ints for a signal with {axes} axes, got {patch_size!r}")
    return size


def patch_size_for(x_shape: Sequence[int], patch_size: int | Sequence[int]) -> tuple[int, ...]:
    """``patch_size`` normalised, checked against an input of shape ``x_shape``: [B, C, *signal] or [B, *signal]."""
    size = normalise_patch_size(patch_size)
    if len(x_shape) not in (len(size) + 1, len(size) + 2):
        raise ValueError(f"x must be [B, C, *signal] or [B, *signal] with {len(size)} signal axes for patch_size "
                         f"{size}, got shape {tuple(x_shape)}")
    return size


def grid_shape(x_shape: Sequence[int], patch_size: Sequence[int]) -> tuple[int, ...]:
    """Whole patches along each signal axis (the last ``len(patch_size)`` axes of ``x_shape``)."""
    signal = tuple(x_shape[len(x_shape) - len(patch_size):])
    grid = tuple(s // p for s, p in zip(signal, patch_size))
    if any(g == 0 for g in grid):
        raise ValueError(f"patch_size {tuple(patch_size)} does not fit a signal of shape {signal}")
    return grid


def num_patches(x_shape: Sequence[int], patch_size: Sequence[int]) -> int:
    return math.prod(grid_shape(x_shape, patch_size))


def patch_values(x_shape: Sequence[int], patch_size: Sequence[int]) -> int:
    """P: values in one flattened patch."""
    channels = x_shape[1] if len(x_shape) == len(patch_size) + 2 else 1
    return channels * math.prod(patch_size)


def patch_view(x: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """``x`` as ``[B, *grid, C, *patch]`` without a copy (cutting the trailing samples and splitting axes only)."""
    axes = len(patch_size)
    if x.dim() == axes + 1:
        x = x.unsqueeze(1)  # [B, 1, *signal]
    batch, channels = x.shape[:2]
    grid = grid_shape(x.shape, patch_size)
    x = x[(Ellipsis, *(slice(0, g * p) for g, p in zip(grid, patch_size)))]  # [B, C, *grid·patch]
    split = [batch, channels] + [n for g, p in zip(grid, patch_size) for n in (g, p)]
    order = [0] + [2 + 2 * a for a in range(axes)] + [1] + [3 + 2 * a for a in range(axes)]
    return x.reshape(split).permute(order)  # [B, *grid, C, *patch]


def patchify(x: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """Every patch of ``x`` flattened: ``[B, N, P]``."""
    view = patch_view(x, patch_size)
    grid = view.shape[1:1 + len(patch_size)]
    return view.reshape(view.shape[0], math.prod(grid), -1)  # [B, N, P]


def unpatchify(patches: torch.Tensor, x_shape: Sequence[int], patch_size: Sequence[int]) -> torch.Tensor:
    """Inverse of `patchify`: ``[B, N, P]`` back to a tensor of ``x_shape``, zero where no patch reaches."""
    axes = len(patch_size)
    has_channels = len(x_shape) == axes + 2
    batch = x_shape[0]
    channels = x_shape[1] if has_channels else 1
    grid = grid_shape(x_shape, patch_size)
    split = [batch, *grid, channels, *patch_size]
    order = [0, axes + 1] + [n for a in range(axes) for n in (1 + a, axes + 2 + a)]
    x = patches.reshape(split).permute(order)  # [B, C, g_1, p_1, ..., g_d, p_d]
    x = x.reshape(batch, channels, *(g * p for g, p in zip(grid, patch_size)))  # [B, C, *grid·patch]
    signal = x_shape[len(x_shape) - axes:]
    # F.pad lists (before, after) pairs from the last axis backwards.
    padding = [n for g, p, s in reversed(list(zip(grid, patch_size, signal))) for n in (0, s - g * p)]
    x = F.pad(x, padding)  # [B, C, *signal]
    return x if has_channels else x.squeeze(1)
