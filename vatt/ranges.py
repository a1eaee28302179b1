"""The few value checks of settings that types can't express: ranges, declared where each field is declared.

A settings dataclass writes ``steps: int = at_least(1, 1000)`` or ``share: float = within(0.0, 1.0, 0.01)``;
`range_problems` reads those declarations back and names each value outside its range by its config key,
so a config is refused before anything is built rather than failing mid-run (a ``log_every`` of 0 divides by
zero at the first step, a negative ``eval_every`` evaluates after every step).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from vatt.messages import shown

RANGE = "vatt.range"  # the key of a field's metadata that holds its (low, high, hint)


def at_least(low: float, default: Any, hint: str = "") -> Any:
    """A dataclass field whose value must be ``low`` or more (None, for an optional setting, is always fine)."""
    return dataclasses.field(default=default, metadata={RANGE: (low, None, hint)})


def within(low: float, high: float, default: Any, hint: str = "") -> Any:
    """A dataclass field whose value must lie in [``low``, ``high``]."""
    return dataclasses.field(default=default, metadata={RANGE: (low, high, hint)})


def range_problems(schema: type, values: dict, where: str) -> list[str]:
    """Every value of ``values`` outside the range its field of ``schema`` declares, named ``where.key``.
    Values that are not numbers are left to the type checks."""
    problems = []
    for spec in dataclasses.fields(schema):
        value = values.get(spec.name)
        if RANGE not in spec.metadata or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low, high, hint = spec.metadata[RANGE]
        if low <= value and (high is None or value <= high):
            continue
        bound = f"at least {low}" if high is None else f"in [{low}, {high}]"
        problems.append(f"{where}.{spec.name}: must be {bound}{f' ({hint})' if hint else ''}, got {shown(value)}")
    return problems
