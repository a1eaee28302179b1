"""The index folder: an SQLite database of files and windows, and float16 matrices of their embeddings.

    INDEX_DIR/index.sqlite          meta (model, media settings, widths, row counts), files, windows
    INDEX_DIR/video.vt.<gen>.f16    [video windows, d_vt] float16 (see vatt.search.vectors)
    INDEX_DIR/video.va.<gen>.f16    [video windows, d_va]
    INDEX_DIR/audio.va.<gen>.f16    [audio windows, d_va]

A window has a `kind` (the file's: video or audio) and a `row` in each of its kind's matrices. Files are
added in transactions that commit only after their vectors are on disk, so an interrupted run keeps every
file it committed and nothing else; removing a file leaves its rows unused until `compact` rewrites the
matrices as a new generation (the database switches to it in one commit; the old files are deleted after).
The index refers to its own files by name only, so the folder can be copied or moved as a whole (the media
files it indexed are named by absolute path).
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from vatt.errors import UserError
from vatt.search.vectors import VectorFile

FORMAT = 1
DB_NAME = "index.sqlite"
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, size INTEGER NOT NULL,
                    mtime_ns INTEGER NOT NULL, kind TEXT NOT NULL, duration REAL NOT NULL);
CREATE TABLE windows (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
                      kind TEXT NOT NULL, row INTEGER NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL);
CREATE INDEX windows_by_row ON windows(kind, row);
CREATE INDEX windows_by_file ON windows(file_id);
"""


@dataclass
class FileRecord:
    """A file as indexed (`id` is None before it is added)."""
    path: str
    size: int
    mtime_ns: int
    kind: str
    duration: float
    id: int | None = None


@dataclass
class Window:
    id: int
    file_id: int
    path: str
    kind: str
    start: float
    end: float


class Index:
    """An index folder, opened for reading (`open`) or for adding files (`create_or_open`)."""

    def __init__(self, directory: Path, db: sqlite3.Connection):
        self.directory = directory
        self.db = db
        self.meta: dict[str, Any] = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        self.widths: dict[str, dict[str, int]] = self.meta["widths"]

    # opening ----------------------------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        # transactions are explicit (BEGIN ... COMMIT); the web server queries from its worker threads, one at a time
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA foreign_keys = ON")
        return db

    @classmethod
    def open(cls, directory: str | Path) -> "Index":
        directory = Path(directory).expanduser()
        if not (directory / DB_NAME).is_file():
            raise UserError(f"{directory}: not an index (no {DB_NAME}); make one with python -m vatt.search index "
                            f"MODEL SOURCE {directory}")
        try:
            db = cls._connect(directory / DB_NAME)
            index = cls(directory, db)
        except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
            raise UserError(f"{directory / DB_NAME}: not a readable index ({exc})") from None
        if index.meta.get("format") != FORMAT:
            raise UserError(f"{directory}: index format {index.meta.get('format')}, this vatt reads format {FORMAT}")
        return index

    @classmethod
    def create_or_open(cls, directory: str | Path, meta: dict[str, Any]) -> "Index":
        """The index of `directory` for adding files, made with `meta` when new. An existing index must have
        been built by the same model (`meta["fingerprint"]`) with the same window settings."""
        directory = Path(directory).expanduser()
        if (directory / DB_NAME).is_file():
            index = cls.open(directory)
            index.check_same_model(meta["fingerprint"], meta["model"])
            for key in ("media", "stride"):
                if index.meta[key] != meta[key]:
                    raise UserError(f"{directory}: indexed with {key} {index.meta[key]}, now {meta[key]}; index into "
                                    f"a new folder to change it")
            index._drop_unfinished_writes()
            index.set_meta("model", meta["model"])  # the same weights, perhaps from a new place
            return index
        if directory.exists() and any(directory.iterdir()):
            raise UserError(f"{directory}: exists and is not an index; give a new or empty folder")
        directory.mkdir(parents=True, exist_ok=True)
        db = cls._connect(directory / DB_NAME)
        db.executescript("BEGIN;" + SCHEMA + "COMMIT;")
        meta = {**meta, "format": FORMAT, "generation": 0, "rows": {kind: 0 for kind in meta["widths"]}}
        db.execute("BEGIN")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
        db.execute("COMMIT")
        return cls(directory, db)

    def check_same_model(self, fingerprint: str, model: str) -> None:
        if self.meta["fingerprint"] != fingerprint:
            raise UserError(f"{self.directory} was built by another model ({self.meta['model']}, fingerprint "
                            f"{self.meta['fingerprint']}) than {model} (fingerprint {fingerprint}); its vectors mean "
                            f"nothing to this model: use that model, or index into a new folder")

    def close(self) -> None:
        self.db.close()

    # matrices ---------------------------------------------------------------------------------------------
    def vector_file(self, kind: str, space: str, generation: int | None = None) -> VectorFile:
        generation = self.meta["generation"] if generation is None else generation
        return VectorFile(self.directory / f"{kind}.{space}.{generation}.f16", self.widths[kind][space])

    def rows(self, kind: str) -> int:
        return self.meta["rows"].get(kind, 0)

    def matrix(self, kind: str, space: str) -> np.ndarray:
        """[rows, d] float16, memory-mapped; rows of removed files are still there until compaction."""
        return self.vector_file(kind, space).read(self.rows(kind))

    def _drop_unfinished_writes(self) -> None:
        current = {self.vector_file(k, s).path for k in self.widths for s in self.widths[k]}
        for leftover in self.directory.glob("*.f16"):  # another generation's, from an interrupted compaction
            if leftover not in current:
                leftover.unlink()
        for kind, spaces in self.widths.items():
            for space in spaces:
                self.vector_file(kind, space).truncate(self.rows(kind))

    def set_meta(self, key: str, value: Any) -> None:
        self.meta[key] = value
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # files ------------------------------------------------------------------------------------------------
    def files(self) -> dict[str, FileRecord]:
        rows = self.db.execute("SELECT path, size, mtime_ns, kind, duration, id FROM files")
        return {r[0]: FileRecord(*r) for r in rows}

    def remove_files(self, ids: Iterable[int]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in ids])
        self.db.execute("COMMIT")

    def add_files(self, added: list[tuple[FileRecord, list[tuple[float, float]], dict[str, np.ndarray]]]) -> None:
        """Add files with their windows [(start, end)] and vectors {space: [n, d]}, in one transaction."""
        by_kind: dict[str, list] = {}
        for item in added:
            by_kind.setdefault(item[0].kind, []).append(item)
        rows = dict(self.meta["rows"])
        for kind, items in by_kind.items():
            for space in self.widths[kind]:
                self.vector_file(kind, space).append(np.concatenate([vectors[space] for _, _, vectors in items]))
        self.db.execute("BEGIN")
        try:
            for kind, items in by_kind.items():
                for record, windows, _ in items:
                    cursor = self.db.execute("INSERT INTO files (path, size, mtime_ns, kind, duration) "
                                             "VALUES (?, ?, ?, ?, ?)", (record.path, record.size, record.mtime_ns,
                                                                        kind, record.duration))
                    record.id = cursor.lastrowid
                    self.db.executemany("INSERT INTO windows (file_id, kind, row, start_s, end_s) "
                                        "VALUES (?, ?, ?, ?, ?)", [(record.id, kind, rows[kind] + n, start, end)
                                                                   for n, (start, end) in enumerate(windows)])
                    rows[kind] += len(windows)
            self.set_meta("rows", rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            self.meta["rows"] = json.loads(self.db.execute("SELECT value FROM meta WHERE key = 'rows'").fetchone()[0])
            self._drop_unfinished_writes()
            raise

    def unused_rows(self) -> int:
        live = self.db.execute("SELECT COUNT(*) FROM windows").fetchone()[0]
        return sum(self.meta["rows"].values()) - live

    def compact(self) -> None:
        """Rewrite the matrices without the rows of removed files, as a new generation."""
        old, new = self.meta["generation"], self.meta["generation"] + 1
        counts = {}
        for kind, spaces in self.widths.items():
            keep = np.array([r for (r,) in self.db.execute("SELECT row FROM windows WHERE kind = ? ORDER BY row",
                                                           (kind,))], dtype=np.int64)
            for space in spaces:
                self.vector_file(kind, space, old).copy_rows(self.rows(kind), keep, self.vector_file(kind, space, new))
            counts[kind] = len(keep)
        self.db.execute("BEGIN")
        self.db.execute("UPDATE windows SET row = renumbered.rn FROM (SELECT id, ROW_NUMBER() OVER "
                        "(PARTITION BY kind ORDER BY row) - 1 AS rn FROM windows) AS renumbered "
                        "WHERE windows.id = renumbered.id")
        self.set_meta("rows", counts)
        self.set_meta("generation", new)
        self.db.execute("COMMIT")
        for kind, spaces in self.widths.items():
            for space in spaces:
                self.vector_file(kind, space, old).path.unlink(missing_ok=True)

    # windows ----------------------------------------------------------------------------------------------
    def windows_at(self, kind: str, rows: Iterable[int]) -> dict[int, Window]:
        """The windows of `kind` at matrix rows `rows` that belong to indexed files, by row."""
        rows = [int(r) for r in rows]
        found = {}
        for first in range(0, len(rows), 500):  # SQLite's limit on bound parameters
            part = rows[first:first + 500]
            query = ("SELECT w.row, w.id, w.file_id, f.path, w.kind, w.start_s, w.end_s FROM windows w JOIN files f "
                     f"ON f.id = w.file_id WHERE w.kind = ? AND w.row IN ({','.join('?' * len(part))})")
            found.update({r[0]: Window(*r[1:]) for r in self.db.execute(query, (kind, *part))})
        return found

    def file_of_rows(self, kind: str) -> np.ndarray:
        """The file id of every row of `kind` [rows] int64, -1 for unused rows."""
        owner = np.full(self.rows(kind), -1, dtype=np.int64)
        pairs = np.array(self.db.execute("SELECT row, file_id FROM windows WHERE kind = ?", (kind,)).fetchall(),
                         dtype=np.int64).reshape(-1, 2)  # [n, (row, file)]
        owner[pairs[:, 0]] = pairs[:, 1]
        return owner

    def window(self, window_id: int) -> Window | None:
        row = self.db.execute("SELECT w.id, w.file_id, f.path, w.kind, w.start_s, w.end_s FROM windows w JOIN files f "
                              "ON f.id = w.file_id WHERE w.id = ?", (window_id,)).fetchone()
        return Window(*row) if row else None

    def file_path(self, file_id: int) -> str | None:
        row = self.db.execute("SELECT path FROM files WHERE id = ?", (file_id,)).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        files = self.db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        windows = dict(self.db.execute("SELECT kind, COUNT(*) FROM windows GROUP BY kind").fetchall())
        return {"files": files, **{f"{kind} windows": windows.get(kind, 0) for kind in self.widths}}
