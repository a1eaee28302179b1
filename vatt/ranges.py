"""The few value checks of settings that types can't express: ranges, declared where each field is declared.

A settings dataclass writes ``steps: int = at_least(1, 1000)`` or ``share: float = within(0.0, 1.0, 0.01)``;
`range_problems` reads those declarations back and names each value outside its range by its config key,
so a config is refused before anything is built rather than failing mid-run (a ``log_every`` of 0 divides by
zero at the first step, a negative ``eval_every`` evaluates after every step).
"""
from __future__ import annotations

import dataclasses
import math
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


def require(low: float | None = None, high: float | None = None, *, above: float | None = None,
            below: float | None = None, whole: bool = False, **values: Any) -> None:
    """ValueError naming the first of ``values`` (name=value) that is not a finite number (a whole one with
    ``whole``, an int) in [``low``, ``high``] and in (``above``, ``below``); any bound may be left open, and None
    as a value (an optional setting left out) is always fine.

    Types of constructor arguments are the registry's to check, from signatures; this is the one helper for the
    value rules a type cannot say, used by components that Python code may also build directly.
    """
    for name, value in values.items():
        if value is None:
            continue
        number = isinstance(value, int if whole else (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)
        if number and (low is None or value >= low) and (high is None or value <= high) \
                and (above is None or value > above) and (below is None or value < below):
            continue
        bounds = [f"{sign} {bound}" for sign, bound in ((">=", low), ("<=", high), (">", above), ("<", below))
                  if bound is not None]
        what = "an int" if whole else "a finite number"
        raise ValueError(f"{name} must be {what}{' ' + ' and '.join(bounds) if bounds else ''}, got {shown(value)}")
