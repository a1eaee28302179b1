import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from vatt.data.sampler import StepBatchSampler, collate


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


sampler_args = st.tuples(
    st.integers(1, 40),  # num_samples
    st.integers(1, 12),  # batch_size
    st.integers(0, 2**32),  # seed
    st.booleans(),  # drop_last
).filter(lambda a: not a[3] or a[1] <= a[0])


@settings(max_examples=60, deadline=None)
@given(sampler_args, st.integers(0, 30), st.integers(1, 20))
def test_resumed_sampler_yields_what_an_uninterrupted_run_yields(args, start, count):
    num_samples, batch_size, seed, drop_last = args
    uninterrupted = take(StepBatchSampler(num_samples, batch_size, seed=seed, drop_last=drop_last), start + count)
    resumed = take(StepBatchSampler(num_samples, batch_size, seed=seed, start_step=start, drop_last=drop_last), count)
    assert resumed == uninterrupted[start:]


@settings(max_examples=40, deadline=None)
@given(sampler_args, st.integers(0, 50))
def test_batch_of_a_step_is_a_pure_function_of_seed_and_step(args, step):
    num_samples, batch_size, seed, drop_last = args
    first = StepBatchSampler(num_samples, batch_size, seed=seed, drop_last=drop_last)
    second = StepBatchSampler(num_samples, batch_size, seed=seed, drop_last=drop_last)
    take(second, 7)  # whatever it served before must not matter
    assert first.batch_indices(step) == second.batch_indices(step)


@settings(max_examples=40, deadline=None)
@given(sampler_args)
def test_each_epoch_visits_distinct_samples_in_batches_of_the_right_size(args):
    num_samples, batch_size, seed, drop_last = args
    sampler = StepBatchSampler(num_samples, batch_size, seed=seed, drop_last=drop_last)
    for epoch in range(2):
        batches = [sampler.batch_indices(epoch * sampler.steps_per_epoch + i) for i in range(sampler.steps_per_epoch)]
        seen = [i for batch in batches for i in batch]
        assert len(set(seen)) == len(seen) and all(0 <= i < num_samples for i in seen)
        if drop_last:
            assert all(len(b) == batch_size for b in batches) and len(seen) == num_samples // batch_size * batch_size
        else:
            assert sorted(seen) == list(range(num_samples))


def test_epochs_and_seeds_give_different_orders():
    sampler = StepBatchSampler(100, 10, seed=3)
    assert sampler.epoch_order(0).tolist() != sampler.epoch_order(1).tolist()
    assert StepBatchSampler(100, 10, seed=4).epoch_order(0).tolist() != sampler.epoch_order(0).tolist()


def test_num_steps_bounds_the_stream_and_gives_a_length():
    sampler = StepBatchSampler(10, 3, start_step=2, num_steps=9)
    assert len(sampler) == 7 and len(list(sampler)) == 7
    with pytest.raises(TypeError, match="num_steps"):
        len(StepBatchSampler(10, 3))


@pytest.mark.parametrize("kwargs, name", [
    (dict(num_samples=0, batch_size=1), "num_samples"),
    (dict(num_samples=4, batch_size=0), "batch_size"),
    (dict(num_samples=4, batch_size=5), "batch_size"),
    (dict(num_samples=4, batch_size=2, seed=-1), "seed"),
    (dict(num_samples=4, batch_size=2, start_step=-1), "start_step"),
    (dict(num_samples=4, batch_size=2, start_step=3, num_steps=2), "num_steps"),
])
def test_sampler_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        StepBatchSampler(**kwargs)


def test_collate_stacks_tensors_and_numbers_and_keeps_strings():
    samples = [{"video": torch.full((2, 3), float(i)), "text_mask": torch.tensor(i % 2 == 0), "caption": f"c{i}",
                "weight": 0.5 * i} for i in range(3)]
    batch = collate(samples)
    assert batch["video"].shape == (3, 2, 3) and batch["video"][2, 0, 0] == 2.0
    assert batch["text_mask"].tolist() == [True, False, True]
    assert batch["caption"] == ["c0", "c1", "c2"]
    assert batch["weight"].tolist() == [0.0, 0.5, 1.0]


def test_collate_rejects_empty_or_mismatched_samples():
    with pytest.raises(ValueError, match="samples"):
        collate([])
    with pytest.raises(ValueError, match="keys"):
        collate([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])
    with pytest.raises(ValueError, match="'a'"):
        collate([{"a": [1]}])


class Indices(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"index": torch.tensor(i), "name": str(i)}


@pytest.mark.parametrize("workers", [0, 1])
def test_works_as_a_dataloader_batch_sampler(workers):
    sampler = StepBatchSampler(10, 4, seed=1, start_step=1, num_steps=5)
    loader = DataLoader(Indices(), batch_sampler=sampler, collate_fn=collate, num_workers=workers)
    batches = list(loader)
    assert len(loader) == 4
    assert [b["index"].tolist() for b in batches] == [sampler.batch_indices(s) for s in range(1, 5)]
    assert batches[0]["name"] == [str(i) for i in sampler.batch_indices(1)]


def test_keyed_batches_carry_epoch_and_seed_for_per_sample_draws():
    from vatt.data.sampler import SampleKey, sample_rng

    sampler = StepBatchSampler(10, 4, seed=3, keyed=True)  # 2 steps per epoch
    keys = take(sampler, 3)
    assert all(isinstance(k, SampleKey) for batch in keys for k in batch)
    assert [k.index for k in keys[2]] == sampler.batch_indices(2) and {k.epoch for k in keys[2]} == {1}
    assert {k.seed for batch in keys for k in batch} == {3}
    index, rng = sample_rng(SampleKey(7, 1, 3))
    assert index == 7 and rng.random() == sample_rng(SampleKey(7, 1, 3))[1].random()
    assert rng.random() != sample_rng(SampleKey(7, 2, 3))[1].random()  # a new epoch, a new clip
    torch.manual_seed(0)
    first = sample_rng(5)[1].random()
    torch.manual_seed(0)
    assert sample_rng(5)[1].random() == first  # plain indices follow torch's (worker-seeded) generator
    with pytest.raises(TypeError, match="SampleKey"):
        sample_rng("5")


def _collate_noting_shared(samples):
    batch = collate(samples)
    return {**batch, "made_shared": torch.tensor(batch["x"].is_shared())}


def test_collate_in_a_worker_stacks_straight_into_shared_memory():
    samples = [{"x": torch.full((2, 3), float(n))} for n in range(4)]
    assert not collate(samples)["x"].is_shared()  # in the main process: ordinary memory
    loader = DataLoader(samples, batch_size=4, num_workers=1, collate_fn=_collate_noting_shared)
    batch = next(iter(loader))
    assert bool(batch["made_shared"])  # in the worker, before the batch was sent: no second copy
    assert torch.equal(batch["x"], torch.stack([s["x"] for s in samples]))
