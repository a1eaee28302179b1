"""Fake (meta) kernels: output shapes and dtypes of the vatt ops, so torch.compile and torch.export can trace them."""
from __future__ import annotations

import math

import torch

from vatt.ops.patch_layout import grid_shape


def _kept(x_shape, patch_size, keep):
    return math.prod(grid_shape(x_shape, patch_size)) if keep is None else keep.shape[-1]


def patch_embed(x, patch_size, weight, bias, pos, keep):
    torch._check(weight.dim() == 2, lambda: f"weight must be [D, P], got shape {tuple(weight.shape)}")
    return x.new_empty((x.shape[0], _kept(x.shape, patch_size, keep), weight.shape[0]))


def patch_embed_backward(grad, x, patch_size, weight, keep, output_mask):
    dim = weight.shape[0]
    positions = math.prod(grid_shape(x.shape, patch_size))
    return (x.new_empty(x.shape) if output_mask[0] else None,
            weight.new_empty(weight.shape) if output_mask[1] else None,
            grad.new_empty((dim,)) if output_mask[2] else None,
            grad.new_empty((positions, dim)) if output_mask[3] else None)


def drop_tokens(tokens, keep):
    return tokens.new_empty((tokens.shape[0], keep.shape[-1], tokens.shape[2]))


def drop_tokens_backward(grad, keep, num_tokens):
    return grad.new_empty((grad.shape[0], num_tokens, grad.shape[2]))


def _loss_dtype(*tensors):
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def contrastive_rows(v_local, t_local, v_all, t_all, mask_local, mask_all, temperature, tile_size):
    dtype = _loss_dtype(v_local, t_local, v_all, t_all)
    batch = v_local.shape[0]
    return v_local.new_empty((batch,), dtype=dtype), v_local.new_empty((batch,), dtype=dtype)


def contrastive_rows_backward(grad_loss, row_lse, v_local, t_local, v_all, t_all, mask_local, mask_all,
                              temperature, tile_size):
    return tuple(torch.empty_like(t) for t in (v_local, t_local, v_all, t_all))
