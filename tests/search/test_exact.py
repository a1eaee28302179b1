"""Exact search over float16 rows (a float16 first pass, then float32 rescoring) equals brute force in float64,
also when many scores lie closer together than float16 can tell apart."""
import numpy as np
import pytest
import torch

from vatt.search import exact


def unit_rows(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


@pytest.fixture(params=["spread", "crowded"])
def rows(request):
    if request.param == "spread":
        matrix = unit_rows(3000, 64, 0)
    else:  # 3000 near-copies of one row: scores within ~1e-3 of each other, finer than float16's steps
        base = unit_rows(1, 64, 0).astype(np.float64)
        noisy = base + 2e-3 * np.random.default_rng(1).standard_normal((3000, 64))
        matrix = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float16)
    query = torch.from_numpy(unit_rows(1, 64, 2)[0].astype(np.float32))
    truth = matrix.astype(np.float64) @ query.numpy().astype(np.float64)  # [N]
    return matrix, query, truth


@pytest.mark.parametrize("chunk_rows", [7, 1024, 65536])
def test_top_k_is_the_exact_k_best_best_first(rows, chunk_rows):
    matrix, query, truth = rows
    values, best = exact.top_k(matrix, query, 10, chunk_rows=chunk_rows)
    assert best.tolist() == np.argsort(-truth, kind="stable")[:10].tolist()
    assert np.allclose(values, truth[best], atol=1e-6)


def test_excluded_rows_never_come_back(rows):
    matrix, query, truth = rows
    excluded = np.zeros(len(matrix), dtype=bool)
    excluded[np.argsort(-truth)[:5]] = True
    _, best = exact.top_k(matrix, query, 10, excluded=excluded)
    assert best.tolist() == [r for r in np.argsort(-truth, kind="stable") if not excluded[r]][:10]
    assert exact.top_k(matrix, query, 10, excluded=np.ones(len(matrix), dtype=bool))[1].size == 0


def test_per_group_search_keeps_the_best_row_of_each_of_the_best_groups(rows):
    matrix, query, truth = rows
    groups = np.random.default_rng(3).integers(0, 300, len(matrix))
    excluded = np.random.default_rng(4).random(len(matrix)) < 0.1
    values, best = exact.top_k(matrix, query, 10, groups=groups, excluded=excluded)
    by_group = {}
    for row in np.argsort(-truth, kind="stable"):
        if not excluded[row]:
            by_group.setdefault(groups[row], row)
    expected = sorted(by_group.values(), key=lambda r: (-truth[r], r))[:10]
    assert best.tolist() == expected and len({groups[r] for r in best}) == 10
    assert np.allclose(values, truth[expected], atol=1e-6)


def test_rank_orders_given_candidates_and_groups_them():
    values = torch.tensor([0.1, 0.9, 0.5, 0.9, 0.7])
    rows = np.array([3, 8, 10, 12, 20])
    assert exact.rank(rows, values, 3)[1].tolist() == [8, 12, 20]
    groups = np.zeros(21, dtype=np.int64)
    groups[[10, 20]] = 1
    assert exact.rank(rows, values, 3, groups)[1].tolist() == [8, 20]
