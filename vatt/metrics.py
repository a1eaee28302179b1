"""Plain metric functions on numpy arrays or torch tensors (any device, any float dtype).

Ranks are 1-based and ties count against the prediction: the rank of the true item is the number of items
scoring at least as high as it (itself included). A model that scores everything equally therefore gets the
worst rank, never a lucky one. Recall@K and accuracies are fractions in [0, 1], not percentages.

The multi-label metrics (AudioSet style) score each class as a ranking of the samples. Average precision
steps through the distinct score values, tied samples entering together; ROC-AUC counts a tied
positive-negative pair as half right. Both match scikit-learn's ``average_precision_score`` and
``roc_auc_score``. A class with no positive (or, for AUC, no negative) sample has no value (NaN) and is left
out of the class means.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Iterable

import numpy as np

RECALL_AT = (1, 5, 10)


def retrieval_metrics(similarity, targets=None) -> dict[str, float]:
    """Recall@1/5/10 and median/mean rank of each query's true item.

    ``similarity`` [Q, N]: score of query q against item n (higher is closer). ``targets`` [Q] int: index of
    query q's true item; None means query i matches item i (needs Q <= N). Returns
    {"R@1", "R@5", "R@10", "median_rank", "mean_rank"}; R@K is the fraction of queries whose rank <= K.
    """
    scores = _as_float_array("similarity", similarity)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"similarity must be a non-empty [Q, N] matrix, got shape {scores.shape}")
    queries, items = scores.shape
    if targets is None:
        if queries > items:
            raise ValueError(f"targets=None pairs query i with item i, which needs Q <= N; similarity has "
                             f"shape {scores.shape}")
        targets = np.arange(queries)
    targets = _as_index_array("targets", targets, queries, items)
    ranks = _ranks_of_true(scores, targets)  # [Q]
    result = {f"R@{k}": float(np.mean(ranks <= k)) for k in RECALL_AT}
    result["median_rank"] = float(np.median(ranks))
    result["mean_rank"] = float(np.mean(ranks))
    return result


def topk_accuracy(logits, labels, k: int | Iterable[int] = (1, 5)) -> dict[str, float]:
    """Fraction of samples whose label is among the k highest logits, as {"top1": ..., "top5": ...}.

    ``logits`` [N, C], ``labels`` [N] int in [0, C). Ties count against the prediction (see module
    docstring); a k of C or more always scores 1.
    """
    scores = _as_float_array("logits", logits)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"logits must be a non-empty [N, C] matrix, got shape {scores.shape}")
    ks = (k,) if isinstance(k, (int, np.integer)) else tuple(k)
    if not ks or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1 for x in ks):
        raise ValueError(f"k must be a positive int or a non-empty sequence of them, got {k!r}")
    labels = _as_index_array("labels", labels, scores.shape[0], scores.shape[1])
    ranks = _ranks_of_true(scores, labels)  # [N]
    return {f"top{int(x)}": float(np.mean(ranks <= x)) for x in ks}


def average_precision(scores, targets) -> float:
    """Average precision of one class: the mean of the precision at each positive, ranked by ``scores``.

    ``scores`` [N] (higher = more likely positive), ``targets`` [N] of 0/1. Samples with equal scores are
    ranked together (precision is taken once the whole tie is in). NaN when no sample is positive.
    """
    values, truth = _binary_pair(scores, targets)
    positives = truth.sum()
    if positives == 0:
        return math.nan
    order = np.argsort(-values, kind="stable")
    values, truth = values[order], truth[order]
    last_of_tie = np.r_[values[1:] != values[:-1], True]  # [N]: where each distinct score ends
    true_pos = np.cumsum(truth)[last_of_tie]  # [K] positives ranked at or above each distinct score
    ranked = np.flatnonzero(last_of_tie) + 1  # [K] samples ranked at or above it
    recall_gain = np.diff(np.r_[0, true_pos]) / positives  # [K]
    return float(np.sum(recall_gain * true_pos / ranked))


def roc_auc(scores, targets) -> float:
    """Area under the ROC curve of one class: the chance that a random positive outscores a random negative.

    Ties count one half. ``scores`` [N], ``targets`` [N] of 0/1; NaN unless both kinds of sample occur.
    """
    values, truth = _binary_pair(scores, targets)
    positives = truth.sum()
    negatives = len(truth) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = _midranks(values)  # [N] 1-based, ties share their mean rank
    wins = ranks[truth == 1].sum() - positives * (positives + 1) / 2  # Mann-Whitney U of the positives
    return float(wins / (positives * negatives))


def d_prime(auc):
    """Sensitivity index of an ROC-AUC: sqrt(2) times the standard normal quantile of the AUC.

    Elementwise on arrays (a float in, a float out); an AUC of 0.5 gives 0 and an AUC of 1 gives +inf.
    """
    values = np.asarray(_to_numpy("auc", auc), dtype=np.float64)
    if np.isnan(values).any() or np.any((values < 0) | (values > 1)):
        raise ValueError(f"auc must lie in [0, 1], got {auc!r}")
    result = math.sqrt(2.0) * np.vectorize(_normal_quantile, otypes=[np.float64])(values)
    return float(result) if result.ndim == 0 else result


def per_class(metric, scores, targets) -> np.ndarray:
    """``metric`` (average_precision or roc_auc) of every class: ``scores``, ``targets`` [N, C] -> [C]."""
    values = _as_float_array("scores", scores)
    truth = _to_numpy("targets", targets)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty [N, C] matrix, got shape {values.shape}")
    if truth.shape != values.shape:
        raise ValueError(f"targets must have the shape of scores {values.shape}, got {truth.shape}")
    return np.array([metric(values[:, c], truth[:, c]) for c in range(values.shape[1])])


def mean_average_precision(scores, targets) -> float:
    """mAP: the average precision of each class ([N, C] inputs), averaged over the classes with positives."""
    return _mean_over_classes("mAP", per_class(average_precision, scores, targets))


def multilabel_metrics(scores, targets) -> dict[str, float]:
    """AudioSet's metrics from ``scores`` and multi-hot ``targets`` [N, C]: {"mAP", "AUC", "d_prime"}.

    "AUC" is the mean ROC-AUC over the classes and "d_prime" the d' of that mean AUC.
    """
    auc = _mean_over_classes("AUC", per_class(roc_auc, scores, targets))
    return {"mAP": mean_average_precision(scores, targets), "AUC": auc, "d_prime": d_prime(auc)}


def _mean_over_classes(name: str, values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        raise ValueError(f"{name} is undefined: no class has both positive and negative samples")
    return float(defined.mean())


def _normal_quantile(p: float) -> float:
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return NormalDist().inv_cdf(p)


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` in ascending order; tied values all get the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]  # [N] first of each tie group
    group = np.cumsum(starts) - 1  # [N] tie group of each sorted position
    first = np.flatnonzero(starts)  # [G] 0-based start of each group
    sizes = np.diff(np.r_[first, len(values)])  # [G]
    ranks = np.empty(len(values))
    ranks[order] = (first + (sizes + 1) / 2)[group]
    return ranks


def _binary_pair(scores, targets) -> tuple[np.ndarray, np.ndarray]:
    values = _as_float_array("scores", scores)
    truth = _to_numpy("targets", targets)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"scores must be a non-empty [N] vector, got shape {values.shape}")
    if truth.shape != values.shape:
        raise ValueError(f"targets must have the shape of scores {values.shape}, got {truth.shape}")
    numeric = truth.dtype == bool or np.issubdtype(truth.dtype, np.number)
    if not numeric or not np.isin(truth, (0, 1)).all():
        raise ValueError(f"targets must hold only 0 and 1, got values {np.unique(truth)[:6]}")
    return values, truth.astype(np.int64)


def _ranks_of_true(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    true_scores = scores[np.arange(scores.shape[0]), targets]  # [Q]
    return (scores >= true_scores[:, None]).sum(axis=1)  # [Q], 1-based, ties pessimistic


def _to_numpy(name: str, x) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch here
        x = x.detach().cpu()
        if x.dtype.is_floating_point:
            x = x.double()  # bfloat16 has no numpy equivalent
        x = x.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array or tensor, got {type(x).__name__}") from exc


def _as_float_array(name: str, x) -> np.ndarray:
    array = _to_numpy(name, x)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must hold numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN")
    return array


def _as_index_array(name: str, x, rows: int, classes: int) -> np.ndarray:
    array = _to_numpy(name, x)
    if array.shape != (rows,):
        raise ValueError(f"{name} must have shape [{rows}], got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    if (array.min() < 0 or array.max() >= classes):
        raise ValueError(f"{name} must lie in [0, {classes}), got values from {array.min()} to {array.max()}")
    return array.astype(np.int64)
