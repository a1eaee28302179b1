"""Each process loads its own slice of every global batch: no overlap, nothing left out, whatever the count."""
import pytest

from vatt.data.sampler import StepBatchSampler
from vatt.engine.distributed import ShardedBatchSampler, local_batch_size


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_slices_of_a_global_batch_cover_it_without_overlap(processes):
    global_batches = list(StepBatchSampler(50, 8, seed=3, num_steps=12))
    per_process = [list(ShardedBatchSampler(global_batches, r, processes)) for r in range(processes)]
    for step, batch in enumerate(global_batches):
        slices = [shards[step] for shards in per_process]
        assert all(len(s) == 8 // processes for s in slices)
        assert sum(slices, []) == batch  # in rank order, together the global batch


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(ValueError, match="batch of 6 clips does not split evenly over 4 processes"):
        next(iter(ShardedBatchSampler([list(range(6))], 1, 4)))
    with pytest.raises(ValueError, match="rank must be in"):
        ShardedBatchSampler([], 2, 2)


def test_a_single_process_keeps_the_whole_batch():
    assert local_batch_size(12) == 12
    assert list(ShardedBatchSampler([[4, 2, 7]])) == [[4, 2, 7]]
