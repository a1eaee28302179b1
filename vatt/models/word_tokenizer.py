"""Tokenizer for word ids: a (frozen, word2vec-sized) embedding table, an [AGG] vector, a projection."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vatt.models.positions import FactorisedPositions
from vatt.registry import register


@register("tokenizers", "words", example={"dim": 8, "vocab_size": 32, "embed_dim": 6, "max_words": 4})
class WordTokenizer(nn.Module):
    """Word ids [B, W] (pad 0) → ([B, 1+W, dim], mask [B, 1+W]); the [AGG] token at index 0 is always valid.

    The table is ``vocab_size × embed_dim`` (the frozen word2vec table in the release). Two layouts, those of
    the release's two models:

    * default, the T5 text tower's: a learned [AGG] vector in the word space is prepended to the words, and
      all go through a bias-free Dense(embed_dim → dim) with GELU; the encoder's relative positions do the
      rest.
    * ``pre_projection=True``, the modality-agnostic model's (as for its video and audio): the words go
      through a Dense with bias and GELU into ``dim``, ``max_words`` learned positions (LayerNorm-ed, as for
      video and audio) are added, and an [AGG] vector of width ``dim`` is prepended.

    Text never gets DropToken.
    """

    def __init__(self, *, dim: int = 512, vocab_size: int = 65536, embed_dim: int = 300, max_words: int = 16,
                 freeze_embeddings: bool = True, pre_projection: bool = False):
        super().__init__()
        for name, value in (("dim", dim), ("vocab_size", vocab_size), ("embed_dim", embed_dim),
                            ("max_words", max_words)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.dim = dim
        self.max_words = max_words
        self.sample_ndim = 1
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.embedding.weight.requires_grad_(not freeze_embeddings)
        self.agg = nn.Parameter(torch.randn(dim if pre_projection else embed_dim) * 0.02)
        self.projection = nn.Linear(embed_dim, dim, bias=pre_projection)
        self.positions = FactorisedPositions((max_words,), dim) if pre_projection else None

    supports_droptoken = False

    @property
    def num_tokens(self) -> int:
        return self.max_words

    def example_input(self, batch_size: int) -> torch.Tensor:
        """Random word ids [B, max_words], the second half of each row padded with 0."""
        ids = torch.randint(1, self.embedding.num_embeddings, (batch_size, self.max_words))  # [B, W]
        ids[:, (self.max_words + 1) // 2:] = 0
        return ids

    @torch.no_grad()
    def load_embeddings(self, table: torch.Tensor | np.ndarray) -> None:
        """Copy a pre-trained ``[vocab_size, embed_dim]`` table (word2vec) into the embedding."""
        table = torch.as_tensor(table)
        if tuple(table.shape) != tuple(self.embedding.weight.shape):
            raise ValueError(f"table must be {list(self.embedding.weight.shape)}, got {list(table.shape)}")
        self.embedding.weight.copy_(table)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if keep is not None:
            raise ValueError("keep must be None: text never gets DropToken (set the text tower's "
                             "droptoken_rate to 0)")
        if x.ndim != 2 or x.shape[1] > self.max_words:
            raise ValueError(f"x must be word ids [B, W] with W <= max_words={self.max_words}, "
                             f"got shape {tuple(x.shape)}")
        words = self.embedding(x)  # [B, W, E]
        agg = self.agg.to(words.dtype).expand(x.shape[0], 1, -1)  # [B, 1, E] or [B, 1, D]
        if self.positions is None:
            tokens = F.gelu(self.projection(torch.cat([agg, words], dim=1)))  # [B, 1+W, D]
        else:
            pos = self.positions.table()[: x.shape[1]]  # [W, D]
            tokens = torch.cat([agg, F.gelu(self.projection(words)) + pos], dim=1)  # [B, 1+W, D]
        valid_agg = torch.ones(x.shape[0], 1, dtype=torch.bool, device=x.device)  # [B, 1]
        return tokens, torch.cat([valid_agg, x != 0], dim=1)  # [B, 1+W, D], [B, 1+W]
