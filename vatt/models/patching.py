"""Patch embedding: cut a signal into non-overlapping patches, keep some of them, project, add positions.

`patch_embed` is the contract a fused kernel will later implement with exactly this signature, so its
semantics are spelled out here and nowhere else:

* ``patch_size`` has one entry per signal axis (an int means one axis) and ``x`` is ``[B, C, *signal]``,
  or ``[B, *signal]`` for a single channel: a video ``[B, C, T, H, W]`` with ``(pt, ph, pw)``, a waveform
  ``[B, S]`` with ``p`` or ``(p,)``, a 2-D map such as a spectrogram ``[B, C, F, T]`` with ``(pf, pt)``.
* The patch grid is ``G_i = dim_i // p_i`` per signal axis; trailing samples that do not fill a whole patch
  are ignored, exactly as a convolution with stride = kernel and no padding ignores them. Patches are
  numbered in row-major order over the grid (video: time-major, then height, then width), so
  ``N = prod(G)``.
* A patch is flattened in the order ``[C, p_1, p_2, ...]`` (the order of a ``ConvNd`` kernel), giving
  ``P = C * prod(p)`` values; ``weight`` is ``[D, P]`` and ``bias`` ``[D]`` (or None).
* ``pos`` is the ``[N, D]`` table added to patch n (or None). ``keep`` selects which patches come out:
  None = all N in order; a LongTensor ``[K]`` = the same K patch indices for every sample; ``[B, K]`` =
  per-sample indices. Indices must lie in ``[0, N)``; they are used in the order given.
* Result: ``out[b, k] = weight @ patch(x[b], idx[b, k]) + bias + pos[idx[b, k]]``, shape ``[B, K, D]``.

Only the kept raw patches are gathered before the one matmul; the full ``[B, N, D]`` embedding is never built.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def normalise_patch_size(patch_size: int | Sequence[int], axes: int) -> tuple[int, ...]:
    """``patch_size`` as a tuple of ``axes`` positive ints (an int is allowed for 1-D signals)."""
    size = (patch_size,) if isinstance(patch_size, int) else tuple(patch_size)
    if len(size) != axes or not all(isinstance(p, int) and p > 0 for p in size):
        raise ValueError(f"patch_size must be {axes} positive ints for a signal with {axes} axes, "
                         f"got {patch_size!r}")
    return size


def patch_grid(signal_shape: Sequence[int], patch_size: Sequence[int]) -> tuple[int, ...]:
    """Number of whole patches along each signal axis."""
    grid = tuple(int(s) // int(p) for s, p in zip(signal_shape, patch_size))
    if len(grid) != len(patch_size) or any(g == 0 for g in grid):
        raise ValueError(f"patch_size {tuple(patch_size)} does not fit a signal of shape {tuple(signal_shape)}")
    return grid


def patch_view(x: torch.Tensor, patch_size: int | Sequence[int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """A copy-free view of ``x`` as ``[B, *grid, C, *patch]`` and the grid, following the module rules."""
    size = (patch_size,) if isinstance(patch_size, int) else tuple(patch_size)
    axes = len(size)
    if x.ndim == axes + 1:
        x = x.unsqueeze(1)  # one channel: [B, 1, *signal]
    if x.ndim != axes + 2:
        raise ValueError(f"x must be [B, C, *signal] or [B, *signal] with {axes} signal axes for patch_size "
                         f"{patch_size!r}, got shape {tuple(x.shape)}")
    size = normalise_patch_size(size, axes)
    batch, channels, *signal = x.shape
    grid = patch_grid(signal, size)
    x = x[(Ellipsis, *(slice(0, g * p) for g, p in zip(grid, size)))]  # drop what no whole patch covers
    split = [batch, channels]
    for g, p in zip(grid, size):
        split += [g, p]
    x = x.view(split)  # [B, C, G1, p1, G2, p2, ...]; splitting an axis never needs a copy
    order = [0] + [2 + 2 * i for i in range(axes)] + [1] + [3 + 2 * i for i in range(axes)]
    return x.permute(order), grid  # [B, G1, G2, ..., C, p1, p2, ...]


def extract_patches(x: torch.Tensor, patch_size: int | Sequence[int]) -> torch.Tensor:
    """All patches of ``x`` flattened, ``[B, N, P]``, in the order `patch_embed` numbers them."""
    return gather_patches(x, patch_size, None)


def gather_patches(x: torch.Tensor, patch_size: int | Sequence[int], keep: torch.Tensor | None) -> torch.Tensor:
    """The raw patches selected by ``keep`` (see the module rules), ``[B, K, P]``, read straight from ``x``."""
    return _select(*patch_view(x, patch_size), keep)


def _select(view: torch.Tensor, grid: tuple[int, ...], keep: torch.Tensor | None) -> torch.Tensor:
    batch = view.shape[0]
    if keep is None:
        return view.reshape(batch, math.prod(grid), -1)  # [B, N, P]
    if keep.dtype != torch.long:
        raise ValueError(f"keep must be an int64 tensor, got dtype {keep.dtype}")
    if keep.ndim == 1:
        coords = torch.unravel_index(keep, grid)  # each [K]
        picked = view[(slice(None), *coords)]  # [B, K, C, *patch]
    elif keep.ndim == 2 and keep.shape[0] == batch:
        coords = torch.unravel_index(keep, grid)  # each [B, K]
        rows = torch.arange(batch, device=keep.device).unsqueeze(1)  # [B, 1]
        picked = view[(rows, *coords)]  # [B, K, C, *patch]
    else:
        raise ValueError(f"keep must be [K] or [B, K] with B = {batch}, got shape {tuple(keep.shape)}")
    return picked.reshape(batch, keep.shape[-1], -1)  # [B, K, P]


def patch_embed(x: torch.Tensor, patch_size: int | Sequence[int], weight: torch.Tensor,
                bias: torch.Tensor | None, pos: torch.Tensor | None, keep: torch.Tensor | None) -> torch.Tensor:
    """Embed the kept patches of ``x``: ``[B, K, D]``. The exact rules are in this module's docstring."""
    view, grid = patch_view(x, patch_size)
    patch_values = math.prod(view.shape[1 + len(grid):])  # C * prod(patch)
    if weight.ndim != 2 or weight.shape[1] != patch_values:
        raise ValueError(f"weight must be [D, {patch_values}] for patches of {patch_values} values, "
                         f"got shape {tuple(weight.shape)}")
    if pos is not None and pos.shape != (math.prod(grid), weight.shape[0]):
        raise ValueError(f"pos must be [{math.prod(grid)}, {weight.shape[0]}] for this input's patch grid "
                         f"{grid}, got shape {tuple(pos.shape)}")
    out = F.linear(_select(view, grid, keep), weight, bias)  # [B, K, D]
    if pos is None:
        return out
    return out + (pos if keep is None else pos[keep])  # [B, K, D]
