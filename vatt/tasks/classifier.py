"""Fine-tuning one pre-trained tower with a classifier: the recipe (`fine_tune`) and its pieces.

`fine_tune` reads top to bottom: labelled data → the tower model, loaded from a pre-training checkpoint by
name → speed switches and data parallelism → optimiser and schedule, the tower's and the classifier's
gradients clipped apart → the Loop → evaluation and results. The tasks that use it (finetune.py for video,
audio_finetune.py, a plugin's image recipe) say only what is theirs: the head, the training loss, whether
labels are multi-hot, and the clipping norms.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from vatt.data.loader import make_loader
from vatt.data.sampler import StepBatchSampler
from vatt.data.workers import describe
from vatt.engine import distributed, speed
from vatt.engine.parallel import data_parallel
from vatt.engine.trainer import Loop
from vatt.errors import ConfigError
from vatt.tasks import builders
from vatt.tasks.base import settings
from vatt.tasks.checkpoint_init import INIT_REPORT, load_by_name, read_checkpoint
from vatt.tasks.run_dir import fit_and_report, loop_settings, training_run_dir, training_session
from vatt.tasks.settings import ClassifierSettings, DataSettings, RunSettings, TowerSettings, check_run, check_tower

LossFn = Callable[[nn.Module, dict], tuple]  # (network, batch) -> (loss, scalars to log)
# what a classifier task passes to the components its config names (Task.injected)
INJECTED = {"tokenizers": {"dim"}, "optimizers": {"params"}, "schedules": {"base_lr", "total_steps"},
            "evaluators": set(builders.EVALUATOR_DATASETS)}


def classifier_sections(training: type) -> dict[str, type | None]:
    """A classifier task's config sections (Task.sections), ``training`` holding its own settings."""
    return {"run": RunSettings, "data": DataSettings, "model": ClassifierSettings, "training": training,
            "optimizer": None, "schedule": None, "evaluators": None}


def fine_tune(cfg: dict, config_path: Path | None, *, build_model: Callable[[dict], nn.Module], loss_fn: LossFn,
              multi_hot: bool, tower_max_norm: float | None, classifier_max_norm: float | None) -> dict:
    """Train the network ``build_model(cfg)`` makes (the task's tower and classifier) on ``loss_fn``, evaluate
    it with the config's evaluators and report; returns the results (main process; {} elsewhere)."""
    run, data = settings(RunSettings, cfg, "run"), settings(DataSettings, cfg, "data")
    model = settings(ClassifierSettings, cfg, "model")
    with training_session(run) as device:
        run_dir = training_run_dir(run.dir, run.batch_size, config_path, cfg)
        torch.manual_seed(run.seed)  # the classifier's initial weights, the same on every process
        with distributed.main_process_first():
            train_set = builders.build_dataset(data.train, "data.train")
            eval_set = builders.build_dataset(data.eval, "data.eval")
        builders.check_fills_a_batch(train_set, "data.train", run.batch_size)
        check_num_classes(model.num_classes, train=train_set, eval=eval_set)

        network = build_model(cfg)
        trained = pretrained_classifier(network, model, run, device, run_dir)
        optimizer, schedule = builders.build_optimisation(cfg, trained.parameters(), run.steps)
        clip_before_step(optimizer, list(network.towers.parameters()), tower_max_norm)
        clip_before_step(optimizer, list(network.heads.parameters()), classifier_max_norm)
        evaluators = builders.build_evaluators(cfg)

        def evaluate(step: int) -> dict:  # on every process: a sharded model needs all of them
            return {k: v for evaluator in evaluators for k, v in evaluator.run(network, eval_set).items()}

        batches = labelled_batches(train_set, batch_size=run.batch_size, seed=run.seed, num_workers=data.num_workers,
                                   num_classes=model.num_classes, multi_hot=multi_hot,
                                   max_failed_share=data.max_failed_share)
        loop = Loop(model=trained, loss_fn=loss_fn, optimizer=optimizer, schedule=schedule, batches=batches,
                    run_dir=str(run_dir), device=device, evaluate=evaluate if evaluators else None,
                    settings=loop_settings(run))
        return fit_and_report(loop, run)


class ClassifierHead(nn.Module):
    """Dropout, then a linear map from the [AGG] feature to the class logits: ``{"logits": [B, C]}``."""

    def __init__(self, *, in_dim: int, num_classes: int, dropout: float = 0.0, bias_init: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, num_classes)
        nn.init.constant_(self.linear.bias, bias_init)

    def forward(self, feature: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.linear(self.dropout(feature))}  # [B, C]


def check_classifier(cfg: dict) -> list[str]:
    """What a classifier recipe's config needs beyond its types: the tower, the run, the data, the classes."""
    problems = check_tower(cfg) + check_run(cfg)
    classes = (cfg.get("model") or {}).get("num_classes")
    if isinstance(classes, int) and classes < 1:
        problems.append(f"model.num_classes: must be positive, got {classes}")
    return problems + [f"{key}: missing" for key in ("optimizer", "schedule") if not isinstance(cfg.get(key), dict)]


def classifier_model(model: ClassifierSettings, bias_init: float = 0.0) -> nn.Module:
    """The tower ``model`` describes with its ClassifierHead (``bias_init``: the logits' initial bias)."""
    return build_tower_model(model, lambda width: ClassifierHead(in_dim=width, num_classes=model.num_classes,
                                                                 dropout=model.classifier_dropout,
                                                                 bias_init=bias_init))


def build_tower_model(model: TowerSettings, head: Callable[[int], nn.Module] | None = None):
    """A MultimodalModel of the one tower a downstream task uses, with ``head(feature width)`` if given."""
    from vatt.models.multimodal import MultimodalModel
    tower = builders.build_tower(model.tokenizer, model.backbone, "model", droptoken=model.droptoken,
                                 post_projection=model.post_projection)
    heads = {} if head is None else {model.modality: head(tower.out_dim)}
    return MultimodalModel({model.modality: tower}, heads)


def init_tower(network: nn.Module, model: TowerSettings, run_dir: Path | None) -> Path:
    """Load the tower from ``model.init`` by name; the report goes to stderr and the run directory (when
    given: the main process's). Returns the checkpoint file that was read (a run directory's latest)."""
    source, state = read_checkpoint(model.init, "model.init")
    origin = model.init_modality or model.modality
    report = load_by_name(network, state, {f"towers.{origin}.": f"towers.{model.modality}."}, source=str(source))
    if run_dir is not None:
        print(report.describe(), file=sys.stderr)
        report.write(run_dir / INIT_REPORT)
    return source


def pretrained_classifier(network: nn.Module, model: ClassifierSettings, run: RunSettings, device: torch.device,
                          run_dir: Path) -> nn.Module:
    """``network`` with its tower loaded from ``model.init``, moved to ``device`` with the run's speed switches;
    returns what trains it (``network`` itself, or its data-parallel wrapper)."""
    if model.init:  # a resumed run overwrites this with its own checkpoint
        init_tower(network, model, run_dir if distributed.is_main_process() else None)
    else:
        print("warning: model.init is null: the tower trains from scratch", file=sys.stderr)
    network.to(device)
    speed.apply_switches(network, fused_ops=run.fused_ops, sdpa=run.sdpa, compile=run.compile,
                         activation_checkpointing=run.activation_checkpointing)
    return data_parallel(network, run.parallel, device)


def smoothed_cross_entropy(modality: str, label_smoothing: float):
    """The training loss: cross-entropy with label smoothing on the classifier's logits; logs top-1."""
    def loss_fn(network: nn.Module, batch: dict):
        logits = network(batch, modalities=(modality,))[modality]["logits"]  # [B, C]
        loss = F.cross_entropy(logits.float(), batch["label"], label_smoothing=label_smoothing)
        return loss, {"train/top1": float((logits.argmax(-1) == batch["label"]).float().mean())}
    return loss_fn


def check_num_classes(num_classes: int, **datasets) -> None:
    for where, dataset in datasets.items():
        declared = getattr(dataset, "num_classes", None)
        if declared is not None and declared != num_classes:
            raise ConfigError([f"model.num_classes: {num_classes}, but data.{where} has {declared} classes"])


def clip_before_step(optimizer: torch.optim.Optimizer, params: list[nn.Parameter], max_norm: float | None) -> None:
    """Clip the gradients of ``params`` alone to ``max_norm`` just before each optimizer step."""
    def clip(*_) -> None:
        nn.utils.clip_grad_norm_(params, max_norm)

    if max_norm:
        optimizer.register_step_pre_hook(clip)


def labelled_batches(dataset, *, batch_size: int, seed: int, num_workers: int, num_classes: int,
                     multi_hot: bool, max_failed_share: float = 0.01) -> Callable[[int], Iterator[dict]]:
    """The Loop's ``batches`` (this process's share of each global batch), their labels checked first."""
    def batches(start_step: int):
        loader = make_loader(dataset, batch_size=batch_size, seed=seed, start_step=start_step,
                             num_workers=num_workers, max_failure_rate=max_failed_share,
                             shard=distributed.ShardedBatchSampler)
        for step, batch in enumerate(loader, start_step):
            if not labels_fit(batch, num_classes, multi_hot):
                keys = StepBatchSampler(len(dataset), batch_size, seed=seed, keyed=True).batch_keys(step)
                raise ConfigError([bad_label(dataset, keys, num_classes, multi_hot)])
            yield batch
    return batches


def labels_fit(batch: dict, num_classes: int, multi_hot: bool) -> bool:
    if multi_hot and "labels" in batch:
        return batch["labels"].shape[-1] == num_classes
    labels = batch.get("label")
    return labels is not None and bool(((labels >= 0) & (labels < num_classes)).all())


def bad_label(dataset, keys: list, num_classes: int, multi_hot: bool) -> str:
    """Which sample of a batch does not fit the classifier, named by its file (read again to find it)."""
    for key in keys:
        sample = dataset[key]
        if multi_hot and "labels" in sample:
            if sample["labels"].shape[-1] != num_classes:
                return (f"data.train: {describe(dataset, key)} has {sample['labels'].shape[-1]} multi-hot classes, "
                        f"but model.num_classes is {num_classes}")
        elif "label" not in sample:
            return f"data.train: {describe(dataset, key)} has no 'label'; its keys are {sorted(sample)}"
        elif int(sample["label"]) == -1:
            return f"data.train: {describe(dataset, key)} has no label (-1) in a labelled training set"
        elif not 0 <= int(sample["label"]) < num_classes:
            return (f"data.train: {describe(dataset, key)} has label {int(sample['label'])}, outside "
                    f"model.num_classes = {num_classes} ([0, {num_classes}))")
    return f"data.train: a batch's labels do not fit model.num_classes = {num_classes}"
