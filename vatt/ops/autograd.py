"""Autograd of the vatt ops: each backward is itself a vatt op, so it runs on the same kernel family."""
from __future__ import annotations

import torch


def _setup_patch_embed(ctx, inputs, output):
    x, patch_size, weight, bias, pos, keep = inputs
    ctx.save_for_backward(x, weight, keep)
    ctx.patch_size = patch_size
    ctx.has_bias_and_pos = (bias is not None, pos is not None)


def _patch_embed_backward(ctx, grad):
    x, weight, keep = ctx.saved_tensors
    needs = ctx.needs_input_grad  # (x, patch_size, weight, bias, pos, keep)
    has_bias, has_pos = ctx.has_bias_and_pos
    # Raw video or audio rarely needs a gradient: skipping it skips the scatter into an x-sized tensor.
    output_mask = [needs[0], needs[2], needs[3] and has_bias, needs[4] and has_pos]
    grad_x, grad_weight, grad_bias, grad_pos = torch.ops.vatt.patch_embed_backward(
        grad, x, ctx.patch_size, weight, keep, output_mask)
    return grad_x, None, grad_weight, grad_bias, grad_pos, None


def _setup_drop_tokens(ctx, inputs, output):
    tokens, keep = inputs
    ctx.save_for_backward(keep)
    ctx.num_tokens = tokens.shape[1]


def _drop_tokens_backward(ctx, grad):
    (keep,) = ctx.saved_tensors
    return torch.ops.vatt.drop_tokens_backward(grad, keep, ctx.num_tokens), None


def _setup_contrastive_rows(ctx, inputs, output):
    v_local, t_local, v_all, t_all, mask_local, mask_all, temperature, tile_size = inputs
    loss, row_lse = output
    ctx.save_for_backward(v_local, t_local, v_all, t_all, mask_local, mask_all, row_lse)
    ctx.temperature = temperature
    ctx.tile_size = tile_size
    ctx.mark_non_differentiable(row_lse)  # an auxiliary output kept for the backward


def _contrastive_rows_backward(ctx, grad_loss, _grad_row_lse):
    v_local, t_local, v_all, t_all, mask_local, mask_all, row_lse = ctx.saved_tensors
    grads = torch.ops.vatt.contrastive_rows_backward(grad_loss, row_lse, v_local, t_local, v_all, t_all, mask_local,
                                                     mask_all, ctx.temperature, ctx.tile_size)
    return (*grads, None, None, None, None)


def register(library: torch.library.Library) -> None:
    torch.library.register_autograd("vatt::patch_embed", _patch_embed_backward, setup_context=_setup_patch_embed,
                                    lib=library)
    torch.library.register_autograd("vatt::drop_tokens", _drop_tokens_backward, setup_context=_setup_drop_tokens,
                                    lib=library)
    torch.library.register_autograd("vatt::contrastive_rows", _contrastive_rows_backward,
                                    setup_context=_setup_contrastive_rows, lib=library)
