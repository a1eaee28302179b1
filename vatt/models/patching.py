"""The patch embedding in plain PyTorch: what `vatt.ops.patch_embed` computes, with autograd from torch.

The patch tokenizers use it when ``fused_ops`` is off. It takes the same arguments and checks them the same way
(`vatt.ops.functional.check_patch_embed`); how a signal is cut into patches is `vatt.ops.patch_layout`. Only
the kept raw patches are copied, indexed straight out of a strided view of ``x``, before the one matmul: the
full ``[B, N, D]`` embedding is never built.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from vatt.ops.functional import check_patch_embed
from vatt.ops.patch_layout import patch_view


def patch_embed(x: torch.Tensor, patch_size: int | Sequence[int], weight: torch.Tensor,
                bias: torch.Tensor | None, pos: torch.Tensor | None, keep: torch.Tensor | None) -> torch.Tensor:
    """Embed the kept patches of ``x``: ``[B, K, D]``, as `vatt.ops.patch_embed` defines it."""
    size, keep = check_patch_embed(x, patch_size, weight, bias, pos, keep)
    out = F.linear(_kept_patches(patch_view(x, size), len(size), keep), weight, bias)  # [B, K, D]
    if pos is None:
        return out
    return out + (pos if keep is None else pos[keep])  # [B, K, D]


def _kept_patches(view: torch.Tensor, axes: int, keep: torch.Tensor | None) -> torch.Tensor:
    """The patches listed in ``keep`` of ``view`` [B, *grid, C, *patch], flattened: ``[B, K, P]``."""
    batch, grid = view.shape[0], tuple(view.shape[1:1 + axes])
    if keep is None:
        return view.reshape(batch, math.prod(grid), -1)  # [B, N, P]
    coords = torch.unravel_index(keep, grid)  # each [K] or [B, K]
    if keep.dim() == 1:
        picked = view[(slice(None), *coords)]  # [B, K, C, *patch]
    else:
        rows = torch.arange(batch, device=keep.device).unsqueeze(1)  # [B, 1]
        picked = view[(rows, *coords)]  # [B, K, C, *patch]
    return picked.reshape(batch, keep.shape[-1], -1)  # [B, K, P]
