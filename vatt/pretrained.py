"""``vatt.load_pretrained(PATH)``: a ready model from a converted release checkpoint or a training run.

Both kinds of directory hold a ``config.yaml`` (the converter's, or the run's resolved config) and weights (the
converter's ``model.safetensors``, or the run's latest checkpoint), so the two are used the same way.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from vatt import config as cfglib
from vatt.engine.weights import load_weights
from vatt.errors import UserError
from vatt.registry import registry
from vatt.tasks.checkpoint_init import read_checkpoint

CONFIG_NAME = "config.yaml"


def load_pretrained(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The model of ``path`` in eval mode, on ``device``: ``model(batch)`` gives ``{modality: {space: z}}``,
    ``model.features(batch)`` the pooled [AGG] features and ``model.encode(batch)`` every token's.

    ``path`` is a directory written by ``python -m vatt.convert`` or a run directory of ``python -m
    vatt.run``. Raises UserError (a one-screen message) when it is neither or its weights do not fit its
    config.
    """
    path = Path(path).expanduser()
    config = path / CONFIG_NAME
    if not config.is_file():
        raise UserError(f"{path}: no {CONFIG_NAME} here; give a directory written by python -m vatt.convert or a "
                        f"run directory of python -m vatt.run")
    cfg = cfglib.load(config)
    task_name = cfg.get("task")
    if not isinstance(task_name, str):
        raise UserError(f"{config}: 'task' must name a registered task")
    task = registry("tasks").get(task_name, where=f"{config}: task").obj()
    task.validate(cfg, source=str(config), need_data=False)
    model = task.build_model(cfg)
    source, state = read_checkpoint(path, "load_pretrained")
    load_weights(model, state, str(source))
    return model.to(device).eval()
