"""Video fine-tuning (Kinetics-400/600, Moments in Time, UCF101, HMDB51), appendix B.5.

The recipe, top to bottom: labelled data → the video tower, loaded from a pre-training checkpoint by name
(positions resized with the release's spline when the crop grows: 8+14+14 → 8+20+20 buckets at 320²) → a fresh
linear classifier behind dropout → SGD with momentum 0.9, linear warm-up then a half-period cosine to 0,
cross-entropy with label smoothing 0.1, the backbone's gradients clipped to norm 0.75 (the release) →
evaluation over 4 clips × 3 crops per video with the logits averaged, top-1 and top-5.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from vatt.registry import register
from vatt.tasks import examples
from vatt.tasks.base import Task, settings
from vatt.tasks.classifier import INJECTED, check_classifier, classifier_model, classifier_sections, fine_tune, smoothed_cross_entropy
from vatt.tasks.settings import ClassifierSettings, check_roots


@dataclass
class FineTuneSettings:
    label_smoothing: float = 0.1
    backbone_max_grad_norm: float | None = 0.75  # the tower's gradients alone (the release)
    classifier_max_grad_norm: float | None = None


@register("tasks", "finetune", example=examples.FINETUNE)
class FineTune(Task):
    """Fine-tune a pre-trained video tower with a linear classifier; multi-view top-1/top-5."""

    sections = classifier_sections(FineTuneSettings)
    injected = INJECTED

    def check(self, cfg: dict) -> list[str]:
        return check_classifier(cfg)

    def check_data(self, cfg: dict) -> list[str]:
        return check_roots(cfg.get("data") or {}, ("train", "eval"))

    def build_model(self, cfg: dict) -> nn.Module:
        return classifier_model(settings(ClassifierSettings, cfg, "model"))

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        model, training = settings(ClassifierSettings, cfg, "model"), settings(FineTuneSettings, cfg, "training")
        return fine_tune(cfg, config_path, build_model=self.build_model,
                         loss_fn=smoothed_cross_entropy(model.modality, training.label_smoothing), multi_hot=False,
                         tower_max_norm=training.backbone_max_grad_norm,
                         classifier_max_norm=training.classifier_max_grad_norm)
