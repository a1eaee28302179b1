"""The loader's worker processes (vatt.data.workers): an unreadable sample becomes a Failure, a bug or a crash
names the file, workers are seeded; seen through make_loader as training sees them, and GuardedDataset alone."""
import os
import signal

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from vatt.data.decode import MediaError
from vatt.data.failures import Failure
from vatt.data.loader import make_loader
from vatt.data.sampler import SampleKey
from vatt.data.workers import GuardedDataset


def take(batches, n):
    return [next(batches) for _ in range(n)]


class Exploding(Dataset):
    """Sample 3 hits a bug or kills its process; every sample draws from numpy's global generator."""

    def __init__(self, how):
        self.how = how

    def __len__(self):
        return 8

    def source(self, key):
        return f"/data/file{key.index}.mp4"

    def __getitem__(self, key):
        if key.index == 3 and self.how == "bug":
            raise KeyError("no such caption")
        if key.index == 3 and self.how == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        return {"x": torch.tensor(np.random.random())}


def test_an_exception_in_a_worker_names_the_file():
    with pytest.raises(RuntimeError, match="/data/file3.mp4") as error:
        take(make_loader(Exploding("bug"), batch_size=8, num_workers=1), 1)
    assert "KeyError" in str(error.value)


def test_a_killed_worker_names_the_file_it_was_reading():
    with pytest.raises(RuntimeError, match=r"worker 0 \(pid \d+\) died while reading /data/file3.mp4"):
        take(make_loader(Exploding("crash"), batch_size=8, num_workers=1), 1)


def test_workers_are_seeded_so_global_generators_repeat():
    first = take(make_loader(Exploding("none"), batch_size=4, seed=1, num_workers=2), 2)
    again = take(make_loader(Exploding("none"), batch_size=4, seed=1, num_workers=2), 2)
    other = take(make_loader(Exploding("none"), batch_size=4, seed=2, num_workers=2), 2)
    assert all(torch.equal(x["x"], y["x"]) for x, y in zip(first, again))
    assert not torch.equal(first[0]["x"], other[0]["x"])


def test_the_guarded_dataset_turns_an_unreadable_file_into_a_failure_and_a_bug_into_an_error_naming_it():
    class Reader(Dataset):
        def __len__(self):
            return 3

        def source(self, key):
            return f"/data/clip{key.index}.mp4"

        def __getitem__(self, key):
            if key.index == 1:
                raise MediaError(f"/data/clip{key.index}.mp4", "moov atom not found")
            if key.index == 2:
                raise ZeroDivisionError("division by zero")
            return {"x": key.index}

    guarded = GuardedDataset(Reader())
    assert len(guarded) == 3 and guarded[SampleKey(0, 0, 0)] == {"x": 0}
    assert guarded[SampleKey(1, 0, 0)] == Failure(1, "/data/clip1.mp4", "moov atom not found")
    with pytest.raises(RuntimeError, match=r"^data loading failed while reading /data/clip2.mp4: ZeroDivisionError"):
        guarded[SampleKey(2, 0, 0)]
