"""The optional faiss index: candidates with a high recall@10 against exact search, re-ranked exactly, kept
up to date by index runs (skipped without faiss-cpu, the `ann` extra)."""
import numpy as np
import pytest
import torch

pytest.importorskip("faiss", reason="faiss-cpu is not installed (pip install faiss-cpu, the 'ann' extra)")

from vatt.search import approximate, exact  # noqa: E402
from vatt.search.indexer import build_index  # noqa: E402
from vatt.search.model import SearchModel  # noqa: E402
from vatt.search.query import Searcher  # noqa: E402
from vatt.search.sources import media_files  # noqa: E402


def clustered(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 200 centres, as windows of similar content lie: float16 [rows, dim]."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, dim))
    x = centres[rng.integers(0, 200, rows)] + 0.6 * rng.standard_normal((rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def test_ivf_pq_candidates_hold_the_exact_top_10():
    matrix = clustered(40000, 256)
    approx = approximate.train(matrix)
    assert "IVF" in type(approx.faiss_index).__name__ and approx.faiss_index.nprobe >= 1
    queries = torch.from_numpy(clustered(20, 256, seed=1).astype(np.float32))
    found = []
    for query in queries:
        truth = set(exact.top_k(matrix, query, 10)[1].tolist())
        found.append(len(truth & set(approx.candidates(query, approximate.candidates_for(10)).tolist())) / 10)
    assert np.mean(found) >= 0.9, found


def test_the_index_keeps_its_approximate_index_current_and_queries_rerank_exactly(random_model, media_dir, tmp_path):
    model = SearchModel.load(random_model)
    _, index = build_index(model, media_files(media_dir), tmp_path / "index", num_workers=0, progress=False,
                           approximate_index=True)
    assert sorted(p.name for p in index.directory.glob("*.faiss")) == ["audio.va.0.faiss", "video.va.0.faiss",
                                                                       "video.vt.0.faiss"]
    fast, slow = Searcher(index, model, approximate_search=True), Searcher(index, model)
    assert [(h.window, round(h.score, 5)) for h in fast.text(["a red ball rises"], k=5)[0]] == \
        [(h.window, round(h.score, 5)) for h in slow.text(["a red ball rises"], k=5)[0]]
    (media_dir / "nested" / "clip.mp4").unlink()
    _, index = build_index(model, media_files(media_dir), tmp_path / "index", num_workers=0, progress=False)
    assert approximate.load(index, "video", "vt").faiss_index.ntotal == index.rows("video") == 5  # rebuilt
