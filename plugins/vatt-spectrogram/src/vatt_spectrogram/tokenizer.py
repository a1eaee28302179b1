"""The log-mel audio tokenizer: a raw waveform in, tokens of 16-frame × 5-bin spectrogram patches out.

The waveform is turned into a time-major log-mel map ``[B, 1, frames, mel]`` and cut into patches by vatt's
patch tokenizer (the same projection, position, DropToken and [AGG] path the waveform tokenizer takes, on
the fused patch embedding when vatt's C++ ops are built). The model still reads the batch's ``audio``
waveform, so datasets, collation and the NCE loss are untouched.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from vatt.models.patch_tokenizers import PatchTokenizer
from vatt.ops.patch_layout import normalise_patch_size
from vatt_spectrogram.mel import LogMelSpectrogram


class LogMelTokenizer(nn.Module):
    """Log-mel spectrogram patches of a mono waveform [B, S]: 80 bins, 42 ms window, 21 ms step, 16×5 patches.

    ``patch_size`` is (frames, mel bins). The position table is factorised over the patch grid (time, mel),
    learned, and belongs to this tokenizer; at 48 kHz and 153,600 samples the grid is 9 × 16 = 144 patches.
    """

    vatt_example = {"dim": 8, "samples": 4000, "sample_rate": 8000, "num_mels": 20, "patch_size": [4, 5],
                    "dropout": 0.0}
    sample_ndim = 1  # the input is the raw waveform, like the built-in audio tokenizer's
    supports_droptoken = True

    def __init__(self, *, dim: int, samples: int = 153600, sample_rate: int = 48000, num_mels: int = 80,
                 window_ms: float = 42.0, step_ms: float = 21.0, patch_size: Sequence[int] = (16, 5),
                 f_min: float = 0.0, f_max: float | None = None, dropout: float = 0.1):
        super().__init__()
        self.spectrogram = LogMelSpectrogram(sample_rate=sample_rate, num_mels=num_mels, window_ms=window_ms,
                                             step_ms=step_ms, f_min=f_min, f_max=f_max)
        frames = self.spectrogram.num_frames(samples)
        patch_size = normalise_patch_size(patch_size, 2)
        if frames < patch_size[0] or num_mels < patch_size[1]:
            raise ValueError(f"samples={samples} at {sample_rate} Hz give {frames} frames of {num_mels} mel bins, "
                             f"fewer than one patch of {patch_size[0]} frames × {patch_size[1]} bins")
        self.samples = samples
        self.patches = PatchTokenizer(dim=dim, patch_size=patch_size, sample_shape=(1, frames, num_mels),
                                      channels=1, dropout=dropout)

    @property
    def dim(self) -> int:
        return self.patches.dim

    @property
    def num_tokens(self) -> int:
        return self.patches.num_tokens

    @property
    def grid(self) -> tuple[int, int]:
        """Patches along (time, mel)."""
        return self.patches.positions.grid

    def example_input(self, batch_size: int) -> torch.Tensor:
        """A random waveform in [-1, 1]: [B, samples]."""
        return torch.rand(batch_size, self.samples) * 2 - 1

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        if x.dim() != 2 or x.shape[1] != self.samples:
            raise ValueError(f"x must be a waveform [B, {self.samples}], the length this tokenizer's positions "
                             f"were built for, got shape {tuple(x.shape)}")
        spectrogram = self.spectrogram(x).unsqueeze(1)  # [B, 1, frames, mel]
        return self.patches(spectrogram.to(self.patches.projection.weight.dtype), keep)  # [B, 1+K, D], None
