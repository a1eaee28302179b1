"""Packing a manifest into WebDataset-style tar shards and streaming them back."""
import io
import json
import tarfile

import pytest
import torch
from torch.utils.data import DataLoader

from vatt.data import shards
from vatt.data.__main__ import main
from vatt.data.datasets.manifest import ManifestDataset
from vatt.data.replicas import REPLICAS
from vatt.data.sampler import collate

PACK = dict(fps=10, size=24, audio_rate=8000, clips_per_shard=2)
READ = dict(frames=4, size=16, audio_rate=8000)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    kwargs = REPLICAS["manifest"](root / "source")
    counts = shards.pack_manifest(kwargs["path"], root / "packed", workers=2, **PACK)
    return root / "packed", kwargs, counts


def test_shards_follow_the_webdataset_layout(packed):
    folder, _, counts = packed
    assert counts == {"clips": 3, "shards": 2, "skipped": 0, "reused": 0}
    with tarfile.open(folder / "shard-000000.tar") as archive:
        names = archive.getnames()
        meta = json.loads(archive.extractfile("000000000.json").read())
    assert "000000000.wav" in names and "000000001.json" in names
    assert sorted(n for n in names if n.startswith("000000000.") and n.endswith(".jpg"))[-1] == "000000000.00015.jpg"
    assert meta["frames"] == 16 and meta["fps"] == 10 and meta["duration"] == pytest.approx(1.6)
    assert meta["captions"][0] == {"text": "a red clip", "start": 0.0, "end": pytest.approx(0.8)}
    index = json.loads((folder / "index.json").read_text())
    assert index["clips"] == 3 and index["classes"] == ["class0", "class1", "class2"] and index["captioned"]


def test_packing_resumes_without_redoing_finished_shards(packed, tmp_path):
    folder, kwargs, _ = packed
    (folder / "shard-000001.tar").unlink()  # as if the run had stopped before the last shard
    assert shards.pack_manifest(kwargs["path"], folder, **PACK)["reused"] == 1
    assert (folder / "shard-000001.tar").is_file() and not list(folder.glob("*.partial"))
    with pytest.raises(ValueError, match="other settings"):
        shards.pack_manifest(kwargs["path"], folder, **{**PACK, "fps": 25})


def test_streamed_samples_match_the_manifest_dataset_in_evaluation(packed):
    folder, kwargs, _ = packed
    streamed = sorted(shards.ShardDataset(str(folder), vocabulary=kwargs["vocabulary"], train=False, clips=1,
                                          **READ), key=lambda s: int(s["label"]))
    direct = ManifestDataset(kwargs["path"], vocabulary=kwargs["vocabulary"], train=False, clips=1, **READ)
    assert len(streamed) == 3
    for n, sample in enumerate(streamed):
        reference = direct[n]
        assert sample.keys() == reference.keys() and sample["caption"] == reference["caption"]
        assert (sample["video"] - reference["video"]).abs().mean() < 0.05  # JPEG and resizing on top of H.264
        assert torch.equal(sample["text"], reference["text"]) and torch.equal(sample["label"], reference["label"])
        torch.testing.assert_close(sample["audio"], reference["audio"], atol=2e-3, rtol=0)


def test_readers_split_the_shards_without_overlap(packed, monkeypatch):
    folder, kwargs, _ = packed
    dataset = shards.ShardDataset(str(folder), vocabulary=kwargs["vocabulary"], **READ)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        parts = []
        for reader in range(2):  # e.g. 2 ranks × 1 worker
            monkeypatch.setattr(shards, "_process_slot", lambda reader=reader: (reader, 2))
            parts.append(dataset.my_shards())
        assert not set(parts[0]) & set(parts[1]) and len(parts[0]) + len(parts[1]) == 2
    monkeypatch.undo()
    loader = DataLoader(dataset, batch_size=1, num_workers=2, collate_fn=collate)
    assert sorted(int(b["label"]) for b in loader) == [0, 1, 2]  # each clip once over both workers


def test_training_streams_are_shuffled_augmented_and_seeded(packed):
    folder, kwargs, _ = packed
    def labels(epoch, seed=0):
        dataset = shards.ShardDataset(str(folder), vocabulary=kwargs["vocabulary"], shuffle_buffer=2, seed=seed,
                                      **READ)
        dataset.set_epoch(epoch)
        samples = list(dataset)
        return [int(s["label"]) for s in samples], samples[0]["video"]
    first, video = labels(0)
    again, same_video = labels(0)
    assert first == again and torch.equal(video, same_video) and sorted(first) == [0, 1, 2]
    assert {tuple(labels(epoch)[0]) for epoch in range(6)} != {tuple(first)}  # the order changes with epochs


def test_a_corrupt_sample_is_skipped_and_counted(tmp_path, packed):
    folder, kwargs, _ = packed
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("index.json", "pack.json", "shard-000001.tar"):
        (broken / name).write_bytes((folder / name).read_bytes())
    with tarfile.open(folder / "shard-000000.tar") as source, tarfile.open(broken / "shard-000000.tar", "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "000000000.00002.jpg":
                data = b"\xff\xd8 not a jpeg"
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    dataset = shards.ShardDataset(str(broken), vocabulary=kwargs["vocabulary"], train=False, clips=1,
                                  frames=16, fps=10, size=16)  # reads every frame: the broken one too
    assert len(list(dataset)) == 2 and dataset.failed == 1


def test_pack_command(tmp_path, capsys):
    kwargs = REPLICAS["manifest"](tmp_path / "source")
    assert main(["pack", kwargs["path"], str(tmp_path / "out"), "--size", "24", "--audio-rate", "8000"]) == 0
    assert "3 clips in 1 shards" in capsys.readouterr().out
    assert shards.ShardDataset(str(tmp_path / "out"), vocabulary=kwargs["vocabulary"], **READ).num_clips == 3


def test_make_loader_streams_shards_epoch_after_epoch(packed):
    from vatt.data.loader import make_loader

    folder, kwargs, _ = packed
    dataset = shards.ShardDataset(str(folder), vocabulary=kwargs["vocabulary"], shuffle_buffer=1, **READ)
    batches = make_loader(dataset, batch_size=3, seed=0, num_workers=0)
    first, second = next(batches), next(batches)
    assert first["video"].shape == (3, 3, 4, 16, 16) and sorted(first["label"].tolist()) == [0, 1, 2]
    assert dataset.epoch == 1 and not torch.equal(first["video"], second["video"])
    resumed = make_loader(dataset, batch_size=3, start_step=5)  # 3 clips make 1 step per epoch: epoch 5
    assert next(resumed)["video"].shape[0] == 3 and dataset.epoch == 5
