"""Fused custom ops of vatt (namespace ``torch.ops.vatt``), with autograd, fake kernels and XLA composites.

    patch_embed(x, patch_size, weight, bias=None, pos=None, keep=None) -> [B, K, D]
    drop_tokens(tokens, keep) -> [B, K, D]
    contrastive_rows(v_local, t_local, v_all, t_all, mask_local, mask_all, temperature, tile_size) -> [B]

Importing this package loads the compiled kernels (see `vatt.ops.library` for how and what happens when they
are missing); ``python -m vatt.ops --json`` reports which implementation serves each op on each device type.
"""
from __future__ import annotations

import torch

from vatt.ops import library as _library
from vatt.ops import registration as _registration
from vatt.ops.functional import DEFAULT_TILE_SIZE, MASKED_LOGIT, contrastive_rows, drop_tokens, patch_embed

EXTENSION = _library.load()
SERVED_BY = _registration.register(EXTENSION)


def implementations() -> dict:
    """Which implementation serves each op per device type, and what the compiled kernels were built for."""
    return {
        "torch": torch.__version__,
        "extension": {"source": EXTENSION.source, "path": EXTENSION.path,
                      "built_for_torch": EXTENSION.built_for_torch, "notes": EXTENSION.notes},
        "ops": SERVED_BY,
    }


__all__ = ["DEFAULT_TILE_SIZE", "EXTENSION", "MASKED_LOGIT", "contrastive_rows", "drop_tokens", "implementations",
           "patch_embed"]
