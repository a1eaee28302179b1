import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_inputs import assert_all_close, grads, loss_cases

import vatt.ops as ops
from vatt.losses import contrastive_rows as plain_rows
from vatt.ops import composite

TIGHT = dict(rtol=1e-9, atol=1e-9)


def unit(*shape, seed=0, dtype=torch.float64):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype), dim=-1)


@settings(max_examples=60, deadline=None)
@given(loss_cases())
def test_loss_matches_the_plain_loss_rows_forward_and_backward(case):
    """The rows vatt.losses computes without fused ops, whose gradients come from autograd."""
    inputs = case.tensors()
    out = ops.contrastive_rows(*inputs, temperature=case.temperature, tile_size=case.tile)
    expected = plain_rows(*inputs, temperature=case.temperature)
    torch.testing.assert_close(out, expected, **TIGHT)

    grad_out = torch.randn_like(expected)
    assert_all_close(grads(out, inputs[:4], grad_out), grads(expected, inputs[:4], grad_out), **TIGHT)


@settings(max_examples=40, deadline=None)
@given(loss_cases())
def test_composite_loss_matches_the_plain_rows(case):
    """The XLA / fallback kernels, forward and explicit backward, without autograd."""
    inputs = case.tensors()
    expected = plain_rows(*inputs, temperature=case.temperature)
    detached = [t.detach() for t in inputs]
    loss, row_lse = composite.contrastive_rows(*detached, case.temperature, case.tile)
    torch.testing.assert_close(loss, expected.detach(), **TIGHT)

    grad_out = torch.randn_like(expected)
    backward = composite.contrastive_rows_backward(grad_out, row_lse, *detached, case.temperature, case.tile)
    assert_all_close(backward, grads(expected, inputs[:4], grad_out), **TIGHT)


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 7), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_local_rows_over_ranks_add_up_to_the_global_loss(clips, candidates, seed):
    """Each rank's rows against the gathered batch: the rows concatenate and the gradients sum to the global ones."""
    video = unit(clips, 6, seed=seed).requires_grad_()
    text = unit(clips, candidates, 6, seed=seed + 1).requires_grad_()
    mask = torch.arange(clips) % 3 != 1
    whole = ops.contrastive_rows(video, text, video, text, mask, mask, 0.1)
    whole_grads = torch.autograd.grad(whole.sum(), (video, text))

    split = clips // 2
    ranks = [slice(0, split), slice(split, clips)]
    rows = [ops.contrastive_rows(video[r], text[r], video, text, mask[r], mask, 0.1, 2) for r in ranks]
    torch.testing.assert_close(torch.cat(rows), whole, **TIGHT)
    assert_all_close(torch.autograd.grad(sum(r.sum() for r in rows), (video, text)), whole_grads, **TIGHT)


def test_invariant_to_batch_permutation_and_tile_size():
    video, text = unit(13, 8).requires_grad_(), unit(13, 3, 8, seed=1).requires_grad_()
    mask = torch.tensor([True, False] * 6 + [True])
    loss = ops.contrastive_rows(video, text, video, text, mask, mask, 0.07, 4)
    loss_grads = torch.autograd.grad(loss.sum(), (video, text))
    for tile in (1, 5, 13, 1000):
        other = ops.contrastive_rows(video, text, video, text, mask, mask, 0.07, tile)
        torch.testing.assert_close(other, loss, **TIGHT)
        assert_all_close(torch.autograd.grad(other.sum(), (video, text)), loss_grads, **TIGHT)
    perm = torch.randperm(13, generator=torch.Generator().manual_seed(3))
    permuted = ops.contrastive_rows(video[perm], text[perm], video[perm], text[perm], mask[perm], mask[perm], 0.07, 4)
    torch.testing.assert_close(permuted, loss[perm], **TIGHT)


@pytest.mark.parametrize("collapsed", [False, True])
def test_no_overflow_at_low_temperature_with_a_large_batch(collapsed):
    """τ = 0.01 puts logits at ±100: exp overflows float32 unless the log-sum-exp is stable."""
    clips = 384
    video = unit(1 if collapsed else clips, 32, dtype=torch.float32).expand(clips, 32).contiguous()
    text = unit(clips, 5, 32, seed=1, dtype=torch.float32)
    if collapsed:  # every similarity is exactly 1/τ
        text = video[:, None].expand(clips, 5, 32).contiguous()
    video.requires_grad_()
    text.requires_grad_()
    loss = ops.contrastive_rows(video, text, video, text, None, None, 0.01)
    video_grad, text_grad = torch.autograd.grad(loss.mean(), (video, text))
    assert torch.isfinite(loss).all() and torch.isfinite(video_grad).all() and torch.isfinite(text_grad).all()
    everyone = torch.ones(clips, dtype=torch.bool)
    expected = plain_rows(video.double(), text.double(), video.double(), text.double(), everyone, everyone, 0.01)
    torch.testing.assert_close(loss.double(), expected.detach(), rtol=1e-4, atol=1e-3)


def test_every_text_mask_false_gives_zero_loss_and_zero_gradients():
    video, text = unit(6, 4).requires_grad_(), unit(6, 2, 4, seed=1).requires_grad_()
    mask = torch.zeros(6, dtype=torch.bool)
    for implementation in (ops.contrastive_rows, plain_rows):
        loss = implementation(video, text, video, text, mask, mask, 0.01)
        video_grad, text_grad = torch.autograd.grad(loss.sum(), (video, text))
        assert torch.equal(loss, torch.zeros(6, dtype=torch.float64))
        assert torch.equal(video_grad, torch.zeros_like(video)) and torch.equal(text_grad, torch.zeros_like(text))
    loss, row_lse = composite.contrastive_rows(video.detach(), text.detach(), video.detach(), text.detach(), mask, mask,
                                               0.01, 4)
    backward = composite.contrastive_rows_backward(torch.ones(6, dtype=torch.float64), row_lse, video.detach(),
                                                   text.detach(), video.detach(), text.detach(), mask, mask, 0.01, 4)
    assert torch.equal(loss, torch.zeros_like(loss)) and all(torch.equal(g, torch.zeros_like(g)) for g in backward)


def test_low_precision_inputs_are_computed_in_float32():
    video, text = unit(8, 16, dtype=torch.float32), unit(8, 2, 16, seed=1, dtype=torch.float32)
    loss = ops.contrastive_rows(video.bfloat16(), text.bfloat16(), video.bfloat16(), text.bfloat16())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, ops.contrastive_rows(video, text, video, text), rtol=0.05, atol=0.1)


@pytest.mark.parametrize("change, message", [
    (dict(t_local=torch.zeros(4, 2, 5)), "inconsistent shapes"),
    (dict(v_all=torch.zeros(6, 8, 1)), "expected v_local"),
    (dict(temperature=0.0), "temperature"),
    (dict(tile_size=0), "tile_size"),
    (dict(mask_local=torch.ones(5, dtype=torch.bool)), "mask_local"),
])
def test_bad_arguments_raise_clear_errors(change, message):
    arguments = dict(v_local=torch.zeros(4, 8), t_local=torch.zeros(4, 2, 8), v_all=torch.zeros(6, 8),
                     t_all=torch.zeros(6, 2, 8))
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        ops.contrastive_rows(**arguments)
