"""make_loader: exact resume with workers, bad files skipped and counted, clear errors."""
import json
import logging

import numpy as np
import pytest
import torch
from torch.utils.data import IterableDataset

from vatt.data.datasets.manifest import ManifestDataset
from vatt.data.loader import make_loader, read_once
from vatt.errors import DataError
from vatt.testing.replicas import SMALL_CLIPS
from vatt.testing.replicas import manifest as make_manifest


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loader")
    kwargs = make_manifest(folder)
    good = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    (folder / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    whole = (folder / "clips" / "0.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    bad = [{"video": "missing.mp4"}, {"video": "garbage.mp4"}, {"video": "truncated.mp4", "start": 0.0},
           {"video": "clips/1.mp4", "start": 1.7}]  # the last one is shorter than a clip
    lines = good * 3 + bad  # 9 readable samples, 4 unreadable
    (folder / "mixed.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return folder, kwargs


def take(batches, n):
    return [next(batches) for _ in range(n)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]) if torch.is_tensor(x[key]) else x[key] == y[key]


def test_resumed_and_multi_worker_loaders_give_the_uninterrupted_batches(replica):
    _, kwargs = replica
    dataset = ManifestDataset(**kwargs)
    uninterrupted = take(make_loader(dataset, batch_size=2, seed=5), 5)
    resumed = take(make_loader(dataset, batch_size=2, seed=5, start_step=3), 2)
    with_workers = take(make_loader(dataset, batch_size=2, seed=5, num_workers=2), 5)
    assert_same_batches(uninterrupted[3:], resumed)
    assert_same_batches(uninterrupted, with_workers)
    assert not torch.equal(uninterrupted[0]["video"], take(make_loader(dataset, batch_size=2, seed=6), 1)[0]["video"])


def test_unreadable_samples_are_dropped_counted_and_logged(replica, caplog):
    folder, kwargs = replica
    dataset = ManifestDataset(str(folder / "mixed.jsonl"), vocabulary=kwargs["vocabulary"], **SMALL_CLIPS)
    caplog.set_level(logging.WARNING, logger="vatt.data")
    batches = make_loader(dataset, batch_size=13, seed=0, max_failure_rate=0.5, num_workers=1)
    first = next(batches)
    assert first["video"].shape[0] == 9  # the 4 bad ones left the batch
    assert sorted(f.path.rsplit("/", 1)[1] for f in batches.failures.values()) == \
        ["1.mp4", "garbage.mp4", "missing.mp4", "truncated.mp4"]
    for name in ("missing.mp4", "garbage.mp4", "truncated.mp4", "shorter than a clip"):
        assert name in caplog.text
    next(batches)
    assert len(batches.failures) == 4  # the same files failing again are not counted twice


def test_too_many_failures_stop_with_the_count_and_the_files(replica):
    folder, kwargs = replica
    dataset = ManifestDataset(str(folder / "mixed.jsonl"), vocabulary=kwargs["vocabulary"], **SMALL_CLIPS)
    with pytest.raises(DataError, match=r"4 of 13 samples could not be read.*1\.00%") as error:
        next(make_loader(dataset, batch_size=13, seed=0))
    assert "missing.mp4" in str(error.value) and "python -m vatt.data check" in str(error.value)


def test_read_once_gives_the_readable_samples_in_order_and_counts_the_others(replica, caplog):
    folder, kwargs = replica
    dataset = ManifestDataset(str(folder / "mixed.jsonl"), vocabulary=kwargs["vocabulary"], **SMALL_CLIPS)
    caplog.set_level(logging.WARNING, logger="vatt.data")
    reading = read_once(dataset, batch_size=5, num_workers=1, max_failure_rate=0.5, what="eval of mixed")
    batches = list(reading)
    assert [indices for indices, _ in batches] == [[0, 1, 2, 3, 4], [5, 6, 7, 8]]  # 9..12 fail: no 3rd batch
    assert torch.equal(torch.cat([batch["label"] for _, batch in batches]), torch.tensor([0, 1, 2] * 3))
    assert reading.skipped == 4 and sorted(f.index for f in reading.failures.values()) == [9, 10, 11, 12]
    assert "eval of mixed: skipping unreadable sample 10" in caplog.text and "garbage.mp4" in caplog.text
    assert "eval of mixed: 4 of 13 samples could not be read and were skipped" in caplog.text
    with pytest.raises(DataError, match=r"eval of mixed: \d of 13 samples could not be read"):
        list(read_once(dataset, batch_size=5, what="eval of mixed"))


class Few(IterableDataset):
    """A stream of `clips` samples; reading it more than 3 epochs means the loader loops on empty epochs."""

    def __init__(self, clips):
        self.num_clips = clips
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)
        assert len(self.epochs) <= 3, "make_loader kept reading empty epochs"

    def __iter__(self):
        return iter([{"x": torch.tensor(1.0)}] * self.num_clips)


@pytest.mark.parametrize("clips", [0, 1])
def test_a_stream_that_gives_no_batch_stops_instead_of_hanging(clips):
    with pytest.raises(DataError, match=rf"(?s)epoch 0 gave rank 0 no batch.*{clips} clips in all, batch_size 2"):
        next(make_loader(Few(clips), batch_size=2))  # drop_last: 1 clip makes no batch of 2
    assert next(make_loader(Few(1), batch_size=2, drop_last=False))["x"].shape == (1,)


def test_loader_arguments_are_checked(replica):
    _, kwargs = replica
    with pytest.raises(ValueError, match="max_failure_rate"):
        make_loader(ManifestDataset(**kwargs), batch_size=2, max_failure_rate=2)
