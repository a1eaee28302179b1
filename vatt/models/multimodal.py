"""Towers (tokenizer → transformer → [AGG] feature) and the multimodal model that maps a batch to the spaces."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

import torch
import torch.nn as nn

from vatt.models.droptoken import draw_keep


class Tower(nn.Module):
    """One modality's path from raw input ``[B, *sample]`` to its clip feature ``[B, out_dim]``.

    In training with ``droptoken_rate > 0`` it draws the kept patch indices (one set for the batch, or one
    per sample with ``per_sample_drop``) and hands them to the tokenizer. ``post_projection`` (the
    modality-agnostic model, whose backbone is shared) adds the release's per-modality Dense with bias and GELU
    after the backbone, applied to every output token, of that width.
    """

    def __init__(self, tokenizer: nn.Module, backbone: nn.Module, droptoken_rate: float = 0.0,
                 per_sample_drop: bool = False, post_projection: int | None = None):
        super().__init__()
        if not 0.0 <= droptoken_rate < 1.0:
            raise ValueError(f"droptoken_rate must be in [0, 1), got {droptoken_rate!r}")
        if droptoken_rate > 0 and not getattr(tokenizer, "supports_droptoken", False):
            raise ValueError(f"droptoken_rate={droptoken_rate}, but {type(tokenizer).__name__} does not "
                             f"support DropToken (text never gets it); set it to 0")
        if tokenizer.dim != backbone.width:
            raise ValueError(f"tokenizer.dim={tokenizer.dim} differs from backbone.width={backbone.width}; "
                             f"build the tokenizer with dim={backbone.width}")
        if post_projection is not None and post_projection < 1:
            raise ValueError(f"post_projection must be a positive width or None, got {post_projection!r}")
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.droptoken_rate = droptoken_rate
        self.per_sample_drop = per_sample_drop
        self.post_projection = None if post_projection is None else \
            nn.Sequential(nn.Linear(backbone.width, post_projection), nn.GELU())
        self.out_dim = backbone.width if post_projection is None else post_projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[:, 0]  # [B, D]: the [AGG] token's output

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Every output token ``[B, 1+K, out_dim]``: the [AGG] token at index 0, then the kept patches (all of
        them in eval) in the tokenizer's order, or the words."""
        keep = None
        if self.training and self.droptoken_rate > 0:
            keep = draw_keep(self.tokenizer.num_tokens, self.droptoken_rate, x.shape[0],
                             per_sample=self.per_sample_drop, device=x.device)  # [K] or [B, K]
        tokens, mask = self.tokenizer(x, keep=keep)  # [B, 1+K, D], [B, 1+K] or None
        hidden = self.backbone(tokens, mask)  # [B, 1+K, D]
        if self.post_projection is not None:
            hidden = self.post_projection(hidden)  # [B, 1+K, out_dim]
        return hidden


def pixels_to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 batch entries are pixels (the datasets' video, uint8 so that it crosses shared memory and the
    host-to-device copy at a quarter of the float32 size): mapped to the towers' float [-1, 1] here, on the
    device; anything else passes through."""
    if x.dtype != torch.uint8:
        return x
    return x.to(torch.float32).mul_(2 / 255).sub_(1)


class MultimodalModel(nn.Module):
    """Towers and heads by modality: ``forward(batch) -> {modality: {space: Tensor}}``.

    A batch entry may carry leading dims beyond the batch (text ``[B, L, W]``): they are flattened for the
    tower and head and restored on the outputs (``[B, L, d]``). Batch keys that name no tower are ignored.
    A uint8 entry holds pixels and reaches the tower as float in [-1, 1] (`pixels_to_model_range`).
    ``inputs`` maps a modality to the batch key it reads when the two differ (a motion modality computed
    from ``video``); by default each modality reads the batch entry of its own name.
    """

    def __init__(self, towers: dict[str, Tower], heads: dict[str, nn.Module],
                 inputs: dict[str, str] | None = None):
        super().__init__()
        extra = sorted(set(heads) - set(towers))
        if extra:
            raise ValueError(f"heads {extra} have no tower; towers are {sorted(towers)}")
        unknown = sorted(set(inputs or {}) - set(towers))
        if unknown:
            raise ValueError(f"inputs {unknown} name no tower; towers are {sorted(towers)}")
        self.towers = nn.ModuleDict(towers)
        self.heads = nn.ModuleDict(heads)
        self.inputs = {name: (inputs or {}).get(name, name) for name in towers}

    def forward(self, batch: dict[str, torch.Tensor],
                modalities: Iterable[str] | None = None) -> dict[str, dict[str, torch.Tensor]]:
        outputs = {}
        for name in self._selected(batch, modalities):
            if name not in self.heads:
                continue
            outputs[name] = self._run(name, batch[self.inputs[name]], with_head=True)
        return outputs

    def features(self, batch: dict[str, torch.Tensor],
                 modalities: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """The towers' clip features ``{modality: [*, D]}`` without heads (linear probes, fine-tuning)."""
        return {name: self._run(name, batch[self.inputs[name]], with_head=False)
                for name in self._selected(batch, modalities)}

    def encode(self, batch: dict[str, torch.Tensor],
               modalities: Iterable[str] | None = None) -> dict[str, dict[str, torch.Tensor]]:
        """Pooled and per-token features without heads: ``{modality: {"pooled": [*, D], "tokens": [*, K, D]}}``,
        the [AGG] output and the outputs of the patches (the words, for text) in the tokenizer's order; video
        tokens are (t, h, w) row-major, so ``tokens.view(B, T', H', W', D)`` gives the grid."""
        encoded = {}
        for name in self._selected(batch, modalities):
            x, lead = self._flattened(name, batch[self.inputs[name]])
            hidden = self.towers[name].encode(x)  # [prod(lead), 1+K, D]
            encoded[name] = {"pooled": hidden[:, 0].reshape(*lead, -1),  # [*lead, D]
                             "tokens": hidden[:, 1:].reshape(*lead, hidden.shape[1] - 1, -1)}  # [*lead, K, D]
        return encoded

    def _selected(self, batch: dict, modalities: Iterable[str] | None) -> list[str]:
        if modalities is None:
            return [name for name in self.towers if self.inputs[name] in batch]
        modalities = list(modalities)
        unknown = [m for m in modalities if m not in self.towers]
        if unknown:
            raise ValueError(f"modalities {unknown} have no tower; towers are {list(self.towers)}")
        return [name for name in modalities if self.inputs[name] in batch]

    def _flattened(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """The batch entry as ``[prod(lead), *sample]`` in the towers' float range, and its leading dims."""
        sample_ndim = self.towers[name].tokenizer.sample_ndim
        if x.ndim <= sample_ndim:
            raise ValueError(f"batch[{self.inputs[name]!r}] must have a batch dim before its {sample_ndim}-d samples, "
                             f"got shape {tuple(x.shape)}")
        lead = tuple(x.shape[: x.ndim - sample_ndim])
        x = pixels_to_model_range(x)
        return x.reshape(-1, *x.shape[len(lead):]), lead

    def _run(self, name: str, x: torch.Tensor, with_head: bool):
        x, lead = self._flattened(name, x)
        feature = self.towers[name](x)  # [prod(lead), D]
        if not with_head:
            return feature.reshape(*lead, -1)  # [*lead, D]
        return {space: z.reshape(*lead, -1) for space, z in self.heads[name](feature).items()}  # [*lead, d]

    def parameter_counts(self) -> OrderedDict[str, int]:
        """Parameters per part, ``{"video/tokenizer": n, ..., "total": n}``; a backbone shared by several
        towers (VATT-MA) appears once, as ``shared/backbone``."""
        users: dict[int, list[str]] = {}
        for name, tower in self.towers.items():
            users.setdefault(id(tower.backbone), []).append(name)
        counts: OrderedDict[str, int] = OrderedDict()
        for name, tower in self.towers.items():
            counts[f"{name}/tokenizer"] = _count(tower.tokenizer)
            if tower.post_projection is not None:
                counts[f"{name}/post_projection"] = _count(tower.post_projection)
            if len(users[id(tower.backbone)]) == 1:
                counts[f"{name}/backbone"] = _count(tower.backbone)
            if name in self.heads:
                counts[f"{name}/head"] = _count(self.heads[name])
        shared = [names for names in users.values() if len(names) > 1]
        for names in shared:
            key = "shared/backbone" if len(shared) == 1 else f"shared/backbone[{'+'.join(names)}]"
            counts[key] = _count(self.towers[names[0]].backbone)
        counts["total"] = _count(self)
        return counts


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() visits a shared tensor once
