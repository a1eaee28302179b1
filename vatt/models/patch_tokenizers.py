"""Tokenizers for raw video and raw waveforms: linear patch projection, learned positions, DropToken, [AGG]."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vatt import ops
from vatt.models.patching import patch_embed
from vatt.models.positions import FactorisedPositions
from vatt.ops.patch_layout import grid_shape, normalise_patch_size
from vatt.registry import register


class PatchTokenizer(nn.Module):
    """Shared forward of the patch tokenizers: ``forward(x, keep=None) -> ([B, 1+K, D], None)``.

    Patches of ``x`` are projected linearly, their LayerNorm-ed positions added, dropout applied, only the
    patch indices in ``keep`` (None, ``[K]`` or ``[B, K]``) kept, and the learned [AGG] token (which has no
    position) prepended at index 0. With ``pre_projection`` (the modality-agnostic model's layout) a Dense
    layer with bias and GELU maps the patch embeddings before the positions are added.
    """

    def __init__(self, *, dim: int, patch_size: tuple[int, ...], sample_shape: tuple[int, ...], channels: int,
                 dropout: float, pre_projection: bool = False):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim!r}")
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dim = dim
        self.patch_size = patch_size
        self.channels = channels
        self.sample_ndim = len(sample_shape)
        self.sample_shape = sample_shape
        grid = grid_shape(sample_shape, patch_size)  # patches tile the trailing axes
        self.projection = nn.Linear(channels * math.prod(patch_size), dim)  # weight [D, C * prod(patch)]
        self.pre_projection = nn.Linear(dim, dim) if pre_projection else None
        self.positions = FactorisedPositions(grid, dim)
        self.agg = nn.Parameter(torch.randn(dim) * 0.02)
        self.dropout = nn.Dropout(dropout)

    supports_droptoken = True
    fused_ops = True  # patch embedding by vatt.ops (fused kernels); False: plain PyTorch (see set_fused_ops)

    @property
    def num_tokens(self) -> int:
        return self.positions.num_positions

    def example_input(self, batch_size: int) -> torch.Tensor:
        """A random valid input in [-1, 1]: [B, *sample_shape]."""
        return torch.rand(batch_size, *self.sample_shape) * 2 - 1

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"x must be [B, {', '.join(map(str, self.sample_shape))}], the input size this "
                             f"tokenizer's positions were built for, got shape {tuple(x.shape)}")
        pos = self.positions.table()  # [N, D]
        embed = ops.patch_embed if self.fused_ops else patch_embed
        weight, bias = self.projection.weight, self.projection.bias
        if self.pre_projection is None:
            tokens = embed(x, self.patch_size, weight, bias, pos, keep)  # [B, K, D]
        else:
            patches = embed(x, self.patch_size, weight, bias, None, keep)  # [B, K, D]
            tokens = F.gelu(self.pre_projection(patches)) + kept_positions(pos, keep)  # [B, K, D]
        tokens = self.dropout(tokens)
        agg = self.agg.to(tokens.dtype).expand(tokens.shape[0], 1, -1)  # [B, 1, D]
        return torch.cat([agg, tokens], dim=1), None  # [B, 1+K, D]


@register("tokenizers", "video_patches",
          example={"dim": 8, "patch_size": [2, 4, 4], "frames": 4, "size": 8, "dropout": 0.0})
class VideoPatchTokenizer(PatchTokenizer):
    """3-D patches of a video [B, C, T, H, W], factorised (time, height, width) learned positions."""

    def __init__(self, *, dim: int, patch_size: Sequence[int] = (4, 16, 16), frames: int = 32,
                 size: int | Sequence[int] = 224, channels: int = 3, dropout: float = 0.1,
                 pre_projection: bool = False):
        super().__init__(dim=dim, patch_size=normalise_patch_size(patch_size, 3),
                         sample_shape=(channels, frames, *_height_width(size)), channels=channels, dropout=dropout,
                         pre_projection=pre_projection)

    @property
    def frames(self) -> int:
        return self.sample_shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return self.sample_shape[2], self.sample_shape[3]

    def resize_positions(self, *, frames: int | None = None, size: int | Sequence[int] | None = None) -> None:
        """Accept clips of another length or frame size: each position table is resized to the new grid with
        the release's polyharmonic spline, `resize_table` (8+14+14 buckets at 32×224² become 8+20+20 at
        32×320²). Build the optimiser afterwards: resized tables are new parameters."""
        frames = self.frames if frames is None else frames
        height, width = self.size if size is None else _height_width(size)
        sample_shape = (self.channels, frames, height, width)
        self.positions.resize(grid_shape(sample_shape, self.patch_size))
        self.sample_shape = sample_shape


@register("tokenizers", "waveform_patches", example={"dim": 8, "patch_size": 4, "samples": 32, "dropout": 0.0})
class WaveformPatchTokenizer(PatchTokenizer):
    """1-D patches of a mono waveform [B, S], one learned position per patch (1200 at 153,600 / 128)."""

    def __init__(self, *, dim: int, patch_size: int = 128, samples: int = 153600, dropout: float = 0.1,
                 pre_projection: bool = False):
        super().__init__(dim=dim, patch_size=normalise_patch_size(patch_size, 1), sample_shape=(samples,),
                         channels=1, dropout=dropout, pre_projection=pre_projection)

    def resize_positions(self, *, samples: int) -> None:
        """Accept waveforms of another length: the position table is resized to the new number of patches
        with the release's spline (`vatt.models.positions.resize_table`). Build the optimiser afterwards."""
        self.positions.resize(grid_shape((samples,), self.patch_size))
        self.sample_shape = (samples,)


def kept_positions(pos: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """The position rows of the kept tokens, broadcastable to ``[B, K, D]``: ``[1, N, D]``, ``[1, K, D]`` or
    ``[B, K, D]`` for ``keep`` None, ``[K]`` or ``[B, K]``."""
    if keep is None:
        return pos[None]
    return pos[keep] if keep.dim() == 2 else pos[keep][None]


def _height_width(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ValueError(f"size must be an int or [height, width], got {size!r}")
    return int(size[0]), int(size[1])
