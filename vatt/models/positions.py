"""Learned, factorised position embeddings with the release's LayerNorm-then-add pattern.

One table of vectors per signal axis (video: time, height, width; waveform or text: one axis). The vector
of grid cell (i, j, k, ...) is the sum of the axes' vectors, LayerNorm-ed (eps 1e-6); the tokenizer adds it
to the patch embedding.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class FactorisedPositions(nn.Module):
    """Per-axis learned tables over a grid; `table()` gives the ``[N, D]`` LayerNorm-ed sums, row-major."""

    def __init__(self, grid: Sequence[int], dim: int, init_std: float = 0.02):
        super().__init__()
        grid = tuple(int(g) for g in grid)
        if not grid or any(g < 1 for g in grid):
            raise ValueError(f"grid must be a non-empty sequence of positive ints, got {grid!r}")
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim!r}")
        self.dim = dim
        self.axes = nn.ParameterList(nn.Parameter(torch.randn(g, dim) * init_std) for g in grid)
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(axis.shape[0] for axis in self.axes)

    @property
    def num_positions(self) -> int:
        return math.prod(self.grid)

    def table(self) -> torch.Tensor:
        """``[N, D]`` position vectors in row-major grid order (first axis slowest)."""
        total = None
        count = len(self.axes)
        for i, axis in enumerate(self.axes):
            shape = [1] * count + [self.dim]
            shape[i] = axis.shape[0]
            part = axis.view(shape)  # broadcastable over the other axes
            total = part if total is None else total + part  # [G1, ..., Gi, 1, ..., D]
        return self.norm(total.reshape(-1, self.dim))  # [N, D]

    @torch.no_grad()
    def resize(self, grid: Sequence[int]) -> None:
        """Resample each axis's table to a new length by cubic interpolation (fine-tuning at another size)."""
        grid = tuple(int(g) for g in grid)
        if len(grid) != len(self.axes) or any(g < 1 for g in grid):
            raise ValueError(f"grid must be {len(self.axes)} positive ints, got {grid!r}")
        for i, length in enumerate(grid):
            old = self.axes[i]
            if old.shape[0] == length:
                continue
            self.axes[i] = nn.Parameter(resample_cubic(old.detach(), length))


def resample_cubic(table: torch.Tensor, length: int) -> torch.Tensor:
    """``[n, D]`` → ``[length, D]`` along the first axis, cubic with half-pixel centres like image resizing."""
    as_image = table.t()[None, :, :, None].float()  # [1, D, n, 1]: bicubic along n, width 1 stays put
    resized = F.interpolate(as_image, size=(length, 1), mode="bicubic", align_corners=False)
    return resized[0, :, :, 0].t().contiguous().to(table.dtype)  # [length, D]
