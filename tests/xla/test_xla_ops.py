"""The vatt ops on an XLA device: same results as the CPU, forward and backward, with no op falling back to the CPU.

Runs in the XLA lane (.ci/xla.sh: torch 2.9.0 + torch_xla 2.9.0, PJRT_DEVICE=CPU); skipped where torch_xla is absent.
"""
import pytest

torch_xla = pytest.importorskip("torch_xla")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch_xla.debug.metrics as metrics  # noqa: E402

import vatt.ops as ops  # noqa: E402
from vatt import losses  # noqa: E402
from vatt.testing import reference  # noqa: E402

CLOSE = dict(rtol=1e-5, atol=1e-5)
SCALAR_READ_BACK = "aten::_local_scalar_dense"


def _fallbacks() -> list[str]:
    """Ops that torch_xla ran on the CPU instead of lowering them (it counts each under its name)."""
    return [name for name in metrics.counter_names()
            if name.split("::")[0] in ("aten", "vatt") and name != SCALAR_READ_BACK]


def _forward_backward(function, tensors, device, grad_seed=0):
    """function(*tensors) on ``device``: (output, gradients of the floating inputs), both back on the CPU."""
    moved = [t.detach().to(device).requires_grad_(t.is_floating_point()) if isinstance(t, torch.Tensor) else t
             for t in tensors]
    out = function(*moved)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed)).to(device)
    leaves = [t for t in moved if isinstance(t, torch.Tensor) and t.requires_grad]
    grads = torch.autograd.grad(out, leaves, grad_out)
    return out.cpu(), [g.cpu() for g in grads]


def _check_against_cpu(function, expected_function, tensors):
    metrics.clear_all()
    out, grads = _forward_backward(function, tensors, torch_xla.device())
    assert _fallbacks() == [], f"ops fell back to the CPU: {_fallbacks()}"
    expected, expected_grads = _forward_backward(expected_function, tensors, "cpu")
    torch.testing.assert_close(out, expected, **CLOSE)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, **CLOSE)


@pytest.mark.parametrize("keep", [None, torch.tensor([6, 1, 3, 3]), torch.tensor([[0, 7, 2], [5, 5, 1]])])
def test_patch_embed_video(keep):
    gen = torch.Generator().manual_seed(0)
    tensors = [torch.randn(2, 3, 4, 8, 13, generator=gen), torch.randn(5, 3 * 2 * 4 * 6, generator=gen),
               torch.randn(5, generator=gen), torch.randn(8, 5, generator=gen)]
    _check_against_cpu(lambda x, w, b, p: ops.patch_embed(x, (2, 4, 6), w, b, p, None if keep is None else keep.to(x.device)),
                       lambda x, w, b, p: reference.patch_embed(x, (2, 4, 6), w, b, p, keep), tensors)


def test_patch_embed_waveform_without_bias_or_positions():
    gen = torch.Generator().manual_seed(1)
    keep = torch.tensor([4, 0, 2])
    tensors = [torch.randn(2, 83, generator=gen), torch.randn(7, 16, generator=gen)]
    _check_against_cpu(lambda x, w: ops.patch_embed(x, 16, w, keep=keep.to(x.device)),
                       lambda x, w: reference.patch_embed(x, (16,), w, keep=keep), tensors)


@pytest.mark.parametrize("keep", [torch.tensor([4, 0, 4]), torch.tensor([[1, 2], [0, 0], [5, 3]])])
def test_drop_tokens(keep):
    tokens = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(2))
    _check_against_cpu(lambda t: ops.drop_tokens(t, keep.to(t.device)), lambda t: reference.drop_tokens(t, keep),
                       [tokens])


@pytest.mark.parametrize("candidates", [1, 3])
def test_contrastive_rows_local_against_global(candidates):
    gen = torch.Generator().manual_seed(3)
    video = F.normalize(torch.randn(7, 8, generator=gen), dim=-1)
    text = F.normalize(torch.randn(7, candidates, 8, generator=gen), dim=-1)
    mask = torch.tensor([True, False, True, True, True, False, True])
    local = slice(2, 6)

    def fused(v_local, t_local, v_all, t_all):
        device_mask = mask.to(v_all.device)
        return ops.contrastive_rows(v_local, t_local, v_all, t_all, device_mask[local], device_mask, 0.05, 3)

    def plain(v_local, t_local, v_all, t_all):
        return losses.contrastive_rows(v_local, t_local, v_all, t_all, mask[local], mask, 0.05)

    _check_against_cpu(fused, plain, [video[local], text[local], video, text])


def test_the_xla_device_is_served_by_the_composites():
    assert all(devices["xla"] == "composite" for devices in ops.implementations()["ops"].values())
