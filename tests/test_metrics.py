import numpy as np
import pytest
import torch

from vatt.metrics import retrieval_metrics, topk_accuracy


def test_retrieval_ranks_by_hand_with_ties():
    similarity = np.array([
        [0.9, 0.1, 0.2],   # query 0: true item best -> rank 1
        [0.5, 0.5, 0.1],   # query 1: tied with item 0 -> counted against it, rank 2
        [0.3, 0.8, 0.1],   # query 2: true item worst -> rank 3
    ])
    metrics = retrieval_metrics(similarity)
    assert metrics == {"R@1": pytest.approx(1 / 3), "R@5": 1.0, "R@10": 1.0,
                       "median_rank": 2.0, "mean_rank": 2.0}


def test_all_equal_scores_give_the_worst_rank():
    metrics = retrieval_metrics(np.zeros((12, 12)))
    assert metrics["R@1"] == 0.0 and metrics["R@10"] == 0.0
    assert metrics["median_rank"] == 12.0


def test_explicit_targets_and_even_median():
    similarity = torch.tensor([[0.1, 0.9, 0.0, 0.0, 0.0, 0.0],
                               [0.8, 0.7, 0.6, 0.5, 0.4, 0.3],
                               [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                               [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]])
    metrics = retrieval_metrics(similarity, targets=torch.tensor([1, 5, 5, 5]))
    # ranks: 1, 6, 1, 6
    assert metrics["R@1"] == 0.5 and metrics["R@5"] == 0.5 and metrics["R@10"] == 1.0
    assert metrics["median_rank"] == 3.5 and metrics["mean_rank"] == 3.5


def test_accepts_low_precision_tensors():
    similarity = torch.eye(4, dtype=torch.bfloat16)
    assert retrieval_metrics(similarity)["R@1"] == 1.0


def test_topk_accuracy_by_hand_with_ties():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0, -1.0, -2.0],    # label 0: rank 1
                           [1.0, 1.0, 0.0, 0.0, 0.0, 0.0],      # label 1: tied with class 0 -> rank 2
                           [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],      # label 0: rank 6
                           [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])     # label 3: all tied -> rank 6
    labels = np.array([0, 1, 0, 3])
    assert topk_accuracy(logits, labels) == {"top1": 0.25, "top5": 0.5}
    assert topk_accuracy(logits, labels, k=2) == {"top2": 0.5}
    assert topk_accuracy(logits, labels, k=(6, 10)) == {"top6": 1.0, "top10": 1.0}


@pytest.mark.parametrize("call, message", [
    (lambda: retrieval_metrics(np.zeros(3)), "similarity must be a non-empty"),
    (lambda: retrieval_metrics(np.zeros((4, 3))), "needs Q <= N"),
    (lambda: retrieval_metrics(np.zeros((2, 3)), targets=[0, 3]), r"targets must lie in \[0, 3\)"),
    (lambda: retrieval_metrics(np.zeros((2, 3)), targets=[0]), "targets must have shape"),
    (lambda: retrieval_metrics(np.zeros((2, 3)), targets=[0.0, 1.0]), "targets must hold integers"),
    (lambda: retrieval_metrics(np.array([[np.nan, 1.0]])), "similarity contains NaN"),
    (lambda: retrieval_metrics(np.array([["a", "b"]])), "similarity must hold numbers"),
    (lambda: topk_accuracy(np.zeros((2, 3)), [0, 1], k=0), "k must be"),
    (lambda: topk_accuracy(np.zeros((2, 3)), [0, 1], k=()), "k must be"),
    (lambda: topk_accuracy(np.zeros((2, 3)), [0, 1, 2]), "labels must have shape"),
    (lambda: topk_accuracy(np.zeros(3), [0]), "logits must be a non-empty"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
