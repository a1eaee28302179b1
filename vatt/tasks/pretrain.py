"""Contrastive pre-training of VATT (NCE between video and audio, MIL-NCE between video and text).

The recipe, top to bottom: data → model → losses → optimiser and schedule → resume → train → evaluate.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from vatt import config as cfglib
from vatt.data.sampler import StepBatchSampler, collate
from vatt.engine.logging import RunLogger
from vatt.engine.trainer import Loop
from vatt.registry import build, register
from vatt.tasks import builders
from vatt.tasks.base import Task, settings
from vatt.tasks.run_dir import prepare_run_dir, resolve_device


@dataclass
class RunSettings:
    dir: str | None = None           # default: runs/<config file name>
    seed: int = 0
    steps: int = 1000
    batch_size: int = 32
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    eval_every: int = 0              # 0: evaluate only at the end
    device: str = "cpu"              # cpu, cuda, cuda:1, or auto
    threads: int | None = None       # torch intra-op threads; None keeps torch's default
    max_grad_norm: float | None = None
    tensorboard: bool = True


@dataclass
class DataSettings:
    train: dict | None = None        # a dataset node
    eval: dict | None = None         # the held-out dataset evaluators read
    num_workers: int = 0


NO_DATA = ("data.train: no training data is configured. Either point it at a dataset, or try the embedded "
           "synthetic one: data.train.type=synthetic (see README, 'Configs and overrides', for the keys that "
           "size it for this model)")


@register("tasks", "pretrain")
class Pretrain(Task):
    """Self-supervised pre-training with NCE (video-audio) and MIL-NCE (video-text)."""

    sections = {"run": RunSettings, "data": DataSettings, "model": None, "losses": None,
                "optimizer": None, "schedule": None, "evaluators": None}
    reserved = {"losses": {"inputs", "weight"}}
    injected = {"tokenizers": {"dim"}, "heads": {"in_dim"}, "optimizers": {"params"},
                "schedules": {"base_lr", "total_steps"}}

    def check(self, cfg: dict) -> list[str]:
        problems = builders.check_model(cfg.get("model"))
        modalities = (cfg.get("model") or {}).get("modalities") or {}
        problems += builders.check_losses(cfg.get("losses"), modalities)
        for key in ("optimizer", "schedule"):
            if not isinstance(cfg.get(key), dict):
                problems.append(f"{key}: missing")
        return problems

    def check_data(self, cfg: dict) -> list[str]:
        data = cfg.get("data") or {}
        problems = [NO_DATA] if data.get("train") is None else []
        if cfg.get("evaluators") and data.get("eval") is None:
            problems.append("data.eval: the evaluators need a held-out dataset here")
        return problems

    def summary(self, cfg: dict) -> dict[str, Any]:
        with torch.device("meta"):  # counts parameters without allocating them
            model = builders.build_model(cfg["model"])
        return {"task": "pretrain", "parameters": model.parameter_counts()}

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        run = settings(RunSettings, cfg, "run")
        data = settings(DataSettings, cfg, "data")
        device = resolve_device(run.device)
        if run.threads:
            torch.set_num_threads(run.threads)
        run_dir = prepare_run_dir(run.dir, config_path, cfg)
        torch.manual_seed(run.seed)  # initial weights

        train_set = builders.build_dataset(data.train, "data.train")
        eval_set = builders.build_dataset(data.eval, "data.eval") if data.eval else None
        model = builders.build_model(cfg["model"]).to(device)
        terms = builders.build_losses(cfg["losses"])
        optimizer = build("optimizers", cfg["optimizer"], "optimizer", params=model.parameters())
        base_lr = optimizer.param_groups[0]["lr"]
        schedule = build("schedules", cfg["schedule"], "schedule", base_lr=base_lr, total_steps=run.steps)
        evaluators = [build("evaluators", node, f"evaluators.{i}")
                      for i, node in enumerate(cfg.get("evaluators") or [])]

        def batches(start_step: int):
            sampler = StepBatchSampler(len(train_set), run.batch_size, seed=run.seed, start_step=start_step)
            return iter(DataLoader(train_set, batch_sampler=sampler, collate_fn=collate,
                                   num_workers=data.num_workers))

        def loss_fn(model, batch):
            return builders.total_loss(terms, model(batch), batch)

        def evaluate(step: int) -> dict:
            metrics = {}
            for evaluator in evaluators:
                metrics.update(evaluator.run(model, eval_set))
            return metrics

        loop = Loop(model=model, loss_fn=loss_fn, optimizer=optimizer, schedule=schedule, batches=batches,
                    run_dir=str(run_dir), steps=run.steps, seed=run.seed, device=device,
                    checkpoint_every=run.checkpoint_every, keep_checkpoints=run.keep_checkpoints,
                    max_grad_norm=run.max_grad_norm, evaluate=evaluate, eval_every=run.eval_every)
        start = loop.resume()
        if start:
            print(f"resuming {run_dir} from step {start}", file=sys.stderr)
        loop.logger = RunLogger(run_dir, total_steps=run.steps, batch_size=run.batch_size,
                                tensorboard=run.tensorboard, print_every=run.log_every, start_step=start)
        try:
            loop.fit()
            results = evaluate(run.steps) if evaluators else {}
            if results:
                loop.logger.log_eval(run.steps, results)
            loop.logger.write_results(results)
        finally:
            loop.logger.close()
        return results
