"""Approximate search for indexes of many millions of windows, through faiss (an optional extra).

An inverted file with product-quantised codes (faiss "IVF<lists>,PQ<m>x4fs": 4 bits per 4 dimensions,
scanned with SIMD; 32 bytes for a 256-d window instead of 512) proposes candidates; the searcher re-ranks them
exactly from the stored float16 vectors, so scores are exact and only the candidate set is approximate. Below
MIN_ROWS windows an exact flat faiss index stands in (no training needs so few). The index file is named by the
matrix's generation and the index's meta records how many rows it covers: one that no longer matches the
matrix is stale, and is rebuilt by the next `index` run.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from vatt.errors import UserError

MIN_ROWS = 16384
TRAIN_PER_LIST = 64  # training vectors per inverted list (faiss warns below 39)
DIMS_PER_CODE = 4  # dimensions per 4-bit code of the fast-scan product quantiser
ADD_ROWS = 262144  # rows widened to float32 and added at a time
DEFAULT_PROBE_SHARE = 1 / 16  # lists visited per query
RERANK_PER_RESULT, RERANK_MIN = 100, 1000  # candidates re-ranked exactly per result wanted, and at least
META_KEY = "approximate"


def available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss():
    try:
        import faiss
    except ImportError:
        raise UserError("approximate search needs faiss: pip install faiss-cpu (or vatt[ann])") from None
    return faiss


def candidates_for(k: int) -> int:
    """How many candidates to re-rank exactly for k results: product-quantised scores are coarse."""
    return max(RERANK_PER_RESULT * k, RERANK_MIN)


def lists_for(rows: int) -> int:
    return max(1, min(round(4 * math.sqrt(rows)), rows // TRAIN_PER_LIST))


class Approximate:
    """A faiss index over one matrix; `candidates` gives the rows of its best matches for a query."""

    def __init__(self, faiss_index, description: str = "", probes: int | None = None):
        self.faiss_index = faiss_index
        self.description = description or type(faiss_index).__name__
        lists = getattr(faiss_index, "nlist", None)
        if lists is not None:
            self.faiss_index.nprobe = probes or max(1, round(lists * DEFAULT_PROBE_SHARE))

    def candidates(self, query: torch.Tensor, count: int) -> np.ndarray:
        query = query.to(torch.float32).reshape(1, -1).numpy()  # [1, d]
        _, rows = self.faiss_index.search(query, count)  # [1, count], -1 where fewer exist
        return rows[0][rows[0] >= 0].astype(np.int64)


def factory_for(rows: int, dim: int) -> str:
    """The faiss index description for a matrix: IVF-PQ, or a flat (exact) one below MIN_ROWS."""
    if rows < MIN_ROWS:
        return "Flat"
    codes = max(2, dim // DIMS_PER_CODE)
    while codes > 2 and (dim % codes or codes % 2):  # equal parts of the vector, an even number (fast scan)
        codes -= 1
    if dim % codes:  # an odd width: no product quantiser fits, the inverted file keeps the vectors whole
        return f"IVF{lists_for(rows)},Flat"
    return f"IVF{lists_for(rows)},PQ{codes}x4fs"


def train(matrix: np.ndarray, *, seed: int = 0) -> Approximate:
    """A faiss index of `matrix` [N, d] float16 (memory-mapped is fine: it is read in chunks)."""
    faiss = _faiss()
    rows, dim = matrix.shape
    factory = factory_for(rows, dim)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        lists = faiss.extract_index_ivf(index).nlist
        sample = np.sort(np.random.default_rng(seed).choice(rows, min(rows, lists * TRAIN_PER_LIST), replace=False))
        index.train(np.asarray(matrix[sample], dtype=np.float32))  # [n_train, d]
    for first in range(0, rows, ADD_ROWS):
        index.add(np.asarray(matrix[first:first + ADD_ROWS], dtype=np.float32))
    return Approximate(index, factory)


def _path(index, kind: str, space: str):
    return index.directory / f"{kind}.{space}.{index.meta['generation']}.faiss"


def build(index, kind: str, space: str) -> None:
    """Train and write the approximate index of one matrix of an `Index`."""
    faiss = _faiss()
    approx = train(index.matrix(kind, space))
    for stale in index.directory.glob(f"{kind}.{space}.*.faiss"):
        stale.unlink()
    faiss.write_index(approx.faiss_index, str(_path(index, kind, space)))
    covered = {**index.meta.get(META_KEY, {}), f"{kind}.{space}": index.rows(kind)}
    index.set_meta(META_KEY, covered)


def load(index, kind: str, space: str) -> Approximate | None:
    """The current approximate index of a matrix, or None when there is none or it is stale."""
    current = index.meta.get(META_KEY, {}).get(f"{kind}.{space}") == index.rows(kind)
    if not current or not _path(index, kind, space).is_file():
        return None
    return Approximate(_faiss().read_index(str(_path(index, kind, space))))


def built(index) -> bool:
    return bool(index.meta.get(META_KEY))
