"""The index folder: files and windows in SQLite, float16 matrices; commits, removals, compaction,
interrupted writes, another model's index, a copied folder."""
import shutil

import numpy as np
import pytest

from vatt.errors import UserError
from vatt.search.store import FileRecord, Index

META = {"model": "/models/a", "fingerprint": "aaaa", "media": {"fps": 10.0}, "stride": None,
        "widths": {"video": {"vt": 4, "va": 6}, "audio": {"va": 6}}}


def vectors(kind: str, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {space: rng.standard_normal((n, d)).astype(np.float16) for space, d in META["widths"][kind].items()}


def add(index: Index, path: str, kind: str, n: int, seed: int) -> dict:
    added = vectors(kind, n, seed)
    index.add_files([(FileRecord(path, 100 + seed, 1000 + seed, kind, 0.8 * n),
                      [(0.8 * i, 0.8 * (i + 1)) for i in range(n)], added)])
    return added


@pytest.fixture
def index(tmp_path):
    return Index.create_or_open(tmp_path / "index", META)


def test_added_files_are_read_back_as_windows_and_memory_mapped_rows(index):
    a = add(index, "/m/a.mp4", "video", 3, 0)
    b = add(index, "/m/b.mp4", "video", 2, 1)
    s = add(index, "/m/s.wav", "audio", 4, 2)
    again = Index.open(index.directory)
    assert again.rows("video") == 5 and again.rows("audio") == 4
    assert np.array_equal(again.matrix("video", "vt"), np.concatenate([a["vt"], b["vt"]]))
    assert np.array_equal(again.matrix("audio", "va"), s["va"])
    windows = again.windows_at("video", [4, 0])
    assert (windows[4].path, windows[4].start, windows[4].end) == ("/m/b.mp4", 0.8, 1.6)
    assert windows[0].path == "/m/a.mp4" and windows[0].kind == "video"
    assert set(again.files()) == {"/m/a.mp4", "/m/b.mp4", "/m/s.wav"}
    assert again.counts() == {"files": 3, "video windows": 5, "audio windows": 4}


def test_removed_files_leave_unused_rows_until_compaction_renumbers_them(index):
    add(index, "/m/a.mp4", "video", 3, 0)
    b = add(index, "/m/b.mp4", "video", 2, 1)
    index.remove_files([index.files()["/m/a.mp4"].id])
    assert index.unused_rows() == 3 and index.file_of_rows("video").tolist()[:3] == [-1, -1, -1]
    index.compact()
    assert index.unused_rows() == 0 and index.meta["generation"] == 1
    assert np.array_equal(index.matrix("video", "va"), b["va"])
    assert [w.path for w in index.windows_at("video", [0, 1]).values()] == ["/m/b.mp4"] * 2
    assert sorted(p.name for p in index.directory.glob("*.f16")) == ["audio.va.1.f16", "video.va.1.f16",
                                                                       "video.vt.1.f16"]


def test_rows_written_but_never_committed_are_cut_off_before_the_next_write(index):
    a = add(index, "/m/a.mp4", "video", 3, 0)
    index.vector_file("video", "vt").append(vectors("video", 5, 9)["vt"])  # a run killed before its commit
    reopened = Index.create_or_open(index.directory, META)
    assert reopened.vector_file("video", "vt").stored_rows() == 3
    b = add(reopened, "/m/b.mp4", "video", 1, 1)
    assert np.array_equal(reopened.matrix("video", "vt"), np.concatenate([a["vt"], b["vt"]]))


def test_a_failed_commit_leaves_the_index_as_it_was(index):
    add(index, "/m/a.mp4", "video", 2, 0)
    with pytest.raises(Exception):
        add(index, "/m/a.mp4", "video", 2, 1)  # the same path twice: the database refuses
    assert index.rows("video") == 2 and index.vector_file("video", "vt").stored_rows() == 2
    assert Index.open(index.directory).rows("video") == 2


def test_another_models_index_or_other_window_settings_are_refused(index, tmp_path):
    with pytest.raises(UserError, match="built by another model"):
        Index.create_or_open(index.directory, {**META, "fingerprint": "bbbb"})
    with pytest.raises(UserError, match="stride"):
        Index.create_or_open(index.directory, {**META, "stride": 0.4})
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("x")
    with pytest.raises(UserError, match="not an index"):
        Index.create_or_open(tmp_path / "busy", META)
    with pytest.raises(UserError, match="not an index"):
        Index.open(tmp_path / "busy")


def test_a_copied_index_folder_is_the_same_index(index, tmp_path):
    a = add(index, "/m/a.mp4", "video", 3, 0)
    index.close()
    copy = shutil.copytree(index.directory, tmp_path / "elsewhere")
    moved = Index.open(copy)
    assert np.array_equal(moved.matrix("video", "vt"), a["vt"])
    assert moved.windows_at("video", [2])[2].end == pytest.approx(2.4)
