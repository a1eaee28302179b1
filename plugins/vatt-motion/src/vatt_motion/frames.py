"""Motion as signed brightness change between consecutive frames, split into ON and OFF channels.

This is the cheap stand-in for optical flow that event cameras and temporal-difference networks use: where
the brightness rises (an object's leading edge moving onto a darker background) the ON channel lights up,
where it falls the OFF channel does. The direction of motion is in where the two sit relative to each other,
while colour and static texture cancel out.
"""
from __future__ import annotations

import torch

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B


def frame_differences(video: torch.Tensor) -> torch.Tensor:
    """``video [B, 3, T, H, W]`` in [-1, 1] → ``[B, 2, T, H, W]`` (ON = rise, OFF = fall, both ≥ 0, ≤ 2).

    Frame t holds the change from frame t-1 to t; frame 0 has no predecessor and holds zeros, so the map
    keeps the clip's length and a tokenizer can share the video's patch grid.
    """
    if video.dim() != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be [B, 3, T, H, W], got shape {tuple(video.shape)}")
    weights = torch.tensor(LUMA, dtype=video.dtype, device=video.device).view(1, 3, 1, 1, 1)
    luma = (video * weights).sum(dim=1)  # [B, T, H, W]
    change = torch.zeros_like(luma)
    change[:, 1:] = luma[:, 1:] - luma[:, :-1]  # [B, T, H, W]; frame 0 stays zero
    return torch.stack([change.clamp(min=0), (-change).clamp(min=0)], dim=1)  # [B, 2, T, H, W]
