"""Linear evaluation of frozen features: the appendix's low-rank classifier and a linear SVM.

Features are the towers' [AGG] outputs, computed once (views averaged) and standardised with the training
set's statistics. The low-rank classifier (LRC) factorises the weight as C = U·V with U ∈ R^{d×n},
V ∈ R^{n×c}, n = 128, and trains with Adam (5e-4, batch 64) while each step uses a random 10 % of the n
components, which keeps the effective weight low-rank and the result stable across runs. Like dropout, the
sampled product is scaled by n / k during training so that the full classifier used at test time has the
same expected logits. The SVM is one-vs-rest with the squared hinge loss and an L2 penalty (LinearSVC's
objective), minimised with L-BFGS.

Features are read like every evaluation set (`gather_outputs`): unreadable samples are skipped, logged and
counted, and the result reports ``<prefix>/<dataset_name>/skipped`` (held-out set) and ``.../train_skipped``
when any were.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vatt.data.failures import DEFAULT_MAX_FAILURE_RATE, check_failure_rate
from vatt.evaluators.classification import check_targets, gather_outputs
from vatt.metrics import topk_accuracy
from vatt.ranges import require
from vatt.registry import register

CLASSIFIERS = ("low_rank", "svm")


class LowRankClassifier(nn.Module):
    """Logits x·U·V + b; ``components`` (indices into the n) restricts the product to a subset."""

    def __init__(self, in_dim: int, num_classes: int, rank: int = 128):
        super().__init__()
        self.u = nn.Parameter(torch.randn(in_dim, rank) / math.sqrt(in_dim))
        self.v = nn.Parameter(torch.randn(rank, num_classes) / math.sqrt(rank))
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x: torch.Tensor, components: torch.Tensor | None = None) -> torch.Tensor:
        if components is None:
            return x @ self.u @ self.v + self.bias  # [B, c]
        scale = self.u.shape[1] / len(components)  # keeps the expected logits of the full product
        return (x @ self.u[:, components]) @ self.v[components] * scale + self.bias  # [B, c]


def fit_low_rank(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, rank: int = 128,
                 sample_fraction: float = 0.1, lr: float = 5e-4, steps: int = 50000, batch_size: int = 64,
                 seed: int = 0) -> LowRankClassifier:
    """Train the LRC with softmax cross-entropy on ``features`` [N, d] and ``labels`` [N]."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the classifier's initial weights
        classifier = LowRankClassifier(features.shape[1], num_classes, rank)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    kept = max(1, round(sample_fraction * rank))
    batch_size = min(batch_size, len(features))
    order, position = torch.randperm(len(features), generator=generator), 0
    for _ in range(steps):
        if position + batch_size > len(order):  # a new epoch in a new order
            order, position = torch.randperm(len(features), generator=generator), 0
        index = order[position:position + batch_size]
        position += batch_size
        components = torch.randperm(rank, generator=generator)[:kept]
        loss = F.cross_entropy(classifier(features[index], components), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return classifier.eval()


def fit_linear_svm(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, c: float = 1.0,
                   max_iter: int = 500) -> nn.Linear:
    """One-vs-rest linear SVM: minimise ½‖W‖² + c·Σ max(0, 1 − y·(Wx + b))² with y = ±1 per class."""
    x = features.double()
    signs = F.one_hot(labels, num_classes).double() * 2 - 1  # [N, c]
    linear = nn.Linear(x.shape[1], num_classes).double()
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        margins = torch.relu(1 - signs * linear(x))  # [N, c]
        loss = 0.5 * linear.weight.square().sum() + c * margins.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return linear.float().eval()


def probe_metrics(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                  num_classes: int, *, classifiers: Sequence[str] = CLASSIFIERS, rank: int = 128,
                  sample_fraction: float = 0.1, lr: float = 5e-4, steps: int = 50000, batch_size: int = 64,
                  svm_c: float = 1.0, svm_max_iter: int = 500, seed: int = 0) -> dict[str, float]:
    """Fit each classifier on the ``train`` (features, labels) and score it on ``test``.

    Returns {"top1", "top5"} for the LRC and {"svm_top1", "svm_top5"} for the SVM.
    """
    (train_x, train_y), (test_x, test_y) = train, test
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std  # [N, d]: the training set's statistics
    result = {}
    if "low_rank" in classifiers:
        lrc = fit_low_rank(train_x, train_y, num_classes, rank=rank, sample_fraction=sample_fraction, lr=lr,
                           steps=steps, batch_size=batch_size, seed=seed)
        with torch.no_grad():
            result.update(topk_accuracy(lrc(test_x), test_y, k=(1, 5)))
    if "svm" in classifiers:
        svm = fit_linear_svm(train_x, train_y, num_classes, c=svm_c, max_iter=svm_max_iter)
        with torch.no_grad():
            result.update({f"svm_{k}": v for k, v in topk_accuracy(svm(test_x), test_y, k=(1, 5)).items()})
    return result


def extract_features(model: torch.nn.Module, dataset, *, modality: str, batch_size: int = 32,
                     num_workers: int = 0, max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE, what: str = "",
                     report: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [N, D]: the frozen tower's [AGG] outputs, views averaged; labels [N]) of the N readable
    samples; the unreadable ones are skipped, logged and counted in ``report`` (see `gather_outputs`)."""
    def forward(model, batch):
        return model.features(batch, modalities=(modality,))[modality]  # [B, D] or [B, V, D]

    input_key = getattr(model, "inputs", {}).get(modality, modality)
    features, labels = gather_outputs(model, dataset, forward, input_key=input_key, batch_size=batch_size,
                                      num_workers=num_workers, max_failure_rate=max_failure_rate,
                                      what=what or f"{modality} features", report=report)
    if labels.dim() != 1:
        raise ValueError("linear evaluation needs single-label samples ('label'), got multi-hot 'labels'")
    return features, labels


def num_classes_of(dataset, *label_sets: torch.Tensor) -> int:
    """The dataset's ``num_classes``, or one more than the largest label seen when it has none."""
    declared = getattr(dataset, "num_classes", None)
    return int(declared) if declared else int(max(int(labels.max()) for labels in label_sets)) + 1


@register("evaluators", "linear_probe", example={"train": [{"video": [0.0], "label": 0}], "steps": 1})
class LinearProbe:
    """Linear evaluation during pre-training: fit on ``train``'s features, report on the held-out set.

    ``run(model, dataset)`` extracts ``modality`` features of ``train`` and of ``dataset`` with the
    model's ``features`` and returns ``<prefix>/<dataset_name>/{top1, top5, svm_top1, svm_top5}``, plus
    ``skipped`` / ``train_skipped`` counts when samples of the held-out / training set could not be read.
    """

    def __init__(self, *, train, dataset_name: str = "synthetic", prefix: str = "linear", modality: str = "video",
                 classifiers: Sequence[str] = CLASSIFIERS, rank: int = 128, sample_fraction: float = 0.1,
                 lr: float = 5e-4, steps: int = 50000, batch_size: int = 64, svm_c: float = 1.0,
                 svm_max_iter: int = 500, feature_batch_size: int = 32, num_workers: int = 0, seed: int = 0,
                 max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE):
        if not hasattr(train, "__len__") or not hasattr(train, "__getitem__") or len(train) == 0:
            raise ValueError(f"train must be a non-empty dataset of labelled samples, got {train!r}")
        unknown = [c for c in classifiers if c not in CLASSIFIERS]
        if not classifiers or unknown:
            raise ValueError(f"classifiers must name some of {CLASSIFIERS}, got {list(classifiers)!r}")
        if not 0.0 < sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction!r}")
        require(1, whole=True, rank=rank, steps=steps, batch_size=batch_size, svm_max_iter=svm_max_iter,
                feature_batch_size=feature_batch_size)
        if not lr > 0 or not svm_c > 0:
            raise ValueError(f"lr and svm_c must be positive, got lr={lr!r}, svm_c={svm_c!r}")
        check_failure_rate(max_failure_rate)
        self.train = train
        self.dataset_name = dataset_name
        self.prefix = prefix
        self.modality = modality
        self.feature_batch_size = feature_batch_size
        self.num_workers = num_workers
        self.max_failure_rate = max_failure_rate
        self.fit_settings = dict(classifiers=tuple(classifiers), rank=rank, sample_fraction=sample_fraction, lr=lr,
                                 steps=steps, batch_size=batch_size, svm_c=svm_c, svm_max_iter=svm_max_iter,
                                 seed=seed)

    def run(self, model: torch.nn.Module, dataset) -> dict[str, float]:
        extract = dict(modality=self.modality, batch_size=self.feature_batch_size, num_workers=self.num_workers,
                       max_failure_rate=self.max_failure_rate)
        train_report: dict = {}
        test_report: dict = {}
        train = extract_features(model, self.train, what=f"{self.prefix} probe of {self.dataset_name} (train)",
                                 report=train_report, **extract)
        test = extract_features(model, dataset, what=f"{self.prefix} probe of {self.dataset_name}",
                                report=test_report, **extract)
        num_classes = num_classes_of(self.train, train[1], test[1])
        check_targets(train[1], num_classes, f"{self.dataset_name} (train)", train_report["indices"])
        check_targets(test[1], num_classes, self.dataset_name, test_report["indices"])
        metrics = probe_metrics(train, test, num_classes, **self.fit_settings)
        if test_report["skipped"]:
            metrics["skipped"] = test_report["skipped"]
        if train_report["skipped"]:
            metrics["train_skipped"] = train_report["skipped"]
        return {f"{self.prefix}/{self.dataset_name}/{key}": value for key, value in metrics.items()}

    def __repr__(self) -> str:
        return (f"LinearProbe(dataset_name={self.dataset_name!r}, modality={self.modality!r}, "
                f"train={len(self.train)} samples, {self.fit_settings})")
