"""Contrastive pre-training of VATT (NCE between video and audio, MIL-NCE between video and text).

The recipe, top to bottom: processes → data → model → speed switches → data parallelism → losses → optimiser
and schedule → resume → train → evaluate. ``torchrun --nproc_per_node=N -m vatt.run CONFIG`` runs it on N
processes: ``run.batch_size`` is the global batch, split evenly over them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vatt.data.loader import make_loader
from vatt.engine import distributed, speed
from vatt.engine.parallel import PARALLEL_MODES, data_parallel
from vatt.messages import shown
from vatt.ranges import at_least, within
from vatt.registry import build, register
from vatt.tasks import builders
from vatt.tasks.base import Task, mapping, settings
from vatt.tasks.run_dir import resolve_device, train_and_report, training_run_dir


@dataclass
class RunSettings:
    dir: str | None = None           # default: runs/<config file name>
    seed: int = at_least(0, 0)
    steps: int = at_least(1, 1000)
    batch_size: int = at_least(1, 32)  # the global batch, over all processes
    log_every: int = at_least(1, 10)
    checkpoint_every: int = at_least(1, 500)
    keep_checkpoints: int = at_least(1, 3)
    eval_every: int = at_least(0, 0, "0 evaluates only at the end")
    device: str = "cpu"              # cpu, cuda, cuda:1, or auto
    threads: int | None = at_least(1, None)  # torch intra-op threads; None keeps torch's default
    max_grad_norm: float | None = None
    tensorboard: bool = True
    max_bad_steps: int = at_least(1, 10)  # steps in a row with a NaN/Inf loss (each skipped) before the run stops
    # several processes (torchrun): how the model is spread, and how long a collective may wait for the others
    parallel: str = "ddp"            # ddp (replicas) or fsdp (FSDP2 fully_shard: sharded parameters)
    collective_timeout: float = 900.0  # seconds
    # speed switches
    precision: str = "fp32"          # fp32 or bf16 (autocast)
    fused_ops: bool = True           # the fused vatt ops where the model and losses can use them
    sdpa: bool = True                # F.scaled_dot_product_attention; False: explicit softmax(QKᵀ/√d)V
    compile: bool = False            # torch.compile each tower
    activation_checkpointing: bool = False  # recompute each transformer layer in backward (less memory)


@dataclass
class DataSettings:
    train: dict | None = None        # a dataset node
    eval: dict | None = None         # the held-out dataset evaluators read
    num_workers: int = at_least(0, 0, "0 reads the data in the main process")
    # share of the training samples that may fail to read before the run stops
    max_failed_share: float = within(0, 1, 0.01, "0.01 stops the run once 1 % of the samples failed to read")


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
                "schedules": {"base_lr", "total_steps"}, "evaluators": set(builders.EVALUATOR_DATASETS)}

    def check(self, cfg: dict) -> list[str]:
        problems = builders.check_model(cfg.get("model"))
        modalities = mapping(mapping(cfg.get("model")).get("modalities"))
        problems += builders.check_losses(cfg.get("losses"), modalities)
        for key in ("optimizer", "schedule"):
            if not isinstance(cfg.get(key), dict):
                problems.append(f"{key}: missing")
        run = cfg.get("run") or {}
        for key, allowed in (("parallel", PARALLEL_MODES), ("precision", tuple(speed.PRECISIONS))):
            if key in run and run[key] not in allowed:
                problems.append(f"run.{key}: must be one of {', '.join(allowed)}, got {shown(run[key])}")
        return problems

    def check_data(self, cfg: dict) -> list[str]:
        data = cfg.get("data") or {}
        problems = [NO_DATA] if data.get("train") is None else []
        if cfg.get("evaluators") and data.get("eval") is None:
            problems.append("data.eval: the evaluators need a held-out dataset here")
        return problems

    def build_model(self, cfg: dict) -> torch.nn.Module:
        return builders.build_model(cfg["model"])

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        run = settings(RunSettings, cfg, "run")
        if run.threads:
            torch.set_num_threads(run.threads)
        with distributed.process_group(resolve_device(run.device), run.collective_timeout) as device:
            return self.train(cfg, config_path, run, settings(DataSettings, cfg, "data"), device)

    def train(self, cfg: dict, config_path: Path | None, run: RunSettings, data: DataSettings,
              device: torch.device) -> dict[str, Any]:
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
        optimizer = build("optimizers", cfg["optimizer"], "optimizer", params=trained.parameters())
        base_lr = optimizer.param_groups[0]["lr"]
        schedule = build("schedules", cfg["schedule"], "schedule", base_lr=base_lr, total_steps=run.steps)
        with distributed.main_process_first():  # an evaluator's own datasets (a linear probe's training set)
            evaluators = [builders.build_evaluator(node, f"evaluators.{i}")
                          for i, node in enumerate(cfg.get("evaluators") or [])]

        def batches(start_step: int):
            # every process walks the same global batches and loads only its own slice of each
            return make_loader(train_set, batch_size=run.batch_size, seed=run.seed, start_step=start_step,
                               num_workers=data.num_workers, max_failure_rate=data.max_failed_share,
                               shard=distributed.ShardedBatchSampler,
                               pin_memory=device.type == "cuda")  # pinned: the copy to the GPU overlaps compute

        def loss_fn(model, batch):
            return builders.total_loss(terms, model(batch), batch)

        def evaluate(step: int) -> dict:
            metrics = {}
            for evaluator in evaluators:  # on every process: a sharded model needs all of them to run
                metrics.update(evaluator.run(model, eval_set))
            return metrics

        return train_and_report(run, run_dir, device, model=trained, loss_fn=loss_fn, optimizer=optimizer,
                                schedule=schedule, batches=batches, evaluate=evaluate if evaluators else None)
