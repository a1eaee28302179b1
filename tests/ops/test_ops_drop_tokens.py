import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vatt.ops as ops
from vatt.ops import composite
from vatt.testing import reference


@st.composite
def drop_cases(draw):
    batch, tokens, dim = draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 7))
    kept = draw(st.integers(1, 2 * tokens))  # more than N is possible when indices repeat
    shape = (kept,) if draw(st.booleans()) else (batch, kept)
    return batch, tokens, dim, shape, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=60, deadline=None)
@given(drop_cases())
def test_drop_tokens_matches_reference_forward_and_backward(case):
    batch, count, dim, shape, seed = case
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, count, dim, generator=gen, dtype=torch.float64, requires_grad=True)
    keep = torch.randint(0, count, shape, generator=gen)

    out, expected = ops.drop_tokens(tokens, keep), reference.drop_tokens(tokens, keep)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    grad_out = torch.randn_like(expected)
    (grad,) = torch.autograd.grad(out, tokens, grad_out)
    (expected_grad,) = torch.autograd.grad(expected, tokens, grad_out)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)

    torch.testing.assert_close(composite.drop_tokens(tokens.detach(), keep), expected.detach(), rtol=0, atol=0)
    torch.testing.assert_close(composite.drop_tokens_backward(grad_out, keep, count), expected_grad,
                               rtol=1e-12, atol=1e-12)


def test_non_contiguous_tokens_and_integer_dtypes():
    tokens = torch.arange(2 * 5 * 3).reshape(2, 3, 5).transpose(1, 2)  # [2, 5, 3], not contiguous
    keep = torch.tensor([[4, 0], [2, 2]])
    torch.testing.assert_close(ops.drop_tokens(tokens, keep), reference.drop_tokens(tokens, keep))


@pytest.mark.parametrize("tokens, keep, error, message", [
    (torch.zeros(2, 5), torch.tensor([0]), ValueError, r"\[B, N, D\]"),
    (torch.zeros(2, 5, 3), torch.tensor([0.0]), ValueError, "int64"),
    (torch.zeros(2, 5, 3), torch.zeros(3, 1, dtype=torch.long), ValueError, r"\[B, K\]"),
    (torch.zeros(2, 5, 3), torch.tensor([5]), RuntimeError, "outside"),
    (torch.zeros(2, 5, 3), torch.tensor([-1]), RuntimeError, "outside"),
])
def test_bad_arguments_raise_clear_errors(tokens, keep, error, message):
    with pytest.raises(error, match=message):
        ops.drop_tokens(tokens, keep)
