"""One matrix of embeddings on disk: raw float16 rows of `dim` values, appended, read memory-mapped.

The file has no header: its shape is (rows, dim) with `rows` kept by the index's database, which is
committed only after the rows it counts are on disk. Rows past that count are the remains of an interrupted
write and are cut off before the next one (`truncate`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DTYPE = np.dtype(np.float16)
COPY_ROWS = 65536  # rows moved at a time when a matrix is rewritten


class VectorFile:
    def __init__(self, path: Path, dim: int):
        self.path = Path(path)
        self.dim = dim
        self.row_bytes = dim * DTYPE.itemsize

    def stored_rows(self) -> int:
        return self.path.stat().st_size // self.row_bytes if self.path.exists() else 0

    def truncate(self, rows: int) -> None:
        """Keep the first `rows` rows (dropping what an interrupted write left after them)."""
        if self.stored_rows() < rows:
            raise ValueError(f"{self.path}: holds {self.stored_rows()} rows, the index counts {rows}; the index "
                             f"is damaged (a vector file was replaced or cut)")
        with open(self.path, "ab") as handle:
            handle.truncate(rows * self.row_bytes)

    def append(self, rows: np.ndarray) -> None:
        """Write rows [n, dim] at the end and make them durable before the database counts them."""
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"rows must be [n, {self.dim}], got {list(rows.shape)}")
        with open(self.path, "ab") as handle:
            handle.write(np.ascontiguousarray(rows, dtype=DTYPE).tobytes())
            handle.flush()
            os.fsync(handle.fileno())

    def read(self, rows: int) -> np.ndarray:
        """The first `rows` rows, memory-mapped: [rows, dim] float16."""
        if rows == 0:
            return np.zeros((0, self.dim), dtype=DTYPE)
        return np.memmap(self.path, dtype=DTYPE, mode="c", shape=(rows, self.dim))  # copy-on-write: the file stays

    def copy_rows(self, rows: int, keep: np.ndarray, destination: "VectorFile") -> None:
        """Write rows `keep` (ascending indices below `rows`) to `destination`, a new file, durably."""
        source = self.read(rows)
        with open(destination.path, "wb") as handle:
            for first in range(0, len(keep), COPY_ROWS):
                handle.write(np.ascontiguousarray(source[keep[first:first + COPY_ROWS]]).tobytes())
            handle.flush()
            os.fsync(handle.fileno())
