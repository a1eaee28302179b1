"""Packing a manifest into WebDataset-style tar shards and streaming them back."""
import io
import json
import logging
import os
import re
import shutil
import signal
import tarfile

import pytest
import torch
from torch.utils.data import DataLoader

from vatt.data import shards
from vatt.data.__main__ import main
from vatt.data.datasets.manifest import ManifestDataset
from vatt.data.loader import make_loader
from vatt.data.pack import pack_manifest
from vatt.data.sampler import collate
from vatt.errors import ConfigError, DataError
from vatt.registry import build
from vatt.testing.replicas import REPLICAS

PACK = dict(fps=10, size=24, audio_rate=8000, clips_per_shard=2)
READ = dict(frames=4, size=16, audio_rate=8000)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    kwargs = REPLICAS["manifest"](root / "source")
    counts = pack_manifest(kwargs["path"], root / "packed", workers=2, **PACK)
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
    assert pack_manifest(kwargs["path"], folder, **PACK)["reused"] == 1
    assert (folder / "shard-000001.tar").is_file() and not list(folder.glob("*.partial"))
    with pytest.raises(ValueError, match="other settings"):
        pack_manifest(kwargs["path"], folder, **{**PACK, "fps": 25})


def test_streamed_samples_match_the_manifest_dataset_in_evaluation(packed):
    folder, kwargs, _ = packed
    streamed = sorted(shards.ShardDataset(str(folder), vocabulary=kwargs["vocabulary"], train=False, clips=1,
                                          **READ), key=lambda s: int(s["label"]))
    direct = ManifestDataset(kwargs["path"], vocabulary=kwargs["vocabulary"], train=False, clips=1, **READ)
    assert len(streamed) == 3
    for n, sample in enumerate(streamed):
        reference = direct[n]
        assert sample.keys() == reference.keys() and sample["caption"] == reference["caption"]
        difference = sample["video"].float() - reference["video"].float()  # in grey levels
        assert difference.abs().mean() < 6.4  # JPEG and resizing on top of H.264
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


def copy_packed(folder, to, shard0=None):
    """A copy of the packed folder whose first shard is `shard0(original bytes)` (default: unchanged)."""
    to.mkdir()
    for name in ("index.json", "pack.json", "shard-000000.tar", "shard-000001.tar"):
        data = (folder / name).read_bytes()
        (to / name).write_bytes(shard0(data) if shard0 and name == "shard-000000.tar" else data)
    return to


def with_corrupt_jpeg(data):
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as source, tarfile.open(fileobj=out, mode="w") as archive:
        for member in source.getmembers():
            content = source.extractfile(member).read()
            if member.name == "000000000.00002.jpg":
                content = b"\xff\xd8 not a jpeg"
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    return out.getvalue()


EVERY_FRAME = dict(train=False, clips=1, frames=16, fps=10, size=16)  # reads every frame: the broken one too


def test_a_corrupt_member_is_skipped_counted_and_named(tmp_path, packed, caplog):
    folder, kwargs, _ = packed
    broken = copy_packed(folder, tmp_path / "broken", with_corrupt_jpeg)
    caplog.set_level(logging.WARNING, logger="vatt.data")
    dataset = shards.ShardDataset(str(broken), vocabulary=kwargs["vocabulary"], max_failure_rate=0.5, **EVERY_FRAME)
    assert len(list(dataset)) == 2 and dataset.failed == 1
    assert "shard-000000.tar:000000000" in caplog.text
    strict = shards.ShardDataset(str(broken), vocabulary=kwargs["vocabulary"], **EVERY_FRAME)  # 1 % allowed
    with pytest.raises(DataError, match=r"(?s)reader 0 of 1.*1 of 3 samples could not be read.*"
                                        r"shard-000000\.tar:000000000"):
        list(strict)
    with pytest.raises(DataError, match=r"^shards .*1 of 3 samples could not be read") as error:
        next(make_loader(strict, batch_size=1, num_workers=1))  # raised in a worker, its message unwrapped
    assert "Traceback" not in str(error.value)
    assert len(list(make_loader(strict, batch_size=2, max_failure_rate=0.5, num_steps=1).__next__()["label"])) == 2


def test_a_truncated_shard_loses_its_remaining_samples_and_is_named(tmp_path, packed, caplog):
    folder, kwargs, _ = packed
    broken = copy_packed(folder, tmp_path / "truncated", lambda data: data[: len(data) // 10])
    caplog.set_level(logging.WARNING, logger="vatt.data")
    dataset = shards.ShardDataset(str(broken), vocabulary=kwargs["vocabulary"], max_failure_rate=1.0, **READ)
    assert [int(s["label"]) for s in dataset] == [2] and dataset.failed == 2  # both clips of shard 0 lost
    assert "2 samples" in caplog.text and f"{broken / 'shard-000000.tar'}: unreadable after 0 of 2" in caplog.text
    strict = shards.ShardDataset(str(broken), vocabulary=kwargs["vocabulary"], **READ)
    with pytest.raises(DataError, match=r"(?s)2 of 3 samples could not be read.*shard-000000\.tar.*truncated"):
        list(strict)


def test_a_crash_while_reading_a_shard_names_it(packed, monkeypatch):
    folder, kwargs, _ = packed
    dataset = shards.ShardDataset(str(folder), vocabulary=kwargs["vocabulary"], **READ)

    def bug(self):
        raise TypeError("a bug")

    monkeypatch.setattr(shards.PackedClip, "entry", bug)
    with pytest.raises(RuntimeError, match=r"while reading \S*shard-00000\d\.tar:00000000\d: TypeError: a bug"):
        list(dataset)
    def broken_reader(path):
        raise AttributeError("oops")
        yield

    monkeypatch.setattr(shards, "_samples", broken_reader)
    with pytest.raises(RuntimeError, match=r"while reading shard \S*shard-00000\d\.tar: AttributeError: oops"):
        list(dataset)


def test_a_worker_killed_while_reading_a_shard_names_the_shard_and_sample(packed, monkeypatch):
    folder, kwargs, _ = packed
    dataset = shards.ShardDataset(str(folder), vocabulary=kwargs["vocabulary"], **READ)

    def decoder_crash(self):  # what a segfault in a decoder does to the worker
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(shards.PackedClip, "entry", decoder_crash)
    died = r"worker 0 \(pid \d+\) died while reading \S*shard-00000\d\.tar:00000000\d$"  # the shard and sample
    with pytest.raises(RuntimeError, match=died):
        next(make_loader(dataset, batch_size=2, num_workers=1))


def test_a_rank_without_shards_stops_with_the_counts_instead_of_hanging(packed, monkeypatch, caplog):
    folder, kwargs, _ = packed
    dataset = shards.ShardDataset(str(folder), vocabulary=kwargs["vocabulary"], **READ)
    epochs = []

    def set_epoch(epoch):  # without the check, the loader would read empty epochs forever
        epochs.append(epoch)
        assert len(epochs) <= 3, "make_loader kept reading empty epochs"
        dataset.epoch = epoch

    monkeypatch.setattr(dataset, "set_epoch", set_epoch)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 3)  # 3 ranks for 2 shards
    caplog.set_level(logging.WARNING, logger="vatt.data")
    with pytest.raises(DataError, match=r"(?s)epoch 0 gave rank 2 no batch.*2 shards are split over 3 ranks x 1 "
                                        r"DataLoader workers = 3 readers.*get no shard"):
        next(make_loader(dataset, batch_size=1))
    assert "reader 2 of 3 (ranks x DataLoader workers) gets none of the 2 shards" in caplog.text


@pytest.mark.parametrize("edit, message", [
    (lambda index: {k: v for k, v in index.items() if k != "params"}, "no 'params' here"),
    (lambda index: {**index, "clips": "three"}, "invalid literal for int() with base 10: 'three'")])
def test_an_index_edited_by_hand_is_an_error_naming_it_and_what_it_lacks(packed, tmp_path, edit, message):
    folder, kwargs, _ = packed
    copy = tmp_path / "packed"
    shutil.copytree(folder, copy)
    index = json.loads((copy / "index.json").read_text())
    (copy / "index.json").write_text(json.dumps(edit(index)))
    node = {"type": "shards", "root": str(copy), "vocabulary": kwargs["vocabulary"], **READ}
    with pytest.raises(ConfigError, match=rf"data.train \(shards\): {copy / 'index.json'}: {re.escape(message)}"):
        build("datasets", node, "data.train")
    (copy / "index.json").write_text('{"clips": 3,\n "params": }')
    with pytest.raises(ConfigError, match=rf"{copy / 'index.json'}:2: not valid JSON"):
        build("datasets", node, "data.train")


def test_pack_command(tmp_path, capsys):
    kwargs = REPLICAS["manifest"](tmp_path / "source")
    assert main(["pack", kwargs["path"], str(tmp_path / "out"), "--size", "24", "--audio-rate", "8000"]) == 0
    assert "3 clips in 1 shards" in capsys.readouterr().out
    assert shards.ShardDataset(str(tmp_path / "out"), vocabulary=kwargs["vocabulary"], **READ).num_clips == 3


def test_make_loader_streams_shards_epoch_after_epoch(packed):
    folder, kwargs, _ = packed
    dataset = shards.ShardDataset(str(folder), vocabulary=kwargs["vocabulary"], shuffle_buffer=1, **READ)
    batches = make_loader(dataset, batch_size=3, seed=0, num_workers=0)
    first, second = next(batches), next(batches)
    assert first["video"].shape == (3, 3, 4, 16, 16) and sorted(first["label"].tolist()) == [0, 1, 2]
    assert dataset.epoch == 1 and not torch.equal(first["video"], second["video"])
    resumed = make_loader(dataset, batch_size=3, start_step=5)  # 3 clips make 1 step per epoch: epoch 5
    assert next(resumed)["video"].shape[0] == 3 and dataset.epoch == 5
