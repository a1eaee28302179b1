import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from ops_inputs import assert_all_close, grads, patch_cases

import vatt.ops as ops
from vatt.ops import composite
from vatt.testing import reference

TIGHT = dict(rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(patch_cases())
def test_patch_embed_matches_reference_forward_and_backward(case):
    x, weight, bias, pos, keep = case.tensors()
    out = ops.patch_embed(x, case.patch, weight, bias, pos, keep)
    expected = reference.patch_embed(x, case.patch, weight, bias, pos, keep)
    torch.testing.assert_close(out, expected, **TIGHT)

    grad_out = torch.randn_like(expected)
    inputs = (x, weight, bias, pos)
    assert_all_close(grads(out, inputs, grad_out), grads(expected, inputs, grad_out), **TIGHT)


@settings(max_examples=40, deadline=None)
@given(patch_cases())
def test_composite_patch_embed_matches_reference(case):
    """The XLA / fallback kernels, forward and explicit backward, without autograd."""
    x, weight, bias, pos, keep = case.tensors()
    expected = reference.patch_embed(x, case.patch, weight, bias, pos, keep)
    with torch.no_grad():
        out = composite.patch_embed(x, case.patch, weight, bias, pos, keep)
    torch.testing.assert_close(out, expected, **TIGHT)

    grad_out = torch.randn_like(expected)
    mask = [True, True, bias is not None, pos is not None]
    backward = composite.patch_embed_backward(grad_out, x.detach(), case.patch, weight.detach(), keep, mask)
    assert_all_close(backward, grads(expected, (x, weight, bias, pos), grad_out), **TIGHT)


@settings(max_examples=25, deadline=None)
@given(patch_cases(allow_duplicates=False))
def test_fused_equals_embedding_all_then_gathering(case):
    x, weight, bias, pos, keep = case.tensors(requires_grad=False)
    everything = ops.patch_embed(x, case.patch, weight, bias, pos, None)  # [B, N, D]
    fused = ops.patch_embed(x, case.patch, weight, bias, pos, keep)
    torch.testing.assert_close(fused, everything if keep is None else reference.drop_tokens(everything, keep), **TIGHT)


def test_video_equals_conv3d_then_drop_token():
    """The release's form: Conv3d with stride = kernel, flatten, add positions, keep a shared draw."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 32, 48, generator=gen, dtype=torch.float64)
    conv = torch.nn.Conv3d(3, 16, (4, 16, 16), stride=(4, 16, 16), dtype=torch.float64)
    pos = torch.randn(2 * 2 * 3, 16, generator=gen, dtype=torch.float64)
    keep = torch.randperm(12, generator=gen)[:6]
    with torch.no_grad():
        expected = (conv(x).flatten(2).transpose(1, 2) + pos)[:, keep]
        out = ops.patch_embed(x, (4, 16, 16), conv.weight.reshape(16, -1), conv.bias, pos, keep)
    torch.testing.assert_close(out, expected, **TIGHT)


def test_waveform_equals_conv1d_with_an_int_patch_size():
    gen = torch.Generator().manual_seed(1)
    audio = torch.randn(2, 1000, generator=gen, dtype=torch.float64)  # 7 whole patches of 128, 104 samples left
    weight = torch.randn(8, 1, 128, generator=gen, dtype=torch.float64)
    keep = torch.tensor([[6, 0, 3], [1, 1, 2]])
    expected = reference.drop_tokens(F.conv1d(audio[:, None], weight, stride=128).transpose(1, 2), keep)
    torch.testing.assert_close(ops.patch_embed(audio, 128, weight.reshape(8, 128), keep=keep), expected, **TIGHT)


@settings(max_examples=25, deadline=None)
@given(patch_cases())
def test_drop_in_for_the_models_plain_patch_embed(case):
    from vatt.models import patching
    # The model's helper takes waveforms [B, S], 2-D maps [B, C, F, T] and videos [B, C, T, H, W].
    assume((case.channels is None) == (len(case.patch) == 1))
    x, weight, bias, pos, keep = case.tensors(requires_grad=False)
    torch.testing.assert_close(ops.patch_embed(x, case.patch, weight, bias, pos, keep),
                               patching.patch_embed(x, case.patch, weight, bias, pos, keep), **TIGHT)


def test_float32_and_bfloat16_follow_the_input_dtype():
    x = torch.randn(2, 3, 4, 8, 8)
    weight, pos = torch.randn(5, 3 * 2 * 4 * 4), torch.randn(8, 5)
    keep = torch.tensor([7, 0, 3])
    expected = reference.patch_embed(x.double(), (2, 4, 4), weight.double(), None, pos.double(), keep)
    out = ops.patch_embed(x, (2, 4, 4), weight, None, pos, keep)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-4)
    low = ops.patch_embed(x.bfloat16(), (2, 4, 4), weight.bfloat16(), None, pos.bfloat16(), keep)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.double(), expected, rtol=0.05, atol=0.5)


def test_autocast_projects_in_bfloat16_and_back_propagates_in_float32():
    x, weight = torch.randn(2, 3, 4, 8, 8), torch.randn(5, 96, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ops.patch_embed(x, (2, 4, 4), weight, keep=torch.tensor([1, 6]))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference.patch_embed(x, (2, 4, 4), weight, keep=torch.tensor([1, 6])),
                               rtol=0.05, atol=0.3)
    out.float().sum().backward()
    assert weight.grad.dtype == torch.float32


def test_raw_input_without_grad_gets_none():
    x = torch.randn(1, 40)
    weight = torch.randn(3, 8, requires_grad=True)
    out = ops.patch_embed(x, 8, weight, keep=torch.tensor([4, 1]))
    out.sum().backward()
    assert x.grad is None and weight.grad is not None


@pytest.mark.parametrize("call, message", [
    (lambda x, w: ops.patch_embed(x, (2, 4), w), "patch_size"),
    (lambda x, w: ops.patch_embed(x, (2, 4, 4), w[:, 1:]), "weight must be"),
    (lambda x, w: ops.patch_embed(x, (2, 4, 4), w, pos=torch.zeros(3, 5)), "pos must be"),
    (lambda x, w: ops.patch_embed(x, (2, 4, 4), w, keep=torch.tensor([0.5])), "int64"),
    (lambda x, w: ops.patch_embed(x, (2, 4, 4), w, keep=torch.zeros(3, 2, dtype=torch.long)), r"\[B, K\]"),
    (lambda x, w: ops.patch_embed(x, (2, 64, 4), w), "does not fit"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    x, w = torch.randn(2, 3, 4, 8, 8), torch.randn(5, 96)
    with pytest.raises(ValueError, match=message):
        call(x, w)


def test_keep_index_out_of_range_is_refused_by_the_kernel():
    with pytest.raises(RuntimeError, match="outside"):
        ops.patch_embed(torch.randn(2, 3, 4, 8, 8), (2, 4, 4), torch.randn(5, 96), keep=torch.tensor([0, 8]))
