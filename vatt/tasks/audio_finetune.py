"""Audio fine-tuning (AudioSet, ESC-50), appendix B.6: the video recipe with these changes.

- The waveform tower comes from the checkpoint; inputs are 6.4 s at 24 kHz (153,600 samples, the same 1200
  patches as pre-training's 3.2 s at 48 kHz, so no position resizing is needed).
- Mixup: each batch is blended with a shuffled copy of itself, x = a·x₁ + (1 − a)·x₂ and
  y = a·y₁ + (1 − a)·y₂, with one a ~ Beta(5, 5) per batch.
- A sigmoid per class (multi-label) instead of a softmax; single-label sets (ESC-50) become one-hot.
- Balancing: the loss of a sample is weighted by the mean, over its labels, of 1 / (how often that label
  occurs in the batch), so a few dominant AudioSet classes cannot drown the rest (the release's weight).
- The classifier's bias starts at −log(C − 1), a prior of about 1/C per class.
- Metrics: mAP, mean ROC-AUC and d′ for multi-label sets, accuracy (top-1) for single-label ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from vatt.registry import register
from vatt.tasks import examples
from vatt.tasks.base import Task, settings
from vatt.tasks.classifier import INJECTED, LossFn, check_classifier, classifier_model, classifier_sections, fine_tune
from vatt.tasks.settings import ClassifierSettings, check_roots


@dataclass
class AudioFineTuneSettings:
    mixup_alpha: float = 5.0      # the mixing weight is drawn from Beta(alpha, alpha); 0 turns mixup off
    balance_labels: bool = True
    backbone_max_grad_norm: float | None = None
    classifier_max_grad_norm: float | None = None


def mixup(inputs: torch.Tensor, targets: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend a batch with a random permutation of itself; ``targets`` [B, C] are mixed like the inputs."""
    weight = torch.distributions.Beta(alpha, alpha).sample().to(inputs.device)  # one a for the batch
    partner = torch.randperm(inputs.shape[0], device=inputs.device)
    mixed = weight * inputs + (1 - weight) * inputs[partner]  # [B, *sample]
    return mixed, weight * targets + (1 - weight) * targets[partner]  # [B, C]


def label_balance_weights(targets: torch.Tensor) -> torch.Tensor:
    """[B, C] (multi-hot or mixed) targets → [B] weights: each label's 1 / batch count, averaged per sample."""
    occurrences = targets.sum(dim=0, keepdim=True)  # [1, C] how often each label occurs in the batch
    inverse = torch.where(occurrences > 0, 1.0 / occurrences.clamp_min(1e-12), torch.zeros_like(occurrences))
    labels_per_sample = targets.sum(dim=1).clamp_min(1e-12)  # [B]
    return (targets * inverse).sum(dim=1) / labels_per_sample  # [B]


def balanced_sigmoid_loss(logits: torch.Tensor, targets: torch.Tensor, balance: bool = True) -> torch.Tensor:
    """Per-class sigmoid cross-entropy summed over classes, weighted per sample, averaged over the batch."""
    per_class = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")  # [B, C]
    per_sample = per_class.sum(dim=1)  # [B]
    if balance:
        per_sample = per_sample * label_balance_weights(targets.float())
    return per_sample.mean()


def mixup_sigmoid_loss(training: AudioFineTuneSettings, model: ClassifierSettings) -> LossFn:
    """The training loss: mixup of the waveforms and their (one- or multi-hot) targets, then the balanced
    sigmoid cross-entropy."""
    modality = model.modality  # also the batch key the tower reads

    def loss_fn(network: nn.Module, batch: dict):
        inputs = batch[modality]  # [B, S]
        targets = batch["labels"] if "labels" in batch else \
            F.one_hot(batch["label"], model.num_classes).float()  # [B, C]
        if training.mixup_alpha > 0:
            inputs, targets = mixup(inputs, targets, training.mixup_alpha)
        logits = network({modality: inputs}, modalities=(modality,))[modality]["logits"]  # [B, C]
        return balanced_sigmoid_loss(logits, targets, training.balance_labels), {}
    return loss_fn


@register("tasks", "audio_finetune", example=examples.AUDIO_FINETUNE)
class AudioFineTune(Task):
    """Fine-tune a pre-trained waveform tower: mixup, balanced multi-label sigmoid loss; mAP/AUC/d′ or top-1."""

    sections = classifier_sections(AudioFineTuneSettings)
    injected = INJECTED

    def check(self, cfg: dict) -> list[str]:
        alpha = (cfg.get("training") or {}).get("mixup_alpha", AudioFineTuneSettings.mixup_alpha)
        bad_alpha = isinstance(alpha, (int, float)) and alpha < 0
        return check_classifier(cfg) + ([f"training.mixup_alpha: must be >= 0, got {alpha}"] if bad_alpha else [])

    def check_data(self, cfg: dict) -> list[str]:
        return check_roots(cfg.get("data") or {}, ("train", "eval"))

    def build_model(self, cfg: dict) -> nn.Module:
        model = settings(ClassifierSettings, cfg, "model")
        prior = -math.log(model.num_classes - 1) if model.num_classes > 1 else 0.0  # sigmoid outputs start rare
        return classifier_model(model, bias_init=prior)

    def run(self, cfg: dict, config_path: Path | None = None) -> dict[str, Any]:
        model, training = settings(ClassifierSettings, cfg, "model"), settings(AudioFineTuneSettings, cfg, "training")
        return fine_tune(cfg, config_path, build_model=self.build_model, loss_fn=mixup_sigmoid_loss(training, model),
                         multi_hot=True, tower_max_norm=training.backbone_max_grad_norm,
                         classifier_max_norm=training.classifier_max_grad_norm)
