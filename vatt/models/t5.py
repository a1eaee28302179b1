"""The text transformer: the release's T5-style encoder (relative position bias shared by all layers, an RMS norm
before attention, a LayerNorm before the GELU MLP, no biases in attention or MLP, no 1/sqrt(d) scaling)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vatt.models.transformer import LAYER_NORM_EPS, attention, check_tokens, check_transformer_shape
from vatt.registry import register

RMS_NORM_EPS = 1e-6


def relative_position_buckets(length: int, num_buckets: int, max_distance: int,
                              device: torch.device | str | None = None) -> torch.Tensor:
    """``[N, N]`` bucket of each (query i, key j) pair, bidirectional as in T5's encoder.

    Half of the buckets are for keys after the query, half for keys at or before it. In each half, the
    first half of the buckets hold exact distances; larger distances share buckets spaced logarithmically
    up to ``max_distance``, beyond which everything falls in the last bucket.
    """
    positions = torch.arange(length, device=device)
    relative = positions[None, :] - positions[:, None]  # [N, N] key minus query
    half = num_buckets // 2
    exact = half // 2
    distance = relative.abs()
    scaled = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (scaled * (half - exact)).long()).clamp(max=half - 1)
    return (relative > 0).long() * half + torch.where(distance < exact, distance, far)  # [N, N]


class RMSNorm(nn.RMSNorm):
    """Scale-only RMS normalisation computed in float32 whatever the input dtype, as T5 does under bf16."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), self.normalized_shape, self.weight.float(), self.eps).to(x.dtype)


class RelativeAttention(nn.Module):
    """Bias-free multi-head attention whose logits are raw q·k plus the given bias (T5 has no scaling)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.sdpa = True  # F.scaled_dot_product_attention; False: explicit softmax(QKᵀ + bias)V (see set_sdpa)
        head_dim = width // heads
        self.query = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        # T5's initialisation folds the missing 1/sqrt(d) into the query weights
        nn.init.normal_(self.query.weight, std=(width * head_dim) ** -0.5)
        nn.init.normal_(self.key.weight, std=width ** -0.5)
        nn.init.normal_(self.value.weight, std=width ** -0.5)
        nn.init.normal_(self.out.weight, std=width ** -0.5)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = (proj(x).view(batch, length, self.heads, -1).transpose(1, 2)
                   for proj in (self.query, self.key, self.value))  # each [B, h, N, d]
        p = self.dropout if self.training else 0.0
        y = attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p, scale=1.0, sdpa=self.sdpa)  # [B, h, N, d]
        return self.out(y.transpose(1, 2).reshape(batch, length, width))  # [B, N, D]


class T5Block(nn.Module):
    """x + Attention(RMSNorm(x)), then x + GELU MLP(LayerNorm(x)); dropout after each sub-layer and the GELU.

    The release's text tower mixes the two norms: a scale-only RMS norm before attention but a LayerNorm with
    a bias before its (exact, erf) GELU feed-forward block, unlike the original T5's RMS norm and ReLU.
    """

    def __init__(self, width: int, mlp_dim: int, heads: int, dropout: float):
        super().__init__()
        self.attention_norm = RMSNorm(width, eps=RMS_NORM_EPS)
        self.attention = RelativeAttention(width, heads, dropout)
        self.mlp_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp_in = nn.Linear(width, mlp_dim, bias=False)
        self.mlp_out = nn.Linear(mlp_dim, width, bias=False)
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.mlp_in.weight, std=width ** -0.5)
        nn.init.normal_(self.mlp_out.weight, std=mlp_dim ** -0.5)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), bias))  # [B, N, D]
        hidden = self.dropout(F.gelu(self.mlp_in(self.mlp_norm(x))))  # [B, N, M]
        return x + self.dropout(self.mlp_out(hidden))  # [B, N, D]


@register("backbones", "t5_text", example={"width": 8, "layers": 1, "mlp_dim": 16, "heads": 2, "dropout": 0.0})
class T5TextEncoder(nn.Module):
    """T5-style encoder: ``forward(tokens [B, N, D], mask [B, N] bool or None) -> [B, N, D]``.

    One relative position bias table (``num_buckets`` × heads) is shared by all layers and looked up once per
    forward; padded keys (mask False) get -inf on top of it.
    """

    def __init__(self, *, width: int, layers: int, mlp_dim: int, heads: int, dropout: float = 0.1,
                 num_buckets: int = 32, max_distance: int = 64):
        super().__init__()
        check_transformer_shape(width=width, layers=layers, mlp_dim=mlp_dim, heads=heads)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if num_buckets < 4 or num_buckets % 2:
            raise ValueError(f"num_buckets must be an even int >= 4, got {num_buckets!r}")
        if max_distance <= num_buckets // 4:
            raise ValueError(f"max_distance must exceed num_buckets // 4 = {num_buckets // 4}, got {max_distance!r}")
        self.width = width
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.relative_bias = nn.Embedding(num_buckets, heads)
        nn.init.normal_(self.relative_bias.weight, std=width ** -0.5)
        self.blocks = nn.ModuleList(T5Block(width, mlp_dim, heads, dropout) for _ in range(layers))
        self.final_norm = RMSNorm(width, eps=RMS_NORM_EPS)
        self.dropout = nn.Dropout(dropout)

    def position_bias(self, length: int, mask: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """Additive attention bias: ``[1, h, N, N]``, or ``[B, h, N, N]`` with -inf on padded keys."""
        buckets = relative_position_buckets(length, self.num_buckets, self.max_distance, device)  # [N, N]
        bias = self.relative_bias(buckets).permute(2, 0, 1).unsqueeze(0)  # [1, h, N, N]
        if mask is None:
            return bias
        return bias.masked_fill(~mask[:, None, None, :], float("-inf"))  # [B, h, N, N]

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_tokens(tokens, mask, self.width)
        bias = self.position_bias(tokens.shape[1], mask, tokens.device)
        x = self.dropout(tokens)
        for block in self.blocks:
            x = block(x, bias)  # [B, N, D]
        return self.dropout(self.final_norm(x))  # [B, N, D]


@register("backbones", "t5_small")
def t5_small(*, dropout: float = 0.1, num_buckets: int = 32, max_distance: int = 64) -> T5TextEncoder:
    """VATT-Small text encoder: 6 layers, width 512, MLP 2048, 8 heads, 32 buckets up to distance 64."""
    return T5TextEncoder(width=512, layers=6, mlp_dim=2048, heads=8, dropout=dropout, num_buckets=num_buckets,
                         max_distance=max_distance)
