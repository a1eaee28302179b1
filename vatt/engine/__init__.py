"""Shared training mechanics: checkpoints, run logging, optimizers and schedules, distributed helpers.

Importing the package imports ``optim`` so its optimizers and schedules are registered.
"""
from vatt.engine import optim  # noqa: F401  registers "optimizers" and "schedules"
