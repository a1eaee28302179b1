"""The ops as torch sees them: opcheck (schema, fake kernel, autograd registration), gradcheck, torch.compile."""
import pytest
import torch
import torch.nn.functional as F
from ops_inputs import loss_args, opcheck_cases, patch_embed_args

import vatt.ops as ops

OPCHECK_CASES = opcheck_cases()


@pytest.mark.parametrize("name", list(OPCHECK_CASES))
def test_opcheck(name):
    op, args = OPCHECK_CASES[name]
    torch.library.opcheck(op, args)


def test_gradcheck_float64():
    x, patch_size, weight, bias, pos, _ = patch_embed_args(None)
    keep = torch.tensor([[0, 7, 3], [5, 5, 2]])
    assert torch.autograd.gradcheck(lambda *t: ops.patch_embed(t[0], patch_size, *t[1:], keep), (x, weight, bias, pos))
    tokens = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ops.drop_tokens(t, torch.tensor([5, 0, 5])), (tokens,))
    v_local, t_local, v_all, t_all, mask_local, mask_all, temperature, tile = loss_args()
    leaves = tuple(t.detach().clone().requires_grad_() for t in (v_local, t_local, v_all, t_all))
    assert torch.autograd.gradcheck(
        lambda *t: ops.contrastive_rows(*t, mask_local, mask_all, temperature, tile), leaves)


def _training_step(video, patch_size, weight, bias, pos, keep, token_keep, text):
    tokens = ops.patch_embed(video, patch_size, weight, bias, pos, keep)  # [B, K, D]
    tokens = ops.drop_tokens(tokens, token_keep)  # [B, K', D]
    clip = F.normalize(tokens.mean(1), dim=-1)  # [B, D]
    text = F.normalize(text, dim=-1)  # [B, L, D]
    return ops.contrastive_rows(clip, text, clip, text, None, None, 0.07, 2).mean()


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_of_a_step_using_every_op(backend):
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(2)
    video = torch.randn(3, 3, 4, 8, 8, generator=gen)
    weight = torch.randn(6, 3 * 2 * 4 * 4, generator=gen, requires_grad=True)
    bias, pos = torch.zeros(6, requires_grad=True), torch.randn(8, 6, generator=gen, requires_grad=True)
    text = torch.randn(3, 2, 6, generator=gen, requires_grad=True)
    args = (video, [2, 4, 4], weight, bias, pos, torch.tensor([7, 2, 0, 5]), torch.tensor([[0, 3], [1, 2], [2, 2]]), text)

    expected = _training_step(*args)
    expected_grads = torch.autograd.grad(expected, (weight, pos, text))
    compiled = torch.compile(_training_step, backend=backend, fullgraph=True)
    loss = compiled(*args)
    torch.testing.assert_close(loss, expected)
    for grad, expected_grad in zip(torch.autograd.grad(loss, (weight, pos, text)), expected_grads):
        torch.testing.assert_close(grad, expected_grad)


def test_export_keeps_the_ops_in_the_graph():
    class Embed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(4, 16))

        def forward(self, audio, keep):
            return ops.patch_embed(audio, 16, self.weight, keep=keep)

    exported = torch.export.export(Embed(), (torch.randn(2, 64), torch.tensor([3, 0])))
    assert "vatt.patch_embed" in str(exported.graph)
