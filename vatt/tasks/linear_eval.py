"""Linear evaluation of a frozen pre-trained tower: UCF101 and HMDB51 splits 1–3, ESC-50 folds 1–5 (B.8, C).

The recipe, top to bottom: the tower from the pre-training checkpoint, frozen → the [AGG] features of each
split's training and test sets, computed once (test views averaged) and cached in the run directory →
the low-rank classifier (C = U·V, n = 128, a random 10 % of the components per step, Adam 5e-4, batch 64,
50k steps) and a linear SVM on the standardised features → accuracy per split and its mean over splits,
under ``linear/<dataset>/split<k>/<metric>`` and ``linear/<dataset>/<metric>`` (ESC-50's folds are its
splits). ``top1``/``top5`` are the LRC's, ``svm_top1``/``svm_top5`` the SVM's.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from vatt.engine.logging import RunLogger
from vatt.evaluators.classification import check_targets
from vatt.evaluators.linear_probe import CLASSIFIERS, extract_features, num_classes_of, probe_metrics
from vatt.files import atomic_write
from vatt.ranges import at_least
from vatt.registry import register
from vatt.tasks import builders, examples
from vatt.tasks.base import Task, settings
from vatt.tasks.classifier import build_tower_model, init_tower
from vatt.tasks.run_dir import evaluation_setup
from vatt.tasks.settings import TowerSettings, check_roots, check_tower

FEATURE_DIR = "features"


@dataclass
class LinearRunSettings:
    dir: str | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    tensorboard: bool = True


@dataclass
class LinearDataSettings:
    train: dict | None = None
    eval: dict | None = None
    split_key: str | None = None      # the dataset argument naming a split: split_number, or fold (ESC-50)
    splits: list | None = None        # e.g. [1, 2, 3]; None: the datasets as configured
    name: str | None = None           # the <dataset> of the result keys; default: data.train's type
    num_workers: int = at_least(0, 0, "0 reads the data in the main process")


@dataclass
class ProbeSettings:
    classifiers: list = field(default_factory=lambda: list(CLASSIFIERS))
    rank: int = at_least(1, 128)
    sample_fraction: float = 0.1
    lr: float = 5.0e-4
    steps: int = at_least(1, 50000)
    batch_size: int = at_least(1, 64)
    svm_c: float = 1.0
    svm_max_iter: int = at_least(1, 500)  # L-BFGS iterations of the SVM
    feature_batch_size: int = at_least(1, 32)


@register("tasks", "linear_eval", example=examples.LINEAR_EVAL)
class LinearEval(Task):
    """Frozen-feature linear evaluation (low-rank classifier and SVM), per split and averaged."""

    sections = {"run": LinearRunSettings, "data": LinearDataSettings, "model": TowerSettings,
                "probe": ProbeSettings}
    injected = {"tokenizers": {"dim"}}

    def check(self, cfg: dict) -> list[str]:
        problems = check_tower(cfg)
        data = cfg.get("data") or {}
        if (data.get("split_key") is None) != (data.get("splits") is None):
            problems.append("data.split_key and data.splits: give both (split_key: split_number, splits: [1, 2, 3]) "
                            "or neither")
        unknown = [c for c in (cfg.get("probe") or {}).get("classifiers") or [] if c not in CLASSIFIERS]
        if unknown:
            problems.append(f"probe.classifiers: unknown {unknown}; choose from {list(CLASSIFIERS)}")
        return problems

    def check_data(self, cfg: dict) -> list[str]:
        return check_roots(cfg.get("data") or {}, ("train", "eval"))

    def build_model(self, cfg: dict) -> torch.nn.Module:
        return build_tower_model(settings(TowerSettings, cfg, "model"))

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        run = settings(LinearRunSettings, cfg, "run")
        data = settings(LinearDataSettings, cfg, "data")
        model = settings(TowerSettings, cfg, "model")
        probe = settings(ProbeSettings, cfg, "probe")
        device, run_dir = evaluation_setup(run, config_path, cfg)
        torch.manual_seed(run.seed)

        network = build_tower_model(model).to(device).eval()  # frozen: features only, no DropToken
        checkpoint = init_tower(network, model, run_dir) if model.init else None
        if checkpoint is None:
            print("warning: model.init is null, so the probe reads a randomly initialised tower", file=sys.stderr)
        cache = FeatureCache(network, model.modality, run_dir / FEATURE_DIR, batch_size=probe.feature_batch_size,
                             num_workers=data.num_workers,
                             tower=_fingerprint(asdict(model), checkpoint, None if checkpoint else run.seed))
        name = data.name or data.train["type"]
        splits = data.splits or [None]
        fit = {k: v for k, v in asdict(probe).items() if k != "feature_batch_size"}
        logger = RunLogger(run_dir, total_steps=len(splits), batch_size=probe.batch_size,
                           tensorboard=run.tensorboard, print_every=1)
        results, per_split = {}, []
        try:
            for index, split in enumerate(splits, start=1):
                nodes = {part: _at_split(getattr(data, part), data.split_key, split) for part in ("train", "eval")}
                datasets = {part: builders.build_dataset(node, f"data.{part}") for part, node in nodes.items()}
                tag = "" if split is None else f"_split{split}"
                train, test = (cache.get(datasets[part], nodes[part], f"{part}{tag}") for part in ("train", "eval"))
                num_classes = num_classes_of(datasets["train"], train[1], test[1])
                check_targets(train[1], num_classes, f"data.train ({name})")
                check_targets(test[1], num_classes, f"data.eval ({name})")
                metrics = probe_metrics(train, test, num_classes, seed=run.seed, **fit)
                prefix = f"linear/{name}" if split is None else f"linear/{name}/split{split}"
                scored = {f"{prefix}/{key}": value for key, value in metrics.items()}
                logger.log_eval(index, scored)
                results.update(scored)
                per_split.append(metrics)
            if data.splits:
                mean = {f"linear/{name}/{key}": sum(m[key] for m in per_split) / len(per_split)
                        for key in per_split[0]}
                logger.log_eval(len(splits), mean)
                results.update(mean)
            logger.write_results(results)
        finally:
            logger.close()
        return results


def _at_split(node: dict, split_key: str | None, split) -> dict:
    return node if split is None else {**node, split_key: split}


class FeatureCache:
    """A frozen tower's features of whole datasets, kept in ``directory`` as ``<name>.pt``.

    A stored file is reused when its key matches: the tower (config, checkpoint file, or the seed of a random
    one) and the dataset node. Anything else recomputes and replaces it.
    """

    def __init__(self, network: torch.nn.Module, modality: str, directory: Path, *, batch_size: int,
                 num_workers: int, tower: str):
        self.network, self.modality, self.directory = network, modality, directory
        self.batch_size, self.num_workers, self.tower = batch_size, num_workers, tower

    def get(self, dataset, node: dict, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [N, D], labels [N]) of ``dataset``, built from ``node``."""
        path = self.directory / f"{name}.pt"
        key = _fingerprint(self.tower, node)
        if path.is_file():
            stored = torch.load(path, weights_only=True)
            if stored.get("key") == key:
                return stored["features"], stored["labels"]
        features, labels = extract_features(self.network, dataset, modality=self.modality,
                                            batch_size=self.batch_size, num_workers=self.num_workers)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save({"key": key, "features": features, "labels": labels}, f))
        return features, labels


def _fingerprint(*parts) -> str:
    """A stable hash of JSON-able parts; a checkpoint file counts by its path, size and modification time."""
    def identity(part):
        if isinstance(part, Path):
            stat = part.stat()
            return [str(part.resolve()), stat.st_size, stat.st_mtime_ns]
        return part

    text = json.dumps([identity(part) for part in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
