"""Learned, factorised position embeddings with the release's LayerNorm-then-add pattern.

One table of vectors per signal axis (video: time, height, width; waveform or text: one axis). The vector
of grid cell (i, j, k, ...) is the sum of the axes' vectors, LayerNorm-ed (eps 1e-6); the tokenizer adds it
to the patch embedding. When a grid axis changes length (fine-tuning at another crop, a checkpoint with other
buckets), its table is resized with the release's polyharmonic spline (`resize_table`, README §5).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn


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
        """Resize each axis's table to a new length with `resize_table` (fine-tuning at another size)."""
        grid = tuple(int(g) for g in grid)
        if len(grid) != len(self.axes) or any(g < 1 for g in grid):
            raise ValueError(f"grid must be {len(self.axes)} positive ints, got {grid!r}")
        for i, length in enumerate(grid):
            old = self.axes[i]
            if old.shape[0] == length:
                continue
            self.axes[i] = nn.Parameter(resize_table(old.detach(), length))


# tensorflow-addons' floor on squared distances before the radial basis is applied (its EPSILON).
_MIN_SQUARED_DISTANCE = 1e-10


def resize_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """``[B, D]`` → ``[length, D]``: the release's resize of a per-axis position table (README §5).

    Each of the D columns is fitted independently with a polyharmonic spline of order 3 and no regularisation
    (tensorflow-addons ``interpolate_spline(order=3)``): nodes c_i = i/B, queries q_j = j/length (fractions of
    the table length, not corner-aligned: for length > B the last queries lie beyond the last node and the
    spline extrapolates),

        f(x) = Σ_i w_i φ(|x − c_i|) + v_0 x + v_1,   φ(r) = max(r², 1e-10)^1.5  (= r³),

    with [[A, P], [Pᵀ, 0]] [w; v] = [E; 0], A_ij = φ(|c_i − c_j|), P rows [c_i, 1], E the table. The spline
    passes through the table rows at the nodes; with B = 2 it is linear inter/extrapolation. It is computed
    in float64 (the release's float32 solve is ill-conditioned: ~1e-1 relative error at 50 nodes) and
    returned in the table's dtype; gradients flow through it.

    ``length == B`` returns ``table`` itself. ``B == 1``: the system is singular (P's first column is c_0 = 0,
    so the slope v_0 is undetermined and its row and column are zero), and TF's solve has no answer there.
    Its minimum-norm solution (w = 0, v_0 = 0, v_1 = the row) is the constant table, the natural limit, which
    is what is returned.
    """
    if not isinstance(table, torch.Tensor) or table.dim() != 2 or table.shape[0] < 1:
        shape = tuple(table.shape) if isinstance(table, torch.Tensor) else type(table).__name__
        raise ValueError(f"table must be a [B, D] tensor with B >= 1, got {shape}")
    length = int(length)
    if length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    rows = table.shape[0]
    if length == rows:
        return table
    if rows == 1:
        return table.expand(length, -1).clone()  # the minimum-norm solution of the singular system: a constant

    values = table.to(torch.float64)  # [B, D]
    options = {"dtype": torch.float64, "device": table.device}
    nodes = torch.arange(rows, **options) / rows  # [B]
    queries = torch.arange(length, **options) / length  # [n]

    def phi(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # [len(a), len(b)]
        return ((a[:, None] - b[None, :]) ** 2).clamp(min=_MIN_SQUARED_DISTANCE) ** 1.5

    linear = torch.stack([nodes, torch.ones_like(nodes)], dim=1)  # P: [B, 2]
    system = torch.zeros(rows + 2, rows + 2, **options)  # [[A, P], [Pᵀ, 0]]
    system[:rows, :rows] = phi(nodes, nodes)
    system[:rows, rows:] = linear
    system[rows:, :rows] = linear.T
    rhs = torch.cat([values, values.new_zeros(2, values.shape[1])])  # [E; 0]: [B + 2, D]
    solution = torch.linalg.solve(system, rhs)  # [B + 2, D]
    weights, slope_offset = solution[:rows], solution[rows:]  # w [B, D], v [2, D]
    query_linear = torch.stack([queries, torch.ones_like(queries)], dim=1)  # [n, 2]
    resized = phi(queries, nodes) @ weights + query_linear @ slope_offset  # [n, D]
    return resized.to(table.dtype)
