import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from vatt.models.patching import patch_embed

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def conv_reference(x, patch_size, weight, bias, pos):
    """Embed every patch with a strided convolution (the release's form), add positions: [B, N, D]."""
    signal = x.unsqueeze(1) if x.ndim == len(patch_size) + 1 else x  # [B, C, *signal]
    kernel = weight.view(weight.shape[0], signal.shape[1], *patch_size)  # [D, C, *patch]
    out = CONV[len(patch_size)](signal, kernel, bias, stride=patch_size)  # [B, D, *grid]
    return out.flatten(2).transpose(1, 2) + pos  # [B, N, D]


@st.composite
def embedding_problems(draw):
    axes = draw(st.sampled_from([1, 2, 3]))
    patch = tuple(draw(st.integers(1, 3)) for _ in range(axes))
    grid = tuple(draw(st.integers(1, 3)) for _ in range(axes))
    remainder = tuple(draw(st.integers(0, p - 1)) for p in patch)
    channels = draw(st.integers(1, 3))
    channel_axis = channels > 1 or draw(st.booleans())  # one channel may come without its axis
    batch, dim = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    signal = tuple(g * p + r for g, p, r in zip(grid, patch, remainder))
    num = 1
    for g in grid:
        num *= g
    kept = draw(st.integers(1, num))
    per_sample = draw(st.booleans())
    seed = draw(st.integers(0, 2 ** 16))
    return axes, patch, signal, channels, channel_axis, batch, dim, num, kept, per_sample, seed


@settings(max_examples=40, deadline=None)
@given(embedding_problems())
def test_patch_embed_with_keep_equals_embed_all_then_gather(problem):
    axes, patch, signal, channels, channel_axis, batch, dim, num, kept, per_sample, seed = problem
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *((channels,) if channel_axis else ()), *signal, generator=gen)
    values = channels
    for p in patch:
        values *= p
    weight, bias = torch.randn(dim, values, generator=gen), torch.randn(dim, generator=gen)
    pos = torch.randn(num, dim, generator=gen)
    full = conv_reference(x, patch, weight, bias, pos)  # [B, N, D]
    torch.testing.assert_close(patch_embed(x, patch, weight, bias, pos, None), full)
    if per_sample:
        keep = torch.stack([torch.randperm(num, generator=gen)[:kept] for _ in range(batch)])  # [B, K]
        expected = torch.gather(full, 1, keep[..., None].expand(-1, -1, dim))
    else:
        keep = torch.randperm(num, generator=gen)[:kept]  # [K]
        expected = full[:, keep]
    torch.testing.assert_close(patch_embed(x, patch, weight, bias, pos, keep), expected)


def test_patch_embed_without_bias_or_positions():
    x = torch.randn(2, 12)
    weight = torch.randn(5, 4)
    out = patch_embed(x, 4, weight, None, None, torch.tensor([2, 0]))
    torch.testing.assert_close(out, x.view(2, 3, 4)[:, [2, 0]] @ weight.t())


def test_patch_embed_gradients_reach_weight_bias_and_positions():
    x = torch.randn(2, 3, 4, 8, 8)
    weight = torch.randn(6, 3 * 2 * 4 * 4, requires_grad=True)
    bias = torch.zeros(6, requires_grad=True)
    pos = torch.zeros(8, 6, requires_grad=True)
    patch_embed(x, (2, 4, 4), weight, bias, pos, torch.tensor([1, 3])).sum().backward()
    assert pos.grad[[1, 3]].eq(2).all() and pos.grad[[0, 2, 4, 5, 6, 7]].eq(0).all()
    assert bias.grad.eq(4).all() and weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(x=torch.randn(2, 3, 8)), "x must be"),
    (dict(patch_size=(2, 4)), "signal axes"),
    (dict(patch_size=(2, 0, 4)), "positive ints"),
    (dict(patch_size=(2, 16, 16)), "does not fit"),
    (dict(weight=torch.randn(6, 7)), "weight must be"),
    (dict(pos=torch.randn(7, 6)), "pos must be"),
    (dict(keep=torch.tensor([0.0, 1.0])), "keep must be an int64"),
    (dict(keep=torch.zeros(3, 2, dtype=torch.long)), r"keep must be \[K\] or \[B, K\]"),
])
def test_patch_embed_rejects_bad_arguments(kwargs, message):
    args = dict(x=torch.randn(2, 3, 4, 8, 8), patch_size=(2, 4, 4), weight=torch.randn(6, 96), bias=None,
                pos=torch.randn(8, 6), keep=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        patch_embed(**args)
