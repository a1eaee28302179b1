"""Classification over a labelled dataset, with multi-view testing (4 clips × 3 crops, logits averaged).

A sample carries ``label`` (int64, one class) or ``labels`` (multi-hot float [C], AudioSet); an evaluation
sample may hold several views of one video (``video`` [V, 3, T, H, W]), which the model sees as extra
leading dims and whose logits are averaged. Single-label sets report top-1 and top-5 accuracy, multi-label
sets mAP, mean ROC-AUC and d′ (`vatt.metrics`).

Samples are read as training reads them (`vatt.data.loader.read_once`): one that cannot be read is skipped,
logged with its path and counted, the metrics are over the readable ones and the result reports
``<prefix>/<dataset_name>/skipped`` when any was; more than ``max_failure_rate`` (1 %) unreadable stops.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from vatt.data.failures import DEFAULT_MAX_FAILURE_RATE, check_failure_rate
from vatt.data.loader import read_once
from vatt.metrics import multilabel_metrics, topk_accuracy
from vatt.ranges import require
from vatt.registry import register


def gather_outputs(model: torch.nn.Module, dataset, forward: Callable[[torch.nn.Module, dict], torch.Tensor], *,
                   input_key: str, batch_size: int, num_workers: int = 0,
                   max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE, what: str = "",
                   report: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``forward(model, batch) -> [B, X] or [B, V, X]`` over a dataset in eval mode without gradients.

    Views (a middle axis V) are averaged. Returns (outputs [N, X] float32 on the CPU, targets): targets are
    the samples' ``labels`` [N, C] when they have them, else their ``label`` [N], for the N readable samples.
    Unreadable samples are skipped and counted (see `vatt.data.loader.read_once`; `what` names the read in
    its messages); ``report``, when given, receives ``skipped`` (their number), ``failures`` and ``indices``
    (the dataset index of each returned row).
    """
    if len(dataset) == 0:
        raise ValueError(f"dataset must hold at least one sample, got {dataset!r} with none")
    device = _device_of(model)
    samples = read_once(dataset, batch_size=batch_size, num_workers=num_workers, max_failure_rate=max_failure_rate,
                        what=what)
    was_training = model.training
    model.eval()
    outputs, targets, indices = [], [], []
    try:
        with torch.no_grad():
            for read, batch in samples:
                target_key = "labels" if "labels" in batch else "label"
                if target_key not in batch or input_key not in batch:
                    raise ValueError(f"samples need {input_key!r} and 'label' (or multi-hot 'labels'); this "
                                     f"dataset's samples have {sorted(batch)}")
                out = forward(model, {input_key: batch[input_key].to(device)})  # [B, X] or [B, V, X]
                if out.dim() == 3:
                    out = out.mean(dim=1)  # [B, X]: one prediction per video from all its views
                outputs.append(out.float().cpu())
                targets.append(batch[target_key])
                indices.extend(int(i) for i in read)
    finally:
        model.train(was_training)
    if report is not None:
        report.update(skipped=samples.skipped, failures=list(samples.failures.values()), indices=indices)
    if not outputs:
        raise ValueError(f"{what or 'evaluation'}: none of the {len(dataset)} samples could be read")
    return torch.cat(outputs), torch.cat(targets)


def check_targets(targets: torch.Tensor, num_classes: int, dataset_name: str,
                  indices: list[int] | None = None) -> None:
    """Every label must name one of the model's classes; the error names the first sample that does not, by its
    dataset index (``indices[row]`` when rows were skipped, else the row itself)."""
    if targets.dim() == 2:
        if targets.shape[1] != num_classes:
            raise ValueError(f"{dataset_name}: multi-hot labels have {targets.shape[1]} classes but the model "
                             f"predicts {num_classes}")
        return
    bad = ((targets < 0) | (targets >= num_classes)).nonzero()
    if len(bad):
        row = int(bad[0])
        index = indices[row] if indices is not None else row
        raise ValueError(f"{dataset_name}: sample {index} has label {int(targets[row])}, outside the model's "
                         f"{num_classes} classes [0, {num_classes}) ({len(bad)} such samples)")


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor,
                           top_k: Sequence[int] = (1, 5)) -> dict[str, float]:
    """top1/top5 for single-label targets [N]; mAP, AUC and d_prime for multi-hot targets [N, C]."""
    if targets.dim() == 2:
        return multilabel_metrics(logits, targets)
    return topk_accuracy(logits, targets, k=tuple(top_k))


@register("evaluators", "classification", example={"dataset_name": "toy", "batch_size": 4})
class ClassificationEvaluator:
    """Accuracy (or multi-label mAP/AUC/d′) of a fine-tuned classifier on a held-out dataset.

    ``run(model, dataset)`` takes a MultimodalModel whose ``modality`` head outputs ``space`` ("logits")
    and returns ``<prefix>/<dataset_name>/<metric>`` plus ``<prefix>/<dataset_name>/samples`` (the samples
    scored) and, when some could not be read, ``<prefix>/<dataset_name>/skipped``.
    """

    def __init__(self, *, dataset_name: str, prefix: str = "finetune", modality: str = "video",
                 space: str = "logits", batch_size: int = 32, top_k: Sequence[int] = (1, 5), num_workers: int = 0,
                 max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE):
        for name, value in (("dataset_name", dataset_name), ("prefix", prefix), ("modality", modality),
                            ("space", space)):
            if not isinstance(value, str) or not value or (name == "dataset_name" and "/" in value):
                raise ValueError(f"{name} must be a non-empty name, got {value!r}")
        require(1, whole=True, batch_size=batch_size)
        if not top_k:
            raise ValueError("top_k must name at least one k, e.g. [1, 5]")
        require(1, whole=True, **{f"top_k[{i}]": k for i, k in enumerate(top_k)})
        check_failure_rate(max_failure_rate)
        self.dataset_name = dataset_name
        self.prefix = prefix
        self.modality = modality
        self.space = space
        self.batch_size = batch_size
        self.top_k = tuple(top_k)
        self.num_workers = num_workers
        self.max_failure_rate = max_failure_rate
        self.skipped = 0  # samples the last `predict` could not read

    def predict(self, model: torch.nn.Module, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [N, C] averaged over each sample's views, targets [N] or [N, C]) of the readable samples."""
        modality, space = self.modality, self.space

        def forward(model, batch):
            return model(batch, modalities=(modality,))[modality][space]

        report: dict = {}
        logits, targets = gather_outputs(model, dataset, forward, input_key=_input_key(model, modality),
                                         batch_size=self.batch_size, num_workers=self.num_workers,
                                         max_failure_rate=self.max_failure_rate,
                                         what=f"{self.prefix} evaluation of {self.dataset_name}", report=report)
        self.skipped = report["skipped"]
        check_targets(targets, logits.shape[1], self.dataset_name, report["indices"])
        return logits, targets

    def run(self, model: torch.nn.Module, dataset) -> dict[str, float]:
        logits, targets = self.predict(model, dataset)
        prefix = f"{self.prefix}/{self.dataset_name}"
        result = {f"{prefix}/{key}": value
                  for key, value in classification_metrics(logits, targets, self.top_k).items()}
        result[f"{prefix}/samples"] = len(targets)
        if self.skipped:
            result[f"{prefix}/skipped"] = self.skipped
        return result

    def __repr__(self) -> str:
        return (f"ClassificationEvaluator(dataset_name={self.dataset_name!r}, prefix={self.prefix!r}, "
                f"modality={self.modality!r}, batch_size={self.batch_size}, top_k={self.top_k})")


def _input_key(model: torch.nn.Module, modality: str) -> str:
    """The batch key a MultimodalModel's tower reads (a motion modality may read "video")."""
    return getattr(model, "inputs", {}).get(modality, modality)


def _device_of(model: torch.nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")
