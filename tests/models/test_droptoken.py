import pytest
import torch

from vatt.models.droptoken import draw_keep, kept_count


@pytest.mark.parametrize("num_tokens, expected", [(1568, 784), (1200, 600), (7, 3)])
def test_rate_one_half_keeps_the_release_count(num_tokens, expected):
    assert kept_count(num_tokens, 0.5) == expected
    keep = draw_keep(num_tokens, 0.5, batch_size=4)
    assert keep.shape == (expected,) and keep.dtype == torch.long


def test_shared_draw_is_sorted_unique_and_in_range():
    keep = draw_keep(1568, 0.5, batch_size=2)
    assert torch.equal(keep, keep.unique())  # unique() sorts
    assert 0 <= keep.min() and keep.max() < 1568


def test_per_sample_draw_gives_each_row_its_own_sorted_unique_set():
    torch.manual_seed(0)
    keep = draw_keep(100, 0.25, batch_size=3, per_sample=True)
    assert keep.shape == (3, 75)
    for row in keep:
        assert torch.equal(row, row.unique())
    assert not torch.equal(keep[0], keep[1])


def test_rate_zero_keeps_everything():
    assert torch.equal(draw_keep(9, 0.0, batch_size=1), torch.arange(9))


def test_draws_follow_the_global_seed():
    torch.manual_seed(3)
    first = draw_keep(50, 0.5, batch_size=2)
    torch.manual_seed(3)
    assert torch.equal(draw_keep(50, 0.5, batch_size=2), first)


@pytest.mark.parametrize("kwargs, message", [
    (dict(rate=1.0), "rate"), (dict(rate=-0.1), "rate"), (dict(num_tokens=0), "num_tokens"),
    (dict(num_tokens=3, rate=0.9), "keeps no token"), (dict(batch_size=0), "batch_size"),
])
def test_bad_arguments_raise(kwargs, message):
    args = dict(num_tokens=10, rate=0.5, batch_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        draw_keep(**args)
