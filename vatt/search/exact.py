"""Exact top-k by cosine similarity over a memory-mapped float16 matrix of unit rows.

Two passes, both exact in the end. The first multiplies the float16 rows with the query a chunk at a time
in float16 (PyTorch's CPU half matrix-vector product accumulates in float32, so its only error is the final
rounding to float16, at most 2^-12 for a score in [-1, 1]); it reads each stored byte once and holds one
score per row. Every row within MARGIN of the k-th best first-pass score (of the k-th best file's, per file)
is then scored again in float32 from the stored values, and the k best of those are the answer: a row of the
exact top k cannot be more than twice the rounding error below the k-th first-pass score.
"""
from __future__ import annotations

import numpy as np
import torch

CHUNK_ROWS = 65536  # 32 MiB of float16 at 256-d per product; the map is paged in as the chunks are read
MARGIN = 2.0**-8  # far above twice the first pass's rounding error (2^-11)


def coarse_scores(matrix: np.ndarray, query: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """First-pass scores [N] float16 of the rows of `matrix` [N, d] float16 with `query` [d]."""
    rows, dim = matrix.shape
    query = query.to(torch.float16).reshape(dim)
    out = torch.empty(rows, dtype=torch.float16)
    for first in range(0, rows, chunk_rows):
        chunk = torch.from_numpy(np.asarray(matrix[first:first + chunk_rows]))  # [n, d] float16, a view of the map
        torch.mv(chunk, query, out=out[first:first + len(chunk)])
    return out


def exact_scores(matrix: np.ndarray, rows: np.ndarray, query: torch.Tensor) -> torch.Tensor:
    """Scores [n] float32 of the rows `rows` (ascending) of `matrix`, from their stored float16 values."""
    picked = torch.from_numpy(np.asarray(matrix[rows], dtype=np.float32))  # [n, d]
    return picked @ query.to(torch.float32).reshape(-1)


def rank(rows: np.ndarray, values: torch.Tensor, k: int, groups: np.ndarray | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """(scores [k'], rows [k']) of the k best of `rows` by `values`, best first; with `groups` (the group of
    every row of the matrix) only each group's best row competes (the first such row on a tie)."""
    if groups is not None and len(rows):
        owner = groups[rows]
        order = np.lexsort((rows, -values.numpy()))  # best first, then by row
        _, first = np.unique(owner[order], return_index=True)  # each group's best
        keep = np.sort(order[first])
        rows, values = rows[keep], values[torch.from_numpy(keep)]
    top = torch.topk(values, min(k, len(rows)))
    order = np.lexsort((rows[top.indices.numpy()], -top.values.numpy()))  # ties: the lower row first
    return top.values.numpy()[order], rows[top.indices.numpy()][order]


def top_k(matrix: np.ndarray, query: torch.Tensor, k: int, *, groups: np.ndarray | None = None,
          excluded: np.ndarray | None = None, chunk_rows: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(scores [k'], rows [k']) of the exact k best rows, best first, leaving out the rows `excluded` [N]
    (bool); with `groups` [N], the best row of each of the k best groups."""
    coarse = coarse_scores(matrix, query, chunk_rows).to(torch.float32)  # [N]
    if excluded is not None:
        coarse[torch.from_numpy(excluded)] = -torch.inf
    finite = torch.nonzero(torch.isfinite(coarse)).squeeze(1)
    if not len(finite):
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    if groups is None:
        kth = torch.topk(coarse[finite], min(k, len(finite))).values[-1]
    else:
        ids, dense = torch.unique(torch.from_numpy(groups)[finite], return_inverse=True)
        best = torch.full((len(ids),), -torch.inf).scatter_reduce_(0, dense, coarse[finite], "amax")  # [groups]
        kth = torch.topk(best, min(k, len(ids))).values[-1]
    candidates = torch.nonzero(coarse >= kth - MARGIN).squeeze(1).numpy()  # ascending rows
    return rank(candidates, exact_scores(matrix, candidates, query), k, groups)
