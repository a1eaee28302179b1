"""Registered optimizers and learning-rate schedules.

Optimizers are factories ``name(params, **kwargs)``: the task injects ``params``, the config sets the rest.
Schedules are stateless callables ``schedule(step) -> lr``; the trainer applies the value with ``set_lr``
before each optimizer step. Being pure functions of the step, they need no state in a checkpoint: a resumed
run simply continues calling them from its restored step. ``base_lr`` and ``total_steps`` are keyword
arguments so a task can inject them from its recipe.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch

from vatt.ranges import require
from vatt.registry import register

# Device types whose fused Adam/AdamW/SGD kernels we rely on. XLA is absent on purpose: it has none, and
# torch's own default (no fused, no foreach) is what it wants.
_FUSED_DEVICE_TYPES = ("cuda", "xpu", "cpu")
_PERIODS = ("quarter", "half")


def _materialise(params: Iterable) -> list:
    """Turn a one-shot iterator (``model.parameters()``) into a list we can inspect and still hand to torch."""
    params = list(params)
    if not params:
        raise ValueError("params is empty: the optimizer has nothing to train")
    return params


def _tensors_of(params: list) -> list[torch.Tensor]:
    """Every tensor in params, which torch accepts as tensors, (name, tensor) pairs or param-group dicts."""
    tensors = []
    for item in params:
        if isinstance(item, dict):
            tensors.extend(_tensors_of(list(item["params"])))
        elif isinstance(item, tuple):
            tensors.append(item[1])
        else:
            tensors.append(item)
    return tensors


def _resolve_fused(fused: bool | None, params: list) -> bool | None:
    """``fused=None`` means: fused kernels when every parameter sits where they exist, else torch's default
    (which picks foreach on accelerators). True and False are passed through for torch to enforce."""
    if fused is not None:
        return fused
    tensors = _tensors_of(params)
    supported = all(t.device.type in _FUSED_DEVICE_TYPES and torch.is_floating_point(t) for t in tensors)
    return True if supported else None


@register("optimizers", "adam", example={"lr": 1e-4})
def adam(params: Iterable, *, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0, fused: bool | None = None) -> torch.optim.Adam:
    """Adam with L2 weight decay added to the gradient (the pre-training optimizer: lr 1e-4)."""
    return _adam_family(torch.optim.Adam, params, lr, betas, eps, weight_decay, fused)


@register("optimizers", "adamw", example={"lr": 1e-4})
def adamw(params: Iterable, *, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 1e-2, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW: Adam with weight decay decoupled from the gradient."""
    return _adam_family(torch.optim.AdamW, params, lr, betas, eps, weight_decay, fused)


def _adam_family(cls, params, lr, betas, eps, weight_decay, fused):
    require(0, lr=lr)
    require(above=0, eps=eps)
    require(0, weight_decay=weight_decay)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    require(0, below=1, **{"betas[0]": betas[0]})
    require(0, below=1, **{"betas[1]": betas[1]})
    params = _materialise(params)
    return cls(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
               fused=_resolve_fused(fused, params))


@register("optimizers", "sgd", example={"lr": 0.005})
def sgd(params: Iterable, *, lr: float, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0,
        fused: bool | None = None) -> torch.optim.SGD:
    """SGD with momentum (the fine-tuning optimizer: momentum 0.9)."""
    require(0, lr=lr)
    require(0, momentum=momentum)
    require(0, weight_decay=weight_decay)
    if nesterov and momentum == 0:
        raise ValueError(f"nesterov=True needs momentum > 0, got momentum={momentum!r}")
    params = _materialise(params)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                           fused=_resolve_fused(fused, params))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group of ``optimizer``."""
    require(0, lr=lr)
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)  # a tensor lr (capturable/compiled steps) must stay the same tensor
        else:
            group["lr"] = lr


def _warmup(step: int, base_lr: float, warmup_steps: int) -> float:
    """Linear ramp from 0 at step 0 to base_lr at step warmup_steps."""
    return base_lr * step / warmup_steps


@register("schedules", "warmup_cosine", example={"base_lr": 1e-4, "warmup_steps": 10, "total_steps": 100})
class WarmupCosine:
    """Linear warm-up from 0 to ``base_lr``, then cosine decay from ``base_lr`` to ``end_lr`` at ``total_steps``.

    With p the fraction of the decay done: ``period="quarter"`` gives end + (base − end)·cos(π/2·p) (the
    pre-training recipe, 1e-4 → 5e-5); ``period="half"`` gives end + (base − end)·(1 + cos(π·p))/2 (the
    fine-tuning recipes, to 0). Steps past ``total_steps`` stay at ``end_lr``.
    """

    def __init__(self, *, base_lr: float, total_steps: int, warmup_steps: int = 0, end_lr: float = 0.0,
                 period: str = "quarter"):
        require(0, base_lr=base_lr)
        require(0, end_lr=end_lr)
        require(1, whole=True, total_steps=total_steps)
        # a warm-up longer than the run is allowed: short trial runs of a long recipe end inside it
        require(0, whole=True, warmup_steps=warmup_steps)
        if period not in _PERIODS:
            raise ValueError(f"period must be one of {', '.join(_PERIODS)}, got {period!r}")
        self.base_lr = base_lr
        self.end_lr = end_lr
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.period = period

    def __call__(self, step: int) -> float:
        require(0, whole=True, step=step)
        if step < self.warmup_steps:
            return _warmup(step, self.base_lr, self.warmup_steps)
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        p = min(1.0, (step - self.warmup_steps) / decay_steps)
        if self.period == "quarter":
            shape = math.cos(0.5 * math.pi * p)
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * p))
        return self.end_lr + (self.base_lr - self.end_lr) * shape

    def __repr__(self) -> str:
        return (f"WarmupCosine(base_lr={self.base_lr}, end_lr={self.end_lr}, warmup_steps={self.warmup_steps}, "
                f"total_steps={self.total_steps}, period={self.period!r})")


@register("schedules", "constant", example={"base_lr": 1e-4})
class Constant:
    """``base_lr`` after an optional linear warm-up from 0 over ``warmup_steps``.

    ``total_steps`` is accepted because tasks inject it into every schedule; it is only checked.
    """

    def __init__(self, *, base_lr: float, warmup_steps: int = 0, total_steps: int | None = None):
        require(0, base_lr=base_lr)
        require(0, whole=True, warmup_steps=warmup_steps)
        if total_steps is not None:
            require(1, whole=True, total_steps=total_steps)
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        require(0, whole=True, step=step)
        if step < self.warmup_steps:
            return _warmup(step, self.base_lr, self.warmup_steps)
        return self.base_lr

    def __repr__(self) -> str:
        return f"Constant(base_lr={self.base_lr}, warmup_steps={self.warmup_steps})"
