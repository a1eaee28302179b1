"""Mixing datasets by weight in every batch, with the masks the losses need."""
import pytest
import torch

from vatt.data.datasets.mixture import Mixture, _shares
from vatt.data.sampler import SampleKey, StepBatchSampler, collate
from vatt.registry import build
from vatt.testing.replicas import REPLICAS


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    return {"type": "mixture", **REPLICAS["mixture"](tmp_path_factory.mktemp("mixture"))}


def test_shares_follow_the_weights():
    assert _shares(12, [2.0, 1.0]) == [8, 4]
    assert _shares(10, [1.0, 1.0, 1.0]) == [4, 3, 3]
    assert _shares(3, [100.0, 1.0, 1.0]) == [1, 1, 1]  # every child keeps a slot


def test_howto100m_and_audioset_batches_stack_with_text_masks(node):
    mix = build("datasets", {**node, "num_samples": 30}, "data.train")
    assert len(mix) == 30 and mix.shares == [20, 10]
    sampler = StepBatchSampler(len(mix), 10, seed=0, keyed=True)
    for step in range(3):
        batch = collate([mix[key] for key in sampler.batch_keys(step)])
        assert set(batch) == {"video", "audio", "audio_mask", "text", "text_mask"}
        with_text = batch["text_mask"]
        assert (batch["text"][~with_text] == 0).all() and (batch["text"][with_text, 0, 0] > 0).all()
    every = collate([mix[key] for step in range(3) for key in sampler.batch_keys(step)])
    assert every["text_mask"].float().mean() == pytest.approx(2 / 3)  # the weights, over an epoch


def test_slots_walk_through_a_child_across_epochs(node):
    mix = build("datasets", {**node, "num_samples": 3}, "data.train")  # howto100m (2 videos) gets 2 slots
    small = Mixture(datasets=[mix.children[1]], num_samples=1)  # audioset (3 segments) through 1 slot
    seen = {small.locate(SampleKey(0, epoch, 0))[1].index for epoch in range(3)}
    assert seen == {0, 1, 2}
    first, second = small.locate(SampleKey(0, 0, 0))[1], small.locate(SampleKey(0, 3, 0))[1]
    assert first.index == second.index and first.epoch != second.epoch  # a repeat draws a new clip


def test_children_without_sound_get_silence_and_a_false_mask(node, tmp_path):
    howto = node["datasets"][0]
    silent = Mixture(datasets=[build("datasets", {k: v for k, v in howto.items() if k != "weight"}, "a"),
                               build("datasets", {k: v for k, v in howto.items() if k != "weight"}
                                     | {"read_audio": False}, "b")], num_samples=4)
    samples = [silent[i] for i in range(4)]
    assert [bool(s["audio_mask"]) for s in samples] == [True, True, False, False]
    assert torch.equal(samples[3]["audio"], torch.zeros(3200))


def test_bad_weights_are_refused(node):
    with pytest.raises(ValueError, match="weights"):
        Mixture(datasets=node["datasets"], weights=[1.0])
