"""Average precision, mAP, ROC-AUC and d′: hand-computed cases (ties included) and scikit-learn on random data."""
import math

import numpy as np
import pytest
import torch

from vatt.metrics import average_precision, d_prime, mean_average_precision, multilabel_metrics, per_class, roc_auc


def test_average_precision_by_hand():
    # ranked: pos, neg, pos, neg -> precision at the positives 1/1 and 2/3
    assert average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.1, 0.2, 0.3], [1, 0, 0]) == pytest.approx(1 / 3)
    assert average_precision([3, 2, 1], [1, 1, 0]) == 1.0


def test_average_precision_takes_a_tie_as_one_step():
    # the top two tie (one positive, one negative): both enter together, precision 1/2 for that positive;
    # the last positive comes at rank 4 with 2 of 4 positive
    scores = [0.5, 0.5, 0.2, 0.1]
    targets = [1, 0, 0, 1]
    assert average_precision(scores, targets) == pytest.approx((1 / 2 + 2 / 4) / 2)
    # all tied: precision is the positive rate wherever you stop
    assert average_precision([1, 1, 1, 1], [1, 0, 0, 1]) == pytest.approx(0.5)


def test_roc_auc_by_hand_with_half_credit_for_ties():
    # positives 0.9 and 0.4 against negatives 0.5 and 0.4: pairs won 2 (0.9) + 0 + 0.5 (tie) of 4
    assert roc_auc([0.9, 0.4, 0.5, 0.4], [1, 1, 0, 0]) == pytest.approx(2.5 / 4)
    assert roc_auc([1, 2, 3], [0, 0, 1]) == 1.0
    assert roc_auc([1, 2, 3], [1, 0, 0]) == 0.0
    assert roc_auc([7, 7, 7, 7], [1, 0, 1, 0]) == 0.5


def test_undefined_classes_are_nan_and_left_out_of_the_mean():
    assert math.isnan(average_precision([0.1, 0.2], [0, 0]))
    assert math.isnan(roc_auc([0.1, 0.2], [1, 1]))
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.7]])
    targets = np.array([[1, 0], [0, 0], [0, 0]])  # class 1 has no positive
    assert np.isnan(per_class(average_precision, scores, targets)[1])
    assert mean_average_precision(scores, targets) == 1.0


def test_d_prime_from_auc():
    assert d_prime(0.5) == 0.0
    assert d_prime(0.75) == pytest.approx(math.sqrt(2) * 0.6744897501960817)
    assert d_prime(1.0) == math.inf
    np.testing.assert_allclose(d_prime(np.array([0.25, 0.75])), [-0.9538726, 0.9538726], atol=1e-6)


def test_multilabel_metrics_of_a_perfect_and_a_reversed_ranking():
    targets = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    perfect = multilabel_metrics(targets * 2.0 - 1, targets)
    assert perfect["mAP"] == 1.0 and perfect["AUC"] == 1.0 and perfect["d_prime"] == math.inf
    reversed_ = multilabel_metrics(1 - targets * 2.0, targets)
    # each class: its two negatives tie on top, its two positives tie below: precision 2/4 at full recall
    assert reversed_["AUC"] == 0.0 and reversed_["mAP"] == 0.5


def test_accepts_tensors_and_bool_targets():
    scores = torch.tensor([[0.3, 0.1], [0.2, 0.9]], dtype=torch.bfloat16)
    targets = torch.tensor([[True, False], [False, True]])
    assert multilabel_metrics(scores, targets)["mAP"] == 1.0


def test_matches_scikit_learn_on_random_data():
    from sklearn import metrics  # in the test extra: a missing one fails rather than skips
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(5, 200))
        targets = rng.integers(0, 2, n)
        if targets.min() == targets.max():
            continue
        # half the trials on a few discrete values, so that ties are everywhere
        scores = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.normal(size=n) + targets
        assert average_precision(scores, targets) == pytest.approx(metrics.average_precision_score(targets, scores))
        assert roc_auc(scores, targets) == pytest.approx(metrics.roc_auc_score(targets, scores))
    scores = rng.normal(size=(300, 7))
    targets = (rng.random((300, 7)) < 0.3).astype(int)
    assert mean_average_precision(scores, targets) == pytest.approx(
        metrics.average_precision_score(targets, scores, average="macro"))
    assert multilabel_metrics(scores, targets)["AUC"] == pytest.approx(
        metrics.roc_auc_score(targets, scores, average="macro"))


@pytest.mark.parametrize("call, message", [
    (lambda: average_precision([0.1, 0.2], [0, 2]), "targets must hold only 0 and 1"),
    (lambda: average_precision([0.1, 0.2], [0]), "targets must have the shape"),
    (lambda: roc_auc(np.zeros((2, 2)), np.zeros((2, 2))), "scores must be a non-empty"),
    (lambda: roc_auc([np.nan, 0.2], [0, 1]), "scores contains NaN"),
    (lambda: mean_average_precision(np.zeros(3), np.zeros(3)), r"scores must be a non-empty \[N, C\]"),
    (lambda: mean_average_precision(np.zeros((3, 2)), np.zeros((3, 2))), "mAP is undefined"),
    (lambda: d_prime(1.5), "auc must lie in"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
