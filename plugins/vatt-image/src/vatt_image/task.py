"""``task: image_finetune``, the appendix's ImageNet recipe (B.7) on vatt's fine-tuning machinery.

The recipe, top to bottom: an image folder whose pictures are tiled 4× in time into clips → the pre-trained
video tower, its position tables interpolated to the larger input (384² instead of 224²) → a fresh linear
classifier → SGD with momentum 0.9 from 8e-2 on a cosine, no weight decay, cross-entropy with label
smoothing 0.1 → 50 epochs at batch 512 → top-1 and top-5. vatt's classifier recipe
(`vatt.tasks.classifier.fine_tune`) does the loading, the loop and the evaluation; this task says what an
image recipe says differently: its length in epochs, no gradient clipping, and clips that must be as long and
as large as the tokenizer expects.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vatt.config import merge
from vatt.errors import ConfigError
from vatt.tasks import builders
from vatt.tasks.base import Task, settings
from vatt.tasks.classifier import INJECTED, check_classifier, classifier_model, classifier_sections, fine_tune, smoothed_cross_entropy
from vatt.tasks.settings import ClassifierSettings, RunSettings, check_roots


@dataclass
class ImageTrainingSettings:
    label_smoothing: float = 0.1
    epochs: int | None = None                    # passes over data.train; an explicit run.steps wins (a short try)
    backbone_max_grad_norm: float | None = None  # the image recipe clips no gradients
    classifier_max_grad_norm: float | None = None


def epoch_steps(images: int, batch_size: int, epochs: int) -> int:
    """Steps of ``epochs`` full passes: the batch sampler drops each epoch's incomplete last batch."""
    per_epoch = images // batch_size
    if per_epoch == 0:
        raise ConfigError([f"run.batch_size: {batch_size} is more than the {images} images of data.train"])
    return epochs * per_epoch


def clip_shape_problems(cfg: dict) -> list[str]:
    """An image is tiled into a clip of ``frames`` at ``size``; the tokenizer's positions are built for its own."""
    tokenizer = (cfg.get("model") or {}).get("tokenizer") or {}
    data = cfg.get("data") or {}
    problems = []
    for part in ("train", "eval"):
        node = data.get(part)
        if not isinstance(node, dict):
            continue
        for key in ("frames", "size"):
            if key in node and key in tokenizer and node[key] != tokenizer[key]:
                problems.append(f"data.{part}.{key}: {node[key]}, but model.tokenizer.{key} is {tokenizer[key]}; "
                                f"each image becomes a clip of the tokenizer's {key}")
    return problems


class ImageFineTune(Task):
    """Image classification with a pre-trained video tower: images tiled in time, length in epochs, top-1/5."""

    sections = classifier_sections(ImageTrainingSettings)
    injected = INJECTED
    vatt_example = {  # the registry's example: the smallest valid config (the contract tests validate it)
        "task": "image_finetune", "optimizer": {"type": "sgd", "lr": 0.08}, "schedule": {"type": "constant"},
        "model": {"tokenizer": {"type": "video_patches", "patch_size": [2, 8, 8], "frames": 4, "size": 16},
                  "backbone": {"type": "vit", "width": 16, "layers": 1, "mlp_dim": 32, "heads": 2},
                  "num_classes": 3}}

    def check(self, cfg: dict) -> list[str]:
        problems = check_classifier(cfg) + clip_shape_problems(cfg)
        epochs = (cfg.get("training") or {}).get("epochs")
        if isinstance(epochs, int) and epochs < 1:
            problems.append(f"training.epochs: must be positive, got {epochs}")
        return problems

    def check_data(self, cfg: dict) -> list[str]:
        return check_roots(cfg.get("data") or {}, ("train", "eval"))

    def build_model(self, cfg: dict) -> torch.nn.Module:
        return classifier_model(settings(ClassifierSettings, cfg, "model"))

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        training = settings(ImageTrainingSettings, cfg, "training")
        if training.epochs is not None and "steps" not in (cfg.get("run") or {}):
            images = len(builders.build_dataset(cfg["data"]["train"], "data.train"))
            batch_size = settings(RunSettings, cfg, "run").batch_size
            steps = epoch_steps(images, batch_size, training.epochs)
            print(f"training.epochs={training.epochs}: {images} images at batch {batch_size} → {steps} steps",
                  file=sys.stderr)
            cfg = merge(cfg, {"run": {"steps": steps}})  # saved with the run's resolved config
        model = settings(ClassifierSettings, cfg, "model")
        return fine_tune(cfg, config_path, build_model=self.build_model,
                         loss_fn=smoothed_cross_entropy(model.modality, training.label_smoothing), multi_hot=False,
                         tower_max_norm=training.backbone_max_grad_norm,
                         classifier_max_norm=training.classifier_max_grad_norm)
