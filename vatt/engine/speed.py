"""Speed switches a recipe applies to its model: mixed precision, activation checkpointing, torch.compile of the
towers, the fused vatt ops on or off, and scaled_dot_product_attention or the explicit attention. Each one leaves
the parameters and their state-dict names unchanged, so checkpoints move freely between runs with and without them.
"""
from __future__ import annotations

import contextlib
import functools
from typing import ContextManager, Iterator

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def autocast(device: torch.device, precision: str) -> ContextManager:
    """The context a forward pass runs in: bf16 autocast (matmuls and attention in bf16, reductions and norms
    in float32, as torch's autocast lists say) or nothing for fp32."""
    check_precision(precision)
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def transformer_blocks(model: nn.Module) -> Iterator[nn.Module]:
    """Every transformer layer of the model: the entries of each ``blocks`` ModuleList (the backbones keep their
    layers there). A shared backbone's layers come once."""
    for module in model.modules():  # modules() visits a shared module once
        blocks = getattr(module, "blocks", None)
        if isinstance(blocks, nn.ModuleList):
            yield from blocks


def checkpoint_activations(model: nn.Module) -> nn.Module:
    """Recompute each transformer layer's activations in backward instead of keeping them (less memory, about
    a third more compute). The layers stay where they are, so the state dict is unchanged."""
    for block in transformer_blocks(model):
        forward = type(block).forward.__get__(block)
        block.forward = functools.partial(checkpoint, forward, use_reentrant=False)
    return model


def compile_towers(model: nn.Module, backend: str = "inductor") -> nn.Module:
    """torch.compile each tower of a MultimodalModel in place (``nn.Module.compile``, which keeps the state dict's
    names). The towers are where the time goes; heads and losses stay eager, so a batch without some modality
    or a different loss never recompiles a tower."""
    towers = getattr(model, "towers", None)
    if not isinstance(towers, nn.ModuleDict):
        raise ValueError(f"compile_towers needs a model with a `towers` ModuleDict, got {type(model).__name__}")
    for tower in towers.values():
        tower.compile(backend=backend)
    return model


def apply_switches(model: nn.Module, *, fused_ops: bool, sdpa: bool, compile: bool, activation_checkpointing: bool,
                   losses: list = ()) -> None:
    """A run's speed switches on its model (and loss objects): fused vatt ops, SDPA attention, activation
    checkpointing of every transformer layer, torch.compile of each tower."""
    set_fused_ops([*model.modules(), *losses], fused_ops)
    set_sdpa(model, sdpa)
    if activation_checkpointing:
        checkpoint_activations(model)
    if compile:
        compile_towers(model)


def set_fused_ops(modules: nn.Module | list, enabled: bool) -> int:
    """Switch the fused vatt ops on or off in every module (and loss object) that can use them.

    A part that can run either on the fused ops of `vatt.ops` or on plain PyTorch says so with a boolean
    attribute ``fused_ops``; this sets it. Returns how many parts were switched.
    """
    return _switch(modules, "fused_ops", enabled)


def set_sdpa(modules: nn.Module | list, enabled: bool) -> int:
    """Switch every attention layer between ``F.scaled_dot_product_attention`` (its fused flash /
    memory-efficient kernels) and the explicit softmax(QKᵀ/√d)V of plain PyTorch ops.

    An attention layer that can run either way says so with a boolean attribute ``sdpa``; this sets it. Returns
    how many layers were switched. The parameters are the same either way.
    """
    return _switch(modules, "sdpa", enabled)


def _switch(modules: nn.Module | list, flag: str, enabled: bool) -> int:
    """Set the boolean attribute ``flag`` of every part (a module's submodules, or the listed objects) that has
    one; returns how many were set."""
    parts = list(modules.modules()) if isinstance(modules, nn.Module) else list(modules)
    switchable = [part for part in parts if isinstance(getattr(part, flag, None), bool)]
    for part in switchable:
        setattr(part, flag, enabled)
    return len(switchable)
