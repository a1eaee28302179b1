"""Video fine-tuning (Kinetics-400/600, Moments in Time, UCF101, HMDB51), appendix B.5.

The recipe, top to bottom: labelled data → the video tower, loaded from a pre-training checkpoint by name
(positions resized with the release's spline when the crop grows: 8+14+14 → 8+20+20 buckets at 320²) → a fresh
linear classifier behind dropout → SGD with momentum 0.9, linear warm-up then a half-period cosine to 0,
cross-entropy with label smoothing 0.1, the backbone's gradients clipped to norm 0.75 (the release) →
evaluation over 4 clips × 3 crops per video with the logits averaged, top-1 and top-5.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from vatt.data.loader import describe, make_loader
from vatt.data.sampler import StepBatchSampler
from vatt.engine import distributed, speed
from vatt.engine.parallel import PARALLEL_MODES, data_parallel
from vatt.messages import shown
from vatt.registry import ConfigError, build, register
from vatt.tasks import builders
from vatt.tasks.base import Task, settings
from vatt.tasks.checkpoint_init import load_by_name, read_checkpoint
from vatt.tasks.pretrain import DataSettings, RunSettings
from vatt.tasks.run_dir import resolve_device, train_and_report, training_run_dir

INIT_REPORT = "init_report.json"
LossFn = Callable[[nn.Module, dict], tuple]  # (network, batch) -> (loss, scalars to log)


@dataclass
class TowerSettings:
    """The tower a downstream task uses, and the pre-training checkpoint it starts from."""
    tokenizer: dict
    backbone: dict
    modality: str = "video"
    init: str | None = None           # a checkpoint file or a pre-training run directory; None: from scratch
    init_modality: str | None = None  # the checkpoint's tower to load (default: modality)
    post_projection: int | None = None  # the modality-agnostic model's GELU Dense after its shared backbone
    droptoken: float = 0.0


@dataclass(kw_only=True)
class ClassifierSettings(TowerSettings):
    num_classes: int                  # must match the data's num_classes
    classifier_dropout: float = 0.5


@dataclass
class FineTuneSettings:
    label_smoothing: float = 0.1
    backbone_max_grad_norm: float | None = 0.75  # the tower's gradients alone (the release)
    classifier_max_grad_norm: float | None = None


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


def check_run(cfg: dict) -> list[str]:
    run = cfg.get("run") or {}
    return [f"run.{key}: must be one of {', '.join(allowed)}, got {shown(run[key])}"
            for key, allowed in (("parallel", PARALLEL_MODES), ("precision", tuple(speed.PRECISIONS)))
            if key in run and run[key] not in allowed]


def check_tower(cfg: dict) -> list[str]:
    rate = (cfg.get("model") or {}).get("droptoken", 0.0)
    if isinstance(rate, (int, float)) and not 0.0 <= rate < 1.0:
        return [f"model.droptoken: must be in [0, 1), got {rate}"]
    return []


def check_roots(data: dict, parts: tuple[str, ...]) -> list[str]:
    """Paper configs leave each dataset's ``root`` null: say which to set."""
    problems = []
    for part in parts:
        node = data.get(part)
        if node is None:
            problems.append(f"data.{part}: no dataset configured")
        elif isinstance(node, dict) and "root" in node and node["root"] is None:
            problems.append(f"data.{part}.root: where is your copy of {node.get('type')}? Set it, e.g. "
                            f"data.{part}.root=/data/{node.get('type')} (or try a configs/*_synthetic.yaml)")
    return problems


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


@register("tasks", "finetune")
class FineTune(Task):
    """Fine-tune a pre-trained video tower with a linear classifier; multi-view top-1/top-5."""

    sections = {"run": RunSettings, "data": DataSettings, "model": ClassifierSettings,
                "training": FineTuneSettings, "optimizer": None, "schedule": None, "evaluators": None}
    injected = {"tokenizers": {"dim"}, "optimizers": {"params"}, "schedules": {"base_lr", "total_steps"},
                "evaluators": set(builders.EVALUATOR_DATASETS)}
    multi_hot = False  # whether training samples may carry multi-hot 'labels'

    def check(self, cfg: dict) -> list[str]:
        problems = check_tower(cfg) + check_run(cfg)
        classes = (cfg.get("model") or {}).get("num_classes")
        if isinstance(classes, int) and classes < 1:
            problems.append(f"model.num_classes: must be positive, got {classes}")
        problems += [f"{key}: missing" for key in ("optimizer", "schedule") if not isinstance(cfg.get(key), dict)]
        return problems

    def check_data(self, cfg: dict) -> list[str]:
        return check_roots(cfg.get("data") or {}, ("train", "eval"))

    def classifier(self, model: ClassifierSettings, in_dim: int) -> nn.Module:
        return ClassifierHead(in_dim=in_dim, num_classes=model.num_classes, dropout=model.classifier_dropout)

    def training_loss(self, training, model: ClassifierSettings) -> LossFn:
        """Cross-entropy with label smoothing on the classifier's logits."""
        modality = model.modality

        def loss_fn(network: nn.Module, batch: dict):
            logits = network(batch, modalities=(modality,))[modality]["logits"]  # [B, C]
            loss = F.cross_entropy(logits.float(), batch["label"], label_smoothing=training.label_smoothing)
            return loss, {"train/top1": float((logits.argmax(-1) == batch["label"]).float().mean())}
        return loss_fn

    def build_model(self, cfg: dict) -> nn.Module:
        model = settings(ClassifierSettings, cfg, "model")
        return build_tower_model(model, lambda width: self.classifier(model, width))

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        run = settings(RunSettings, cfg, "run")
        if run.threads:
            torch.set_num_threads(run.threads)
        with distributed.process_group(resolve_device(run.device), run.collective_timeout) as device:
            return self.train(cfg, config_path, run, device)

    def train(self, cfg: dict, config_path: Path | None, run: RunSettings, device: torch.device) -> dict[str, Any]:
        data = settings(DataSettings, cfg, "data")
        model = settings(ClassifierSettings, cfg, "model")
        training = settings(self.sections["training"], cfg, "training")
        main_process = distributed.is_main_process()
        run_dir = training_run_dir(run.dir, run.batch_size, config_path, cfg)
        torch.manual_seed(run.seed)  # the classifier's initial weights, the same on every process

        with distributed.main_process_first():
            train_set = builders.build_dataset(data.train, "data.train")
            eval_set = builders.build_dataset(data.eval, "data.eval")
        builders.check_fills_a_batch(train_set, "data.train", run.batch_size)
        check_num_classes(model.num_classes, train=train_set, eval=eval_set)
        network = self.build_model(cfg)
        if model.init:  # a resumed run overwrites this below with its own checkpoint
            init_tower(network, model, run_dir if main_process else None)
        else:
            print("warning: model.init is null: the tower trains from scratch", file=sys.stderr)
        network.to(device)
        speed.apply_switches(network, fused_ops=run.fused_ops, sdpa=run.sdpa, compile=run.compile,
                             activation_checkpointing=run.activation_checkpointing)
        trained = data_parallel(network, run.parallel, device)  # the model itself on one process
        optimizer = build("optimizers", cfg["optimizer"], "optimizer", params=trained.parameters())
        clip_before_step(optimizer, list(network.towers.parameters()), training.backbone_max_grad_norm)
        clip_before_step(optimizer, list(network.heads.parameters()), training.classifier_max_grad_norm)
        schedule = build("schedules", cfg["schedule"], "schedule", base_lr=optimizer.param_groups[0]["lr"],
                         total_steps=run.steps)
        evaluators = [builders.build_evaluator(node, f"evaluators.{i}")
                      for i, node in enumerate(cfg.get("evaluators") or [])]

        def evaluate(step: int) -> dict:  # on every process: a sharded model needs all of them
            return {k: v for evaluator in evaluators for k, v in evaluator.run(network, eval_set).items()}

        batches = labelled_batches(train_set, batch_size=run.batch_size, seed=run.seed, num_workers=data.num_workers,
                                   num_classes=model.num_classes, multi_hot=self.multi_hot,
                                   max_failed_share=data.max_failed_share)
        return train_and_report(run, run_dir, device, model=trained, loss_fn=self.training_loss(training, model),
                                optimizer=optimizer, schedule=schedule, batches=batches,
                                evaluate=evaluate if evaluators else None)
