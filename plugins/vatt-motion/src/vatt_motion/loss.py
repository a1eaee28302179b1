"""A bidirectional max-margin ranking loss, the classic loss of video-text embedding before NCE took over.

For a positive pair (a_i, b_i) and every other clip j of the global batch, with s the cosine similarity,

    loss_i = mean_j [ max(0, m - s(a_i, b_i) + s(a_i, b_j)) + max(0, m - s(a_i, b_i) + s(b_i, a_j)) ] / 2

so each positive must beat every negative by the margin m in both directions, and negatives that already
do contribute nothing. Clips whose b is missing (mask False) are neither anchors nor negatives. Under
torch.distributed the negatives come from every rank, gathered with gradient, and the mean is taken over
the global batch, as vatt's NCE does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vatt.engine.distributed import all_gather_with_grad, rank, world_size
from vatt.ranges import require


def max_margin_ranking(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None,
                       margin: float = 0.2) -> torch.Tensor:
    """The loss above for paired embeddings ``a`` [B, D] and ``b`` [B, D] (need not be normalised); a scalar."""
    if a.dim() != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(f"a and b must be non-empty [B, D] tensors of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    batch = a.shape[0]
    mask = torch.ones(batch, dtype=torch.bool, device=a.device) if mask is None else mask.to(a.device).bool()
    if mask.shape != (batch,):
        raise ValueError(f"mask must have shape [{batch}], got {tuple(mask.shape)}")
    dtype = torch.promote_types(a.dtype, torch.float32)
    a_local, b_local = F.normalize(a.to(dtype), dim=-1), F.normalize(b.to(dtype), dim=-1)  # [B, D]
    a_all, b_all = all_gather_with_grad(a_local), all_gather_with_grad(b_local)  # [N, D]
    mask_all = all_gather_with_grad(mask.to(dtype)) > 0.5  # [N]

    own = torch.arange(batch, device=a.device) + rank() * batch  # [B]: this rank's clips among the N
    others = torch.arange(a_all.shape[0], device=a.device)[None, :] != own[:, None]  # [B, N]
    negatives = others & mask_all[None, :]  # [B, N]
    positive = (a_local * b_local).sum(dim=-1, keepdim=True)  # [B, 1]
    a_to_b = F.relu(margin - positive + a_local @ b_all.T)  # [B, N]
    b_to_a = F.relu(margin - positive + b_local @ a_all.T)  # [B, N]
    hinge = torch.where(negatives, a_to_b + b_to_a, torch.zeros_like(a_to_b)).sum(dim=1)  # [B]
    rows = hinge / (2 * negatives.sum(dim=1).clamp(min=1))  # [B]
    rows = torch.where(mask, rows, torch.zeros_like(rows))  # [B]
    anchors = mask_all.sum().clamp(min=1).to(dtype)
    return rows.sum() * (world_size() / anchors)


class MaxMarginRankingLoss:
    """Bidirectional max-margin ranking on cosine similarity: ``loss(a [B, D], b [B, D], mask [B] = None)``."""

    vatt_example = {"margin": 0.2}

    def __init__(self, *, margin: float = 0.2):
        require(above=0, high=2, margin=margin)  # cosine similarities differ by at most 2
        self.margin = float(margin)

    def __call__(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return max_margin_ranking(a, b, mask, self.margin)

    def __repr__(self) -> str:
        return f"MaxMarginRankingLoss(margin={self.margin})"
