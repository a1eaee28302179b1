"""python -m vatt.search index: windows with their times, in DataLoader workers; re-runs index only what changed;
unreadable files are listed; an interrupted run keeps what it committed."""
import os

import numpy as np
import pytest
import torch

from tests.search.conftest import RATE
from vatt.data.encode import write_audio
from vatt.search.cli import main
from vatt.search.encoder import Encoder
from vatt.search.indexer import build_index
from vatt.search.model import SearchModel
from vatt.search.sources import media_files
from vatt.search.store import Index


@pytest.fixture(scope="module")
def model(random_model):
    return SearchModel.load(random_model)


def windows_of(index: Index) -> dict[str, list[tuple[float, float]]]:
    found = {}
    for kind in ("video", "audio"):
        for window in index.windows_at(kind, range(index.rows(kind))).values():
            found.setdefault(os.path.basename(window.path), []).append((round(window.start, 3), round(window.end, 3)))
    return {name: sorted(times) for name, times in found.items()}


def test_every_file_is_cut_into_windows_with_their_times_and_bad_files_are_listed(random_model, media_dir, tmp_path,
                                                                                  capsys):
    assert main(["index", str(random_model), str(media_dir), str(tmp_path / "index"), "--workers", "2",
                 "--batch-size", "4"]) == 0
    out, err = capsys.readouterr()
    index = Index.open(tmp_path / "index")
    assert windows_of(index) == {
        "long.mp4": [(0.0, 0.8), (0.8, 1.6), (1.6, 2.4), (2.4, 3.2), (3.2, 4.0)],
        "clip.mp4": [(0.0, 0.8)],
        "sound.wav": [(0.0, 0.8), (0.5, 1.3)],  # the tail window is aligned to the end
    }
    assert index.counts() == {"files": 3, "video windows": 6, "audio windows": 2}
    assert "indexed 3 file(s), 8 window(s)" in out and "2 unreadable" in out
    assert "broken.mp4: cannot open" in out and "short.mp4: lasts 0.400 s, shorter than one clip" in out
    assert "indexing" in err and "file" in err and "windows/s" in err  # the progress bar


def test_stored_vectors_are_the_encoders_embeddings_in_float16(model, media_dir, tmp_path):
    _, index = build_index(model, [str(media_dir / "nested" / "clip.mp4")], tmp_path / "index", num_workers=1,
                           progress=False)
    expected = Encoder(model).video([str(media_dir / "nested" / "clip.mp4")], clips=1)
    for space in ("vt", "va"):
        stored = torch.from_numpy(index.matrix("video", space).astype(np.float32))  # [1, d]
        assert torch.allclose(stored, expected[space], atol=2e-3)


def test_a_rerun_indexes_only_new_and_changed_files_and_drops_deleted_ones(model, media_dir, tmp_path):
    target = tmp_path / "index"
    first, index = build_index(model, media_files(media_dir), target, num_workers=1, progress=False)
    before = {name: times for name, times in windows_of(index).items()}
    long_rows = index.matrix("video", "vt")[:5].copy()
    again, _ = build_index(model, media_files(media_dir), target, num_workers=1, progress=False)
    assert (again.indexed, again.unchanged, again.removed, again.windows) == (0, 3, 0, 0)
    assert len(again.failed) == 2  # unreadable files are tried again: they may have been fixed

    t = np.arange(int(2.0 * RATE)) / RATE
    write_audio(media_dir / "sound.wav", 0.3 * np.sin(2 * np.pi * 660 * t), rate=RATE)  # changed: now 2 s
    os.remove(media_dir / "nested" / "clip.mp4")
    (media_dir / "broken.mp4").unlink()
    third, index = build_index(model, media_files(media_dir), target, num_workers=1, progress=False)
    assert (third.indexed, third.unchanged, third.removed) == (1, 1, 2)
    assert windows_of(index) == {"long.mp4": before["long.mp4"], "sound.wav": [(0.0, 0.8), (0.8, 1.6), (1.2, 2.0)]}
    assert index.unused_rows() == 0  # compacted: the rows of removed files are gone
    rows = index.file_of_rows("video")
    assert np.array_equal(index.matrix("video", "vt")[rows == index.files()[str(media_dir / "long.mp4")].id],
                          long_rows)


def test_an_interrupted_run_keeps_every_committed_file(model, media_dir, tmp_path, monkeypatch):
    paths = media_files(media_dir)
    commits = []
    real = Index.add_files

    def add_then_stop(self, added):
        if commits:
            raise KeyboardInterrupt
        commits.append([record.path for record, _, _ in added])
        real(self, added)

    monkeypatch.setattr(Index, "add_files", add_then_stop)
    with pytest.raises(KeyboardInterrupt):
        build_index(model, paths, tmp_path / "index", batch_size=1, num_workers=0, progress=False)
    monkeypatch.setattr(Index, "add_files", real)
    kept = Index.open(tmp_path / "index")
    assert sorted(kept.files()) == sorted(commits[0]) and kept.rows("video") + kept.rows("audio") >= 1
    resumed, index = build_index(model, paths, tmp_path / "index", num_workers=1, progress=False)
    assert resumed.unchanged == len(commits[0]) and index.counts()["files"] == 3


def rows_by_window(index: Index, kind: str) -> dict[tuple[str, float], int]:
    return {(w.path, round(w.start, 3)): row for row, w in index.windows_at(kind, range(index.rows(kind))).items()}


def test_more_workers_give_the_same_index(model, media_dir, tmp_path):
    _, serial = build_index(model, media_files(media_dir), tmp_path / "serial", num_workers=0, progress=False)
    _, parallel = build_index(model, media_files(media_dir), tmp_path / "parallel", num_workers=2, batch_size=3,
                              progress=False)
    assert windows_of(serial) == windows_of(parallel)
    for kind, space in (("video", "vt"), ("video", "va"), ("audio", "va")):
        a, b = rows_by_window(serial, kind), rows_by_window(parallel, kind)
        assert set(a) == set(b)
        order_a, order_b = [a[key] for key in sorted(a)], [b[key] for key in sorted(a)]
        assert np.allclose(serial.matrix(kind, space)[order_a].astype(np.float32),
                           parallel.matrix(kind, space)[order_b].astype(np.float32), atol=2e-3)


def test_a_manifest_and_a_dataset_config_name_their_files(media_dir, tmp_path):
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text('{"video": "media/long.mp4"}\n{"video": "media/sound.wav"}\n{"video": "media/long.mp4"}\n')
    assert media_files(manifest) == [str(media_dir / "long.mp4"), str(media_dir / "sound.wav")]
    config = tmp_path / "data.yaml"
    config.write_text(f"data:\n  eval: {{type: manifest, path: {manifest}}}\n")
    assert media_files(config) == media_files(manifest)
    node = tmp_path / "node.yaml"
    node.write_text(f"type: manifest\npath: {manifest}\n")
    assert media_files(node) == media_files(manifest)
