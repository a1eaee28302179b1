"""Batches that lose unreadable samples are refilled from the samples further on in the sampler's order, so a
run allowed many bad files (a high data.max_failed_share) trains on full batches instead of crashing in
BatchNorm on a batch of one clip, and refilled batches replay exactly on resume, with workers, on each rank."""
import functools
import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from vatt.data.decode import MediaError
from vatt.data.loader import make_loader
from vatt.data.synthetic import SyntheticClips
from vatt.engine.distributed import ShardedBatchSampler
from vatt.errors import DataError
from vatt.run import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


class MostlyBroken(Dataset):
    """``size`` samples of which only those whose index is in ``readable`` can be read."""

    def __init__(self, size: int, readable):
        self.size, self.readable = size, set(readable)

    def __len__(self):
        return self.size

    def source(self, key):
        return f"/data/{key.index}.mp4"

    def __getitem__(self, key):
        if key.index not in self.readable:
            raise MediaError(self.source(key), "no video stream")
        return {"index": torch.tensor(key.index), "value": torch.rand(())}


def indices(batches, steps):
    return [next(batches)["index"].tolist() for _ in range(steps)]


def test_batches_are_refilled_to_full_size_with_readable_samples_and_replay_exactly():
    dataset = MostlyBroken(40, readable=range(0, 40, 4))  # 3 samples in 4 fail
    loader = functools.partial(make_loader, dataset, batch_size=4, seed=3, max_failure_rate=1.0)
    uninterrupted = indices(loader(), 12)
    assert all(len(batch) == len(set(batch)) == 4 and all(i % 4 == 0 for i in batch) for batch in uninterrupted)
    assert indices(loader(start_step=5), 7) == uninterrupted[5:]
    assert indices(loader(num_workers=2), 12) == uninterrupted

    ranks = [indices(loader(shard=functools.partial(ShardedBatchSampler, process_rank=r, processes=2)), 12)
             for r in range(2)]
    for first, second in zip(*ranks):
        assert len(first) == len(second) == 2 and all(i % 4 == 0 for i in first + second)
        assert not set(first) & set(second)  # the processes never fill with the same sample


def test_a_batch_that_cannot_be_filled_past_one_clip_is_a_data_error():
    dataset = MostlyBroken(8, readable=[5])
    with pytest.raises(DataError, match=r"1 readable clip\(s\) for a batch of 4.*7 of 8 samples could not be read"):
        next(make_loader(dataset, batch_size=4, max_failure_rate=1.0))


def test_pretraining_with_most_files_broken_trains_every_step(tmp_path, capsys):
    cache = tmp_path / "cache"
    train = {"frames": 8, "size": 32, "audio_samples": 6400, "sample_rate": 8000}
    clips = sorted((SyntheticClips("train", num_clips=16, cache_dir=str(cache), **train).directory
                    / "clips").iterdir())
    for clip in clips[:13]:
        clip.write_bytes(bytes(clip.stat().st_size))  # same size, so the set is not regenerated: unreadable
    run_dir = tmp_path / "run"
    code = main([str(QUICKSTART), f"run.dir={run_dir}", "run.steps=6", "run.batch_size=4", "run.log_every=1",
                 "run.tensorboard=false", "data.train.num_clips=16", f"data.train.cache_dir={cache}",
                 "evaluators=[]", "data.eval=null", "data.num_workers=0", "data.max_failed_share=0.9"])
    assert code == 0, capsys.readouterr().err[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
