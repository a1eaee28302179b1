"""How a raw signal is cut into patches, shared by the reference, the composites and the fake kernels.

``x`` is ``[B, C, *signal]`` or, with one channel, ``[B, *signal]`` (a waveform ``[B, S]``); ``patch_size`` has one
entry per signal axis. The grid has ``signal_i // p_i`` cells per axis (trailing samples that fill no whole
patch are ignored, as by a convolution with stride = kernel); patches are numbered row-major over the grid and
flattened in ``[C, p_1, ..., p_d]`` order (a ConvNd kernel's order), giving ``P = C * prod(p)`` values.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def normalise_patch_size(patch_size: int | Sequence[int], x_ndim: int) -> tuple[int, ...]:
    """``patch_size`` as a tuple of positive ints matching a tensor of rank ``x_ndim``."""
    size = (int(patch_size),) if isinstance(patch_size, int) else tuple(int(p) for p in patch_size)
    if not size or any(p <= 0 for p in size):
        raise ValueError(f"patch_size must be positive ints, one per signal axis, got {patch_size!r}")
    if x_ndim not in (len(size) + 1, len(size) + 2):
        raise ValueError(f"patch_size {size} has {len(size)} axes, so x must be [B, C, *signal] or [B, *signal] "
                         f"of rank {len(size) + 2} or {len(size) + 1}, got rank {x_ndim}")
    return size


def grid_shape(x_shape: Sequence[int], patch_size: Sequence[int]) -> tuple[int, ...]:
    """Whole patches along each signal axis (the last ``len(patch_size)`` axes of ``x``)."""
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


def patchify(x: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """Every patch of ``x`` flattened: ``[B, N, P]``."""
    axes = len(patch_size)
    if x.dim() == axes + 1:
        x = x.unsqueeze(1)  # [B, 1, *signal]
    batch, channels = x.shape[:2]
    grid = grid_shape(x.shape, patch_size)
    x = x[(Ellipsis, *(slice(0, g * p) for g, p in zip(grid, patch_size)))]  # [B, C, *grid·patch]
    split = [batch, channels] + [n for g, p in zip(grid, patch_size) for n in (g, p)]
    order = [0] + [2 + 2 * a for a in range(axes)] + [1] + [3 + 2 * a for a in range(axes)]
    patches = x.reshape(split).permute(order)  # [B, *grid, C, *patch]
    return patches.reshape(batch, math.prod(grid), channels * math.prod(patch_size))  # [B, N, P]


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
