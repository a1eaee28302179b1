"""Contrastive pre-training of VATT (NCE between video and audio, MIL-NCE between video and text).

The recipe, top to bottom: processes → data → model → speed switches → data parallelism → losses → optimiser
and schedule → resume → train → evaluate. ``torchrun --nproc_per_node=N -m vatt.run CONFIG`` runs it on N
processes: ``run.batch_size`` is the global batch, split evenly over them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vatt.data.loader import make_loader
from vatt.engine import distributed, speed
from vatt.engine.parallel import data_parallel
from vatt.engine.trainer import Loop
from vatt.registry import register
from vatt.tasks import builders, examples
from vatt.tasks.base import Task, mapping, settings
from vatt.tasks.run_dir import fit_and_report, loop_settings, training_run_dir, training_session
from vatt.tasks.settings import DataSettings, RunSettings, check_run

NO_DATA = ("data.train: no training data is configured. Either point it at a dataset, or try the embedded "
           "synthetic one: data.train.type=synthetic (see README, 'Configs and overrides', for the keys that "
           "size it for this model)")


@register("tasks", "pretrain", example=examples.PRETRAIN)
class Pretrain(Task):
    """Self-supervised pre-training with NCE (video-audio) and MIL-NCE (video-text)."""

    sections = {"run": RunSettings, "data": DataSettings, "model": None, "losses": None,
                "optimizer": None, "schedule": None, "evaluators": None}
    reserved = {"losses": {"inputs", "weight"}}
    injected = {"tokenizers": {"dim"}, "heads": {"in_dim"}, "optimizers": {"params"},
                "schedules": {"base_lr", "total_steps"}, "evaluators": set(builders.EVALUATOR_DATASETS)}

    def check(self, cfg: dict) -> list[str]:
        problems = builders.check_model(cfg.get("model"))
        modalities = mapping(mapping(cfg.get("model")).get("modalities"))
        problems += builders.check_losses(cfg.get("losses"), modalities)
        for key in ("optimizer", "schedule"):
            if not isinstance(cfg.get(key), dict):
                problems.append(f"{key}: missing")
        return problems + check_run(cfg)

    def check_data(self, cfg: dict) -> list[str]:
        data = cfg.get("data") or {}
        problems = [NO_DATA] if data.get("train") is None else []
        if cfg.get("evaluators") and data.get("eval") is None:
            problems.append("data.eval: the evaluators need a held-out dataset here")
        return problems

    def build_model(self, cfg: dict) -> torch.nn.Module:
        return builders.build_model(cfg["model"])

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        run, data = settings(RunSettings, cfg, "run"), settings(DataSettings, cfg, "data")
        with training_session(run) as device:
            run_dir = training_run_dir(run.dir, run.batch_size, config_path, cfg)
            torch.manual_seed(run.seed)  # initial weights, the same on every process
            with distributed.main_process_first():  # a dataset that builds a cache builds it once
                train_set = builders.build_dataset(data.train, "data.train")
                eval_set = builders.build_dataset(data.eval, "data.eval") if data.eval else None
            builders.check_fills_a_batch(train_set, "data.train", run.batch_size)

            model = builders.build_model(cfg["model"]).to(device)
            terms = builders.build_losses(cfg["losses"])
            speed.apply_switches(model, fused_ops=run.fused_ops, sdpa=run.sdpa, compile=run.compile,
                                 activation_checkpointing=run.activation_checkpointing, losses=[t.fn for t in terms])
            trained = data_parallel(model, run.parallel, device)  # the model itself on one process
            optimizer, schedule = builders.build_optimisation(cfg, trained.parameters(), run.steps)
            with distributed.main_process_first():  # an evaluator's own datasets (a linear probe's training set)
                evaluators = builders.build_evaluators(cfg)

            def batches(start_step: int):
                # every process walks the same global batches and loads only its own slice of each
                return make_loader(train_set, batch_size=run.batch_size, seed=run.seed, start_step=start_step,
                                   num_workers=data.num_workers, max_failure_rate=data.max_failed_share,
                                   shard=distributed.ShardedBatchSampler,
                                   pin_memory=device.type == "cuda")  # pinned: the copy to the GPU overlaps compute

            def loss_fn(model, batch):
                return builders.total_loss(terms, model(batch), batch)

            def evaluate(step: int) -> dict:  # on every process: a sharded model needs all of them to run
                return {k: v for evaluator in evaluators for k, v in evaluator.run(model, eval_set).items()}

            loop = Loop(model=trained, loss_fn=loss_fn, optimizer=optimizer, schedule=schedule, batches=batches,
                        run_dir=str(run_dir), device=device, evaluate=evaluate if evaluators else None,
                        settings=loop_settings(run))
            return fit_and_report(loop, run)
