"""The motion head: the motion tower's [AGG] feature into one or more common spaces."""
from __future__ import annotations

import torch
import torch.nn as nn


class MotionHead(nn.Module):
    """A shared hidden layer (Linear without bias, BatchNorm, ReLU), then one Linear per common space.

    ``spaces`` maps each space to its width, e.g. ``{va: 512, vt: 256}``: motion is compared with audio and
    video in S_va and with text in S_vt, like the video it is computed from.
    """

    vatt_example = {"in_dim": 8, "spaces": {"va": 6, "vt": 4}}

    def __init__(self, *, in_dim: int, spaces: dict[str, int], hidden_dim: int | None = None,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__()
        if not isinstance(spaces, dict) or not spaces:
            raise ValueError(f"spaces must map each common space to its width, e.g. {{va: 512}}, got {spaces!r}")
        for space, width in spaces.items():
            if not isinstance(space, str) or not space or not isinstance(width, int) or width < 1:
                raise ValueError(f"spaces must map names to positive int widths, got {space!r}: {width!r}")
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        if in_dim < 1 or hidden_dim < 1:
            raise ValueError(f"in_dim and hidden_dim must be positive, got {in_dim!r} and {hidden_dim!r}")
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden_dim, bias=False),
                                    nn.BatchNorm1d(hidden_dim, eps=bn_eps, momentum=bn_momentum), nn.ReLU())
        self.projections = nn.ModuleDict({space: nn.Linear(hidden_dim, width) for space, width in spaces.items()})

    def forward(self, feature: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.hidden(feature)  # [B, hidden]
        return {space: projection(hidden) for space, projection in self.projections.items()}  # each [B, width]
