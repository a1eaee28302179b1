"""The motion tokenizer: the raw video in, tokens of 3-D patches of its ON/OFF frame differences out.

A model gives the motion modality the video with ``input: video`` in its config, so no dataset changes: the
tower computes the differences itself, then vatt's patch tokenizer projects the patches, adds this
tokenizer's own learned positions, applies DropToken and prepends [AGG].
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from vatt.models.patch_tokenizers import PatchTokenizer
from vatt.ops.patch_layout import normalise_patch_size
from vatt_motion.frames import frame_differences

CHANNELS = 2  # ON and OFF


class MotionPatchTokenizer(nn.Module):
    """3-D patches of a video's frame differences [B, 2, T, H, W] (ON/OFF), read from a video [B, 3, T, H, W]."""

    vatt_example = {"dim": 8, "patch_size": [2, 4, 4], "frames": 4, "size": 8, "dropout": 0.0}
    sample_ndim = 4  # one sample is a video [3, T, H, W]
    supports_droptoken = True

    def __init__(self, *, dim: int, patch_size: Sequence[int] = (4, 16, 16), frames: int = 32,
                 size: int = 224, dropout: float = 0.1):
        super().__init__()
        for name, value in (("frames", frames), ("size", size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.video_shape = (3, frames, size, size)
        self.patches = PatchTokenizer(dim=dim, patch_size=normalise_patch_size(patch_size, 3),
                                      sample_shape=(CHANNELS, frames, size, size), channels=CHANNELS,
                                      dropout=dropout)

    @property
    def dim(self) -> int:
        return self.patches.dim

    @property
    def num_tokens(self) -> int:
        return self.patches.num_tokens

    def example_input(self, batch_size: int) -> torch.Tensor:
        """A random video in [-1, 1]: [B, 3, T, H, W]."""
        return torch.rand(batch_size, *self.video_shape) * 2 - 1

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        if tuple(x.shape[1:]) != self.video_shape:
            raise ValueError(f"x must be a video [B, {', '.join(map(str, self.video_shape))}], the size this "
                             f"tokenizer's positions were built for, got shape {tuple(x.shape)}")
        return self.patches(frame_differences(x), keep)  # [B, 1+K, D], None
