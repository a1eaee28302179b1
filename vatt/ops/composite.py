"""Pure-PyTorch kernels of the vatt ops (forward and backward), for XLA and as the fallback everywhere else.

They are written only with ops that XLA lowers and with static shapes: no boolean indexing, no nonzero(),
no .item(); masks become ``torch.where``. Products with a transposed chunk use F.linear: torch_xla 2.9 computes
``k[a:b].T`` wrongly for a > 0 inside a kernel registered for the XLA key (below functionalization). The
contrastive loss is computed over column chunks with a running log-sum-exp, like the C++ kernel, so the full
similarity matrix is not needed at once; the patch embedding gathers the kept patches before projecting them.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from vatt.ops.functional import MASKED_LOGIT
from vatt.ops.patch_layout import num_patches, patchify, unpatchify


def _gather_rows(values: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Rows ``keep`` of ``values`` [B, N, E] along N: [B, K, E]."""
    if keep is None:
        return values
    if keep.dim() == 1:
        return values.index_select(1, keep)
    return values.gather(1, keep.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


def _scatter_rows(rows: torch.Tensor, keep: torch.Tensor | None, count: int) -> torch.Tensor:
    """Adjoint of `_gather_rows`: rows [B, K, E] summed into a zero [B, count, E] at their indices."""
    if keep is None:
        return rows
    zeros = rows.new_zeros(rows.shape[0], count, rows.shape[-1])
    if keep.dim() == 1:
        return zeros.index_add(1, keep, rows)
    return zeros.scatter_add(1, keep.unsqueeze(-1).expand_as(rows), rows)


def patch_embed(x: torch.Tensor, patch_size: Sequence[int], weight: torch.Tensor, bias: torch.Tensor | None,
                pos: torch.Tensor | None, keep: torch.Tensor | None) -> torch.Tensor:
    kept = _gather_rows(patchify(x, patch_size), keep)  # [B, K, P]
    out = kept @ weight.T  # [B, K, D]
    if bias is not None:
        out = out + bias
    if pos is not None:
        out = out + (pos if keep is None else pos.index_select(0, keep.reshape(-1)).view(*keep.shape, -1))
    return out


def patch_embed_backward(grad: torch.Tensor, x: torch.Tensor, patch_size: Sequence[int], weight: torch.Tensor,
                         keep: torch.Tensor | None, output_mask: Sequence[bool]):
    batch, kept, dim = grad.shape
    grad_rows = grad.reshape(batch * kept, dim)  # [B*K, D]
    grad_x = grad_weight = grad_bias = grad_pos = None
    if output_mask[0]:
        patch_grads = _scatter_rows(grad @ weight, keep, num_patches(x.shape, patch_size))  # [B, N, P]
        grad_x = unpatchify(patch_grads, x.shape, patch_size)
    if output_mask[1]:
        patches = _gather_rows(patchify(x, patch_size), keep)  # [B, K, P]
        grad_weight = grad_rows.T @ patches.reshape(batch * kept, -1)  # [D, P]
    if output_mask[2]:
        grad_bias = grad.sum((0, 1))  # [D]
    if output_mask[3]:
        if keep is None:
            grad_pos = grad.sum(0)  # [N, D]
        else:
            per_slot = grad.sum(0) if keep.dim() == 1 else grad_rows  # [K, D] or [B*K, D]
            zeros = grad.new_zeros(num_patches(x.shape, patch_size), dim)
            grad_pos = zeros.index_add(0, keep.reshape(-1), per_slot)  # [N, D]
    return grad_x, grad_weight, grad_bias, grad_pos


def drop_tokens(tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return _gather_rows(tokens, keep)


def drop_tokens_backward(grad: torch.Tensor, keep: torch.Tensor, num_tokens: int) -> torch.Tensor:
    return _scatter_rows(grad, keep, num_tokens)


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 stays float64; lower precisions are computed in float32, where exp(1/τ-scaled logits) fits."""
    promoted = tensors[0].dtype
    for tensor in tensors[1:]:
        promoted = torch.promote_types(promoted, tensor.dtype)
    return torch.float64 if promoted == torch.float64 else torch.float32


def _logaddexp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(exp(a) + exp(b)) for finite a, b, from elementwise ops every backend has."""
    high = torch.maximum(a, b)
    return high + torch.log1p(torch.exp(-(a - b).abs()))


def _chunked_row_logsumexp(q: torch.Tensor, k: torch.Tensor, column_ok: torch.Tensor | None,
                           chunk: int) -> torch.Tensor:
    """Log-sum-exp of each row of q @ kᵀ [M, N], masked columns at MASKED_LOGIT, one column chunk at a time: [M]."""
    lse = None
    for first in range(0, k.shape[0], chunk):
        scores = F.linear(q, k[first:first + chunk])  # q kᵀ: [M, c]
        if column_ok is not None:
            scores = torch.where(column_ok[first:first + chunk], scores, MASKED_LOGIT)
        chunk_lse = torch.logsumexp(scores, dim=1)  # [M]
        lse = chunk_lse if lse is None else _logaddexp(lse, chunk_lse)
    return lse


def _chunked_softmax_grads(q: torch.Tensor, k: torch.Tensor, column_ok: torch.Tensor | None, lse: torch.Tensor,
                           coef: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """With P = coef · exp(q kᵀ − lse) per row (0 on masked columns): (P k [M, D], Pᵀ q [N, D])."""
    grad_q = torch.zeros_like(q)
    grad_k = []
    for first in range(0, k.shape[0], chunk):
        k_chunk = k[first:first + chunk]  # [c, D]
        weights = torch.exp(F.linear(q, k_chunk) - lse[:, None]) * coef[:, None]  # [M, c]
        if column_ok is not None:
            weights = torch.where(column_ok[first:first + chunk], weights, 0.0)
        grad_q = grad_q + weights @ k_chunk
        grad_k.append(weights.T @ q)
    return grad_q, torch.cat(grad_k)


class _Problem:
    """The loss inputs in the compute dtype, queries pre-scaled by 1/τ."""

    def __init__(self, v_local, t_local, v_all, t_all, mask_all, temperature):
        self.dtype = _compute_dtype(v_local, t_local, v_all, t_all)
        self.batch, self.candidates, self.dim = t_local.shape
        self.clips = v_all.shape[0]
        self.scale = 1.0 / temperature
        self.video = v_local.to(self.dtype)  # [B, D]
        self.video_scaled = self.video * self.scale  # [B, D]
        self.text_scaled = t_local.to(self.dtype) * self.scale  # [B, L, D]
        self.text_rows = self.text_scaled.reshape(self.batch * self.candidates, self.dim)  # [B·L, D]
        self.video_all = v_all.to(self.dtype)  # [G, D]
        self.text_columns = t_all.to(self.dtype).reshape(self.clips * self.candidates, self.dim)  # [G·L, D]
        self.column_ok = self.per_text(mask_all)  # [G·L]

    def per_text(self, per_clip: torch.Tensor) -> torch.Tensor:
        """Per-clip values repeated for each of the clip's L candidate texts: [n] -> [n·L]."""
        return per_clip[:, None].expand(per_clip.shape[0], self.candidates).reshape(-1)

    def positive_logits(self) -> torch.Tensor:
        return (self.text_scaled * self.video[:, None]).sum(-1)  # [B, L]


def contrastive_rows(v_local, t_local, v_all, t_all, mask_local, mask_all, temperature: float, tile_size: int):
    p = _Problem(v_local, t_local, v_all, t_all, mask_all, temperature)
    video_to_text = _chunked_row_logsumexp(p.video_scaled, p.text_columns, p.column_ok, tile_size)  # [B]
    text_to_video = _chunked_row_logsumexp(p.text_rows, p.video_all, None, tile_size)  # [B·L]
    text_to_video = torch.logsumexp(text_to_video.view(p.batch, p.candidates), dim=1)  # [B]
    denominator = _logaddexp(video_to_text, text_to_video)  # [B]
    loss = denominator - torch.logsumexp(p.positive_logits(), dim=1)  # [B]
    return torch.where(mask_local, loss, 0.0), torch.where(mask_local, denominator, 0.0)


def contrastive_rows_backward(grad_loss, row_lse, v_local, t_local, v_all, t_all, mask_local, mask_all,
                              temperature: float, tile_size: int):
    p = _Problem(v_local, t_local, v_all, t_all, mask_all, temperature)
    coef = torch.where(mask_local, grad_loss.to(p.dtype), 0.0)  # [B]
    # Rows without text get lse = +inf, so exp(s - lse) = 0 there instead of overflowing.
    lse = torch.where(mask_local, row_lse.to(p.dtype), float("inf"))  # [B]

    grad_video, grad_text_columns = _chunked_softmax_grads(
        p.video_scaled, p.text_columns, p.column_ok, lse, coef, tile_size)  # [B, D], [G·L, D]
    grad_text, grad_video_all = _chunked_softmax_grads(
        p.text_rows, p.video_all, None, p.per_text(lse), p.per_text(coef), tile_size)  # [B·L, D], [G, D]
    # Queries were pre-scaled by 1/τ, so d s / d query = key / τ; the keys' gradients already carry it.
    grad_video = grad_video * p.scale
    grad_text = grad_text.view(p.batch, p.candidates, p.dim) * p.scale  # [B, L, D]

    # Positive terms enter with a minus sign: d loss_i / d s_il = −coef_i · softmax_l(s_i·).
    weights = torch.softmax(p.positive_logits(), dim=1) * coef[:, None]  # [B, L]
    grad_video = grad_video - (weights[..., None] * p.text_scaled).sum(1)
    grad_text = grad_text - weights[..., None] * p.video_scaled[:, None]
    return (grad_video.to(v_local.dtype), grad_text.to(t_local.dtype), grad_video_all.to(v_all.dtype),
            grad_text_columns.view(p.clips, p.candidates, p.dim).to(t_all.dtype))
