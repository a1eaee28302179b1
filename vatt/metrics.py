"""Plain metric functions on numpy arrays or torch tensors (any device, any float dtype).

Ranks are 1-based and ties count against the prediction: the rank of the true item is the number of items
scoring at least as high as it (itself included). A model that scores everything equally therefore gets the
worst rank, never a lucky one. Recall@K and accuracies are fractions in [0, 1], not percentages.
"""
from __future__ import annotations

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
