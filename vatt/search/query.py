"""Searching an index: a query embedded by the index's own model, scored against the stored windows.

Text searches the video windows in the video-text space S_vt; a sound or a video searches them in the
video-audio space S_va (audio→video, video→video), and may search the windows of sound files there too.
`per_file` keeps the best window of each file. An index answers only to the model that built it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vatt.data.decode import MediaError
from vatt.errors import UserError
from vatt.search import approximate, exact
from vatt.search.encoder import Encoder
from vatt.search.model import SearchModel
from vatt.search.store import Index

QUERY_SPACES = {"text": "vt", "audio": "va", "video": "va"}
MAX_K = 1000
PER_FILE_CANDIDATES = 10  # approximate per-file search: windows of one file among the candidates, at most


@dataclass
class Hit:
    path: str
    start: float
    end: float
    score: float
    window: int
    file: int
    kind: str

    def to_dict(self) -> dict:
        return asdict(self)


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise UserError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
    return k


class Searcher:
    """An index and its model, ready to answer queries (`text`, `media`)."""

    def __init__(self, index: Index, model: SearchModel, *, approximate_search: bool = False):
        index.check_same_model(model.fingerprint, model.path)
        self.index = index
        self.model = model
        self.encoder = Encoder(model)
        self.approximate_search = approximate_search
        self._owners: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, directory: str | Path, model: str | Path | None = None, device="cpu", **options) -> "Searcher":
        index = Index.open(directory)
        path = Path(model or index.meta["model"])
        if model is None and not path.is_dir():
            raise UserError(f"the model that built {directory} is not at {path} any more; pass its new place "
                            f"with --model")
        return cls(index, SearchModel.load(path, device), **options)

    # queries ------------------------------------------------------------------------------------------------
    def text(self, texts: list[str], k: int = 10, per_file: bool = False) -> list[list[Hit]]:
        texts = [t.strip() for t in texts]
        if not texts or not all(texts):
            raise UserError("a text query must not be empty")
        queries = self.encoder.text(texts)[QUERY_SPACES["text"]]  # [Q, d]
        return [self.search(q, QUERY_SPACES["text"], k, per_file) for q in queries]

    def media(self, path: str | Path, modality: str, k: int = 10, per_file: bool = False,
              kinds: tuple[str, ...] = ("video",)) -> list[Hit]:
        """Windows like the sound (`modality` "audio") or the video of a file, in S_va."""
        embed = self.encoder.audio if modality == "audio" else self.encoder.video
        try:
            query = embed([str(path)])[QUERY_SPACES[modality]][0]  # [d]
        except MediaError as exc:
            raise UserError(f"the query {modality} {exc}") from None
        return self.search(query, QUERY_SPACES[modality], k, per_file, kinds)

    def search(self, query: torch.Tensor, space: str, k: int = 10, per_file: bool = False,
               kinds: tuple[str, ...] = ("video",)) -> list[Hit]:
        check_k(k)
        hits = []
        for kind in kinds:
            if space in self.index.widths.get(kind, {}) and self.index.rows(kind):
                hits += self._search_kind(query, kind, space, k, per_file)
        return sorted(hits, key=lambda h: -h.score)[:k]

    # scoring ----------------------------------------------------------------------------------------------
    def _search_kind(self, query: torch.Tensor, kind: str, space: str, k: int, per_file: bool) -> list[Hit]:
        matrix = self.index.matrix(kind, space)
        owners = self._owner(kind) if per_file or self.index.unused_rows() else None
        groups = owners if per_file else None
        excluded = owners < 0 if owners is not None else None  # rows of removed files, before compaction
        if self.approximate_search:
            approx = approximate.load(self.index, kind, space)
            if approx is None:
                raise UserError(f"{self.index.directory} has no up-to-date approximate index of its {kind} windows "
                                f"in {space}; build one with python -m vatt.search index ... --approximate")
            wanted = approximate.candidates_for(k * PER_FILE_CANDIDATES if per_file else k) + self.index.unused_rows()
            rows = np.sort(approx.candidates(query, wanted))
            rows = rows[~excluded[rows]] if excluded is not None else rows
            values, rows = exact.rank(rows, exact.exact_scores(matrix, rows, query), k, groups)  # re-ranked exactly
        else:
            values, rows = exact.top_k(matrix, query, k, groups=groups, excluded=excluded)
        windows = self.index.windows_at(kind, rows)
        return [Hit(w.path, w.start, w.end, float(score), w.id, w.file_id, kind)
                for score, row in zip(values, rows) if (w := windows.get(int(row))) is not None]

    def _owner(self, kind: str) -> np.ndarray:
        if kind not in self._owners:
            self._owners[kind] = self.index.file_of_rows(kind)
        return self._owners[kind]
