"""Plain, readable definitions of what the vatt patch ops compute; the tests hold each kernel to these.

They build the full intermediate tensors the fused kernels avoid (all N patch embeddings) and take their
gradients from autograd. The loss's plain form is the one training uses without fused ops,
`vatt.losses.contrastive_rows`, and the tests hold the loss kernels to that.
"""
from __future__ import annotations

from typing import Sequence

import torch

from vatt.ops.patch_layout import patchify


def patch_embed(x: torch.Tensor, patch_size: Sequence[int], weight: torch.Tensor, bias: torch.Tensor | None = None,
                pos: torch.Tensor | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Patchify, project, add positions, then keep the tokens listed in ``keep``: ``[B, K, D]``."""
    tokens = patchify(x, patch_size) @ weight.T  # [B, N, D]
    if bias is not None:
        tokens = tokens + bias
    if pos is not None:
        tokens = tokens + pos
    return tokens if keep is None else drop_tokens(tokens, keep)


def drop_tokens(tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``tokens[b, keep[k]]`` for a shared ``keep`` [K], ``tokens[b, keep[b, k]]`` for a per-sample [B, K]."""
    if keep.dim() == 1:
        return tokens[:, keep]  # [B, K, D]
    rows = torch.arange(tokens.shape[0], device=tokens.device).unsqueeze(1)  # [B, 1]
    return tokens[rows, keep]  # [B, K, D]
