"""A model's weights as one safetensors file: what `python -m vatt.convert` writes and `vatt.load_pretrained`
and ``model.init`` read.

safetensors stores plain tensors only (no pickle, so loading runs no code) and cannot hold one tensor under two
names. A module shared by several towers (VATT-MA's backbone) appears in ``state_dict()`` once per tower, so
the file keeps each tensor under its first name and records the other names in the header's metadata
(``aliases``: JSON ``{alias: name}``); reading gives the full state dict back.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from vatt.errors import UserError
from vatt.files import atomic_write

WEIGHTS_NAME = "model.safetensors"


def unique_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, aliases)``: every state-dict entry once, under the name ``named_parameters`` /
    ``named_buffers`` give it (the first module path), and the other names of the shared ones."""
    canonical = {id(t): name for name, t in [*model.named_parameters(), *model.named_buffers()]}
    tensors, aliases = {}, {}
    for name, value in model.state_dict(keep_vars=True).items():
        first = canonical.get(id(value), name)
        if first == name:
            tensors[name] = value.detach()
        else:
            aliases[name] = first
    return tensors, aliases


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write the model's state dict to ``path`` atomically (a reader never sees half a file)."""
    from safetensors.torch import save

    tensors, aliases = unique_state(model)
    header = {**(metadata or {}), "aliases": json.dumps(aliases, sort_keys=True)}
    payload = save({name: t.contiguous().cpu() for name, t in tensors.items()}, metadata=header)
    atomic_write(path, lambda f: f.write(payload))


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The full state dict stored by `save_weights`, aliases restored (sharing one tensor)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {name: f.get_tensor(name) for name in f.keys()}
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors weights file ({exc})") from None
    missing = sorted({name for name in aliases.values() if name not in state})
    if missing:
        raise UserError(f"{path}: its aliases name tensors the file lacks: {', '.join(missing[:8])}")
    state.update({alias: state[name] for alias, name in aliases.items()})
    return state


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``model``, strictly: every entry must exist with the same shape, and nothing the
    model has may be left out. The error names every mismatched parameter."""
    targets = model.state_dict()
    problems = [f"{name}: file {list(state[name].shape)}, model {list(t.shape)}"
                for name, t in targets.items() if name in state and state[name].shape != t.shape]
    missing = [name for name in targets if name not in state]
    unexpected = [name for name in state if name not in targets]
    if problems or missing or unexpected:
        lines = [f"{source} does not fit this model (another architecture, or a config that differs):"]
        for title, names in (("shapes differ", problems), ("missing from the file", missing),
                             ("not in the model", unexpected)):
            if names:
                shown = "; ".join(names[:8]) + (f" ... and {len(names) - 8} more" if len(names) > 8 else "")
                lines.append(f"  {title}: {shown}")
        raise UserError("\n".join(lines))
    with torch.no_grad():
        for name, target in targets.items():
            target.copy_(state[name].to(target.dtype))
