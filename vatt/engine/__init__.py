"""Shared training mechanics: the training loop, checkpoints, run logging, optimizers and schedules,
distributed helpers."""
