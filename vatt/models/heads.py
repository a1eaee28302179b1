"""Projection heads from a tower's [AGG] feature into the common spaces S_va (512-d) and S_vt (256-d)."""
from __future__ import annotations

import torch
import torch.nn as nn

from vatt.registry import register


@register("heads", "fac_video", example={"in_dim": 8, "va_dim": 6, "vt_dim": 4})
class FineAndCoarseVideoHead(nn.Module):
    """The release's FAC video head: S_va first, then S_vt computed from z_va (fine and coarse spaces).

    z_va = BN(Linear(ReLU(BN(Linear(feature))))) and z_vt = BN(Linear(ReLU(z_va))), all Linear layers without
    bias. The trainer swaps the batch norms for synchronised ones under data parallelism.
    """

    def __init__(self, *, in_dim: int, va_dim: int = 512, vt_dim: int = 256, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5):
        super().__init__()
        for name, value in (("in_dim", in_dim), ("va_dim", va_dim), ("vt_dim", vt_dim)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.va_hidden = nn.Linear(in_dim, va_dim, bias=False)
        self.va_hidden_norm = nn.BatchNorm1d(va_dim, eps=bn_eps, momentum=bn_momentum)
        self.va_out = nn.Linear(va_dim, va_dim, bias=False)
        self.va_norm = nn.BatchNorm1d(va_dim, eps=bn_eps, momentum=bn_momentum)
        self.vt_out = nn.Linear(va_dim, vt_dim, bias=False)
        self.vt_norm = nn.BatchNorm1d(vt_dim, eps=bn_eps, momentum=bn_momentum)

    def forward(self, feature: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = torch.relu(self.va_hidden_norm(self.va_hidden(feature)))  # [B, va_dim]
        va = self.va_norm(self.va_out(hidden))  # [B, va_dim]
        vt = self.vt_norm(self.vt_out(torch.relu(va)))  # [B, vt_dim]
        return {"va": va, "vt": vt}


@register("heads", "linear", example={"in_dim": 8, "dim": 4, "space": "va"})
class LinearHead(nn.Module):
    """One Linear (with bias) into one space: audio → S_va (512), text → S_vt (256)."""

    def __init__(self, *, in_dim: int, dim: int, space: str):
        super().__init__()
        if in_dim < 1 or dim < 1:
            raise ValueError(f"in_dim and dim must be positive, got in_dim={in_dim!r}, dim={dim!r}")
        if not space:
            raise ValueError(f"space must name a common space such as 'va' or 'vt', got {space!r}")
        self.space = space
        self.projection = nn.Linear(in_dim, dim)

    def forward(self, feature: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.space: self.projection(feature)}  # [B, dim]
