"""The ops as torch sees them: opcheck (schema, fake kernel, autograd registration), gradcheck, torch.compile."""
import pytest
import torch
import torch.nn.functional as F

import vatt.ops as ops


def _patch_embed_args(keep):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 8, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 3 * 2 * 4 * 3, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(8, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    return x, [2, 4, 3], weight, bias, pos, keep


def _loss_args():
    gen = torch.Generator().manual_seed(1)
    video = F.normalize(torch.randn(5, 4, generator=gen, dtype=torch.float64), dim=-1).requires_grad_()
    text = F.normalize(torch.randn(5, 2, 4, generator=gen, dtype=torch.float64), dim=-1).requires_grad_()
    mask = torch.tensor([True, False, True, True, False])
    return video[:3], text[:3], video, text, mask[:3], mask, 0.1, 2


OPCHECK_CASES = {
    "patch_embed, all tokens": (torch.ops.vatt.patch_embed.default, _patch_embed_args(None)),
    "patch_embed, shared keep": (torch.ops.vatt.patch_embed.default, _patch_embed_args(torch.tensor([6, 1, 3]))),
    "patch_embed, per-sample keep": (torch.ops.vatt.patch_embed.default,
                                     _patch_embed_args(torch.tensor([[0, 7], [5, 5]]))),
    "patch_embed, no bias or pos": (torch.ops.vatt.patch_embed.default,
                                    _patch_embed_args(torch.tensor([2]))[:3] + (None, None, torch.tensor([2]))),
    "drop_tokens": (torch.ops.vatt.drop_tokens.default,
                    (torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True), torch.tensor([[5, 0], [1, 1]]))),
    "contrastive_rows": (torch.ops.vatt.contrastive_rows.default, _loss_args()),
    "patch_embed_backward": (torch.ops.vatt.patch_embed_backward.default,
                             (torch.randn(2, 3, 5, dtype=torch.float64),) + tuple(
                                 t.detach() if isinstance(t, torch.Tensor) else t
                                 for t in _patch_embed_args(torch.tensor([6, 1, 3]))[:3])
                             + (torch.tensor([6, 1, 3]), [True, False, True, True])),
    "drop_tokens_backward": (torch.ops.vatt.drop_tokens_backward.default,
                             (torch.randn(2, 2, 3), torch.tensor([4, 4]), 6)),
}


@pytest.mark.parametrize("name", list(OPCHECK_CASES))
def test_opcheck(name):
    op, args = OPCHECK_CASES[name]
    torch.library.opcheck(op, args)


def test_gradcheck_float64():
    x, patch_size, weight, bias, pos, _ = _patch_embed_args(None)
    keep = torch.tensor([[0, 7, 3], [5, 5, 2]])
    assert torch.autograd.gradcheck(lambda *t: ops.patch_embed(t[0], patch_size, *t[1:], keep), (x, weight, bias, pos))
    tokens = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ops.drop_tokens(t, torch.tensor([5, 0, 5])), (tokens,))
    v_local, t_local, v_all, t_all, mask_local, mask_all, temperature, tile = _loss_args()
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
