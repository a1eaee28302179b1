"""The video/audio transformer: pre-LayerNorm ViT blocks over [AGG] + patch tokens, and its standard sizes."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vatt.registry import register

LAYER_NORM_EPS = 1e-6


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
              dropout_p: float = 0.0, scale: float | None = None, sdpa: bool = True) -> torch.Tensor:
    """softmax(q·kᵀ·scale + mask)·v over [B, h, N, d] tensors, ``scale`` defaulting to 1/√d; ``attn_mask`` is a
    bool mask (True = may be attended to) or an additive bias, broadcast to [B, h, N, N].

    ``sdpa=True`` hands it to ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels where the
    device has them); ``sdpa=False`` spells it out in plain PyTorch ops, the reference the fused kernels are
    measured against (run.sdpa, see vatt.engine.speed.set_sdpa).
    """
    if sdpa:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = (q * scale) @ k.transpose(-2, -1)  # [B, h, N, N]
    if attn_mask is not None:
        logits = logits.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
            else logits + attn_mask
    weights = logits.softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v  # [B, h, N, d]


class SelfAttention(nn.Module):
    """Multi-head self-attention with biases, scaled dot products and an optional key padding mask."""

    def __init__(self, width: int, heads: int, attention_dropout: float):
        super().__init__()
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.sdpa = True  # F.scaled_dot_product_attention; False: explicit softmax(QKᵀ/√d)V (see set_sdpa)
        self.qkv = nn.Linear(width, 3 * width)  # query, key and value maps as one matmul
        self.out = nn.Linear(width, width)
        xavier_init(self.qkv, parts=3)
        xavier_init(self.out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # each [B, h, N, d]
        attend = None if mask is None else mask[:, None, None, :]  # [B, 1, 1, N], True = may be attended to
        p = self.attention_dropout if self.training else 0.0
        y = attention(q, k, v, attn_mask=attend, dropout_p=p, sdpa=self.sdpa)  # [B, h, N, d]
        return self.out(y.transpose(1, 2).reshape(batch, length, width))  # [B, N, D]


class EncoderBlock(nn.Module):
    """x + Attention(LN(x)), then x + MLP(LN(x)) with an exact (erf) GELU."""

    def __init__(self, width: int, mlp_dim: int, heads: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.attention = SelfAttention(width, heads, attention_dropout)
        self.mlp_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp_in = nn.Linear(width, mlp_dim)
        self.mlp_out = nn.Linear(mlp_dim, width)
        self.dropout = nn.Dropout(dropout)
        xavier_init(self.mlp_in)
        xavier_init(self.mlp_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))  # [B, N, D]
        hidden = self.dropout(F.gelu(self.mlp_in(self.mlp_norm(x))))  # [B, N, M]
        return x + self.dropout(self.mlp_out(hidden))  # [B, N, D]


@register("backbones", "vit", example={"width": 8, "layers": 1, "mlp_dim": 16, "heads": 2, "dropout": 0.0})
class VisionTransformer(nn.Module):
    """Pre-LN transformer encoder: ``forward(tokens [B, N, D], mask [B, N] bool or None) -> [B, N, D]``."""

    def __init__(self, *, width: int, layers: int, mlp_dim: int, heads: int, dropout: float = 0.1,
                 attention_dropout: float = 0.0):
        super().__init__()
        check_transformer_shape(width=width, layers=layers, mlp_dim=mlp_dim, heads=heads)
        for name, value in (("dropout", dropout), ("attention_dropout", attention_dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        self.width = width
        self.blocks = nn.ModuleList(
            EncoderBlock(width, mlp_dim, heads, dropout, attention_dropout) for _ in range(layers))
        self.final_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_tokens(tokens, mask, self.width)
        x = tokens
        for block in self.blocks:
            x = block(x, mask)  # [B, N, D]
        return self.final_norm(x)  # [B, N, D]


def check_transformer_shape(*, width: int, layers: int, mlp_dim: int, heads: int) -> None:
    for name, value in (("width", width), ("layers", layers), ("mlp_dim", mlp_dim), ("heads", heads)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if width % heads:
        raise ValueError(f"width must be divisible by heads={heads}, got {width!r}")


def check_tokens(tokens: torch.Tensor, mask: torch.Tensor | None, width: int) -> None:
    if tokens.ndim != 3 or tokens.shape[-1] != width:
        raise ValueError(f"tokens must be [B, N, {width}], got shape {tuple(tokens.shape)}")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != tokens.shape[:2]):
        raise ValueError(f"mask must be a bool tensor {list(tokens.shape[:2])}, "
                         f"got {mask.dtype} {list(mask.shape)}")


def xavier_init(linear: nn.Linear, parts: int = 1) -> None:
    """Xavier-uniform weight and zero bias, as the release's dense layers; a weight that stacks ``parts``
    maps (the fused query/key/value) gets each initialised on its own fan."""
    for part in linear.weight.chunk(parts):
        nn.init.xavier_uniform_(part)
    nn.init.zeros_(linear.bias)


# appendix Table 1: layers, width, MLP, heads
SIZES = {"small": (6, 512, 2048, 8), "base": (12, 768, 3072, 12), "medium": (12, 1024, 4096, 16),
         "large": (24, 1024, 4096, 16)}


def _sized(size: str):
    layers, width, mlp_dim, heads = SIZES[size]

    def factory(*, dropout: float = 0.1, attention_dropout: float = 0.0) -> VisionTransformer:
        return VisionTransformer(width=width, layers=layers, mlp_dim=mlp_dim, heads=heads, dropout=dropout,
                                 attention_dropout=attention_dropout)

    factory.__name__ = factory.__qualname__ = f"vit_{size}"
    factory.__doc__ = f"VATT-{size.title()}: {layers} layers, width {width}, MLP {mlp_dim}, {heads} heads."
    return register("backbones", f"vit_{size}")(factory)


vit_small, vit_base, vit_medium, vit_large = (_sized(size) for size in SIZES)
