"""The public vatt ops: argument checks with clear errors, then one call into the ``torch.ops.vatt`` library."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from vatt.ops.patch_layout import num_patches, patch_size_for, patch_values

# Rows and columns per similarity tile of the contrastive loss on the CPU (columns only on CUDA and XLA): big
# enough for efficient matmuls, small enough that a 256 × 256 tile of scores stays in cache.
DEFAULT_TILE_SIZE = 256
# The similarity given to pairs that involve the text of a clip without text: finite, so that a fully masked row
# stays finite, and low enough that exp() of it is exactly 0 next to any real similarity.
MASKED_LOGIT = -1e9


def _check_keep(keep: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.long:
        raise ValueError(f"keep must be an int64 tensor, got {getattr(keep, 'dtype', type(keep).__name__)}")
    if not (keep.dim() == 1 or (keep.dim() == 2 and keep.shape[0] == batch)):
        raise ValueError(f"keep must be [K] or [B, K] with B = {batch}, got shape {tuple(keep.shape)}")
    return keep.to(device)


def patch_embed(x: torch.Tensor, patch_size: int | Sequence[int], weight: torch.Tensor,
                bias: torch.Tensor | None = None, pos: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
    """Embeddings of the kept patches of a raw signal: ``[B, K, D]``, projecting only the kept patches.

    ``out[b, k] = weight @ patch(x[b], idx[b, k]) + bias + pos[idx[b, k]]`` with ``weight`` [D, P], ``bias`` [D]
    and ``pos`` [N, D] (either may be None) and ``idx`` = ``keep``: None = all N patches in order; a LongTensor
    [K] = the same K patch indices for every sample; [B, K] = per-sample indices; indices lie in [0, N) and are
    used in the order given. ``x`` is a video [B, C, T, H, W], a waveform [B, S] or a 2-D map [B, C, F, T]; how it
    is cut into N patches of P values is `vatt.ops.patch_layout`. Differentiable in x, weight, bias and pos.
    """
    size, keep = check_patch_embed(x, patch_size, weight, bias, pos, keep)
    return torch.ops.vatt.patch_embed(x, list(size), weight, bias, pos, keep)


def check_patch_embed(x: torch.Tensor, patch_size: int | Sequence[int], weight: torch.Tensor,
                      bias: torch.Tensor | None, pos: torch.Tensor | None,
                      keep: torch.Tensor | None) -> tuple[tuple[int, ...], torch.Tensor | None]:
    """The arguments of `patch_embed` checked, with clear errors: (patch size as a tuple, keep on x's device)."""
    size = patch_size_for(x.shape, patch_size)
    values, positions = patch_values(x.shape, size), num_patches(x.shape, size)
    if weight.dim() != 2 or weight.shape[1] != values:
        raise ValueError(f"weight must be [D, {values}] for patches of {values} values, got shape "
                         f"{tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must be [{weight.shape[0]}], got shape {tuple(bias.shape)}")
    if pos is not None and tuple(pos.shape) != (positions, weight.shape[0]):
        raise ValueError(f"pos must be [{positions}, {weight.shape[0]}] for this input's {positions} patches, "
                         f"got shape {tuple(pos.shape)}")
    return size, None if keep is None else _check_keep(keep, x.shape[0], x.device)


def drop_tokens(tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The kept tokens ``[B, K, D]`` of ``tokens`` [B, N, D]; ``keep`` is [K] (shared) or [B, K] (per sample)."""
    if tokens.dim() != 3:
        raise ValueError(f"tokens must be [B, N, D], got shape {tuple(tokens.shape)}")
    return torch.ops.vatt.drop_tokens(tokens, _check_keep(keep, tokens.shape[0], tokens.device))


def contrastive_rows(v_local: torch.Tensor, t_local: torch.Tensor, v_all: torch.Tensor, t_all: torch.Tensor,
                     mask_local: torch.Tensor | None = None, mask_all: torch.Tensor | None = None,
                     temperature: float = 0.07, tile_size: int = DEFAULT_TILE_SIZE) -> torch.Tensor:
    """MIL-NCE / NCE loss of each local clip against the global batch: ``[B]``, 0 for clips without text.

    v_local [B, D] and t_local [B, L, D] (L candidate texts per clip; L = 1 for NCE) are this process's
    L2-normalised embeddings, v_all [G, D] and t_all [G, L, D] the global batch's (containing the local one);
    mask_local [B] and mask_all [G] (bool, None = all True) say which clips have text. For clip i, with
    s = dot / temperature: loss_i = logsumexp({s(v_i, t_jl)} ∪ {s(v_j, t_il)} over j, l) − logsumexp_l s(v_i, t_il),
    similarities involving a text-less clip's text set to MASKED_LOGIT. Computed in tiles of ``tile_size`` rows
    and columns with an online log-sum-exp: memory O((B + G)·L·D), never B×G×L. float64 inputs give float64,
    others float32.
    """
    if v_local.dim() != 2 or t_local.dim() != 3 or v_all.dim() != 2 or t_all.dim() != 3:
        raise ValueError(f"expected v_local [B, D], t_local [B, L, D], v_all [G, D], t_all [G, L, D]; got "
                         f"{tuple(v_local.shape)}, {tuple(t_local.shape)}, {tuple(v_all.shape)}, {tuple(t_all.shape)}")
    batch, clips = v_local.shape[0], v_all.shape[0]
    if tuple(t_local.shape[::2]) != tuple(v_local.shape) or tuple(t_all.shape) != (clips, *t_local.shape[1:]) \
            or v_all.shape[1] != v_local.shape[1]:
        raise ValueError(f"inconsistent shapes: v_local {tuple(v_local.shape)}, t_local {tuple(t_local.shape)}, "
                         f"v_all {tuple(v_all.shape)}, t_all {tuple(t_all.shape)}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    if not (isinstance(tile_size, int) and tile_size > 0):
        raise ValueError(f"tile_size must be a positive int, got {tile_size!r}")
    mask_local = _as_mask("mask_local", mask_local, batch, v_local.device)
    mask_all = _as_mask("mask_all", mask_all, clips, v_local.device)
    loss, _row_lse = torch.ops.vatt.contrastive_rows(v_local, t_local, v_all, t_all, mask_local, mask_all,
                                                     float(temperature), tile_size)
    return loss


def _as_mask(name: str, mask: torch.Tensor | None, size: int, device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(size, dtype=torch.bool, device=device)
    if tuple(mask.shape) != (size,):
        raise ValueError(f"{name} must have shape [{size}], got {tuple(mask.shape)}")
    return mask.to(device=device, dtype=torch.bool)
