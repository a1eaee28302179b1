"""Plain, readable definitions of what every vatt op computes; the tests hold each kernel to these.

They build the full intermediate tensors the fused kernels avoid (all N patch embeddings, the B×G·L
similarity matrices) and take their gradients from autograd.
"""
from __future__ import annotations

from typing import Sequence

import torch

from vatt.ops.patch_layout import patchify

MASKED_LOGIT = -1e9


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


def contrastive_rows(v_local: torch.Tensor, t_local: torch.Tensor, v_all: torch.Tensor, t_all: torch.Tensor,
                     mask_local: torch.Tensor, mask_all: torch.Tensor, temperature: float) -> torch.Tensor:
    """MIL-NCE loss of each local clip against the global batch, ``[B]``; 0 for clips without text.

    v_local [B, D] and t_local [B, L, D] are this process's L2-normalised embeddings, v_all [G, D] and
    t_all [G, L, D] the global batch's; mask_local [B] and mask_all [G] say which clips have text. For clip i:
    loss_i = logsumexp({s(v_i, t_jl)} ∪ {s(v_j, t_il)} over all j, l) − logsumexp_l s(v_i, t_il), with
    s = dot / τ and every similarity that involves the text of a clip without text set to -1e9.
    """
    batch, candidates, dim = t_local.shape
    clips = v_all.shape[0]
    masked = torch.tensor(MASKED_LOGIT, dtype=v_local.dtype, device=v_local.device)
    video_to_text = v_local @ t_all.reshape(clips * candidates, dim).T / temperature  # [B, G·L]
    video_to_text = torch.where(mask_all.repeat_interleave(candidates), video_to_text, masked)
    text_to_video = (t_local.reshape(batch * candidates, dim) @ v_all.T).reshape(batch, candidates * clips)
    text_to_video = torch.where(mask_local[:, None], text_to_video / temperature, masked)  # [B, L·G]
    positives = torch.einsum("bd,bld->bl", v_local, t_local) / temperature  # [B, L]
    denominator = torch.logsumexp(torch.cat([video_to_text, text_to_video], dim=1), dim=1)  # [B]
    loss = denominator - torch.logsumexp(positives, dim=1)  # [B]
    return torch.where(mask_local, loss, torch.zeros_like(loss))
