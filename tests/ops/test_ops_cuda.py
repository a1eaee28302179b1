"""The CUDA kernels (csrc/cuda/*.cu) on CUDA tensors: opcheck, and forward and backward against the references in
float32 and bfloat16, at small shapes and at VATT's (video 32×224² in 4×16² patches, 153,600 audio samples in
patches of 128, the tiled loss at B = 8192). The references run in float64 on the same (rounded) inputs. Skipped
where no GPU is present; the GPU lane runs them."""
import pytest
import torch
import torch.nn.functional as F
from ops_inputs import opcheck_cases

import vatt.ops as ops
from vatt.losses import contrastive_rows as plain_rows
from vatt.ops.patch_layout import num_patches, patch_values
from vatt.testing import reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = "cuda"
DTYPES = [torch.float32, torch.bfloat16]
# Relative to each tensor's largest value, by the dtype it comes in: float32 sums in another order, bfloat16 also
# rounds every output. The loss computes in float32 whatever its inputs, so its rows meet float32's.
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


@pytest.fixture(autouse=True)
def full_float32_matmuls():
    """TF32 would round float32 products to 10 mantissa bits, which the float32 tolerance does not allow for."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = saved


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.device.type == torch.device(CUDA).type
    tolerance = TOLERANCE[actual.dtype]
    scale = float(expected.detach().abs().max()) or 1.0
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tolerance, atol=tolerance * scale)


def check_against_float64(op, expected_function, inputs, dtype, out_dtype=None):
    """``op`` on the inputs in ``dtype`` against ``expected_function`` on the same values in float64: the output
    (in ``out_dtype``, default ``dtype``) and, for one random output gradient, the gradients of every input."""
    low = [t.to(dtype).requires_grad_() for t in inputs]
    high = [t.detach().double().requires_grad_() for t in low]
    out, expected = op(*low), expected_function(*high)
    assert out.dtype == (out_dtype or dtype)
    assert_close_scaled(out, expected)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out.device, out.dtype)
    grads = torch.autograd.grad(out, low, grad_out)
    expected_grads = torch.autograd.grad(expected, high, grad_out.double())
    for grad, expected_grad in zip(grads, expected_grads):
        assert grad.dtype == dtype
        assert_close_scaled(grad, expected_grad)


def test_the_cuda_kernels_serve_cuda():
    """Where a GPU is present, the CUDA kernels must be what these tests run, not the composites."""
    served = {name: devices["cuda"] for name, devices in ops.implementations()["ops"].items()}
    assert all(kernel.startswith("CUDA (") for kernel in served.values()), (served, ops.EXTENSION.notes)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(opcheck_cases()))
def test_opcheck_on_cuda(name, dtype):
    op, args = opcheck_cases(CUDA, dtype)[name]
    torch.library.opcheck(op, args)


def _patch_inputs(batch, signal, patch, dim):
    """(x, weight, bias, pos, N) on the GPU: a raw signal in [-1, 1], weights at the tokenizers' scale."""
    gen = torch.Generator(CUDA).manual_seed(0)
    shape = (batch, *signal)
    x = torch.empty(shape, device=CUDA).uniform_(-1, 1, generator=gen)
    weight = torch.randn(dim, patch_values(shape, patch), device=CUDA, generator=gen) * 0.02
    count = num_patches(shape, patch)
    bias, pos = torch.randn(dim, device=CUDA, generator=gen), torch.randn(count, dim, device=CUDA, generator=gen)
    return x, weight, bias, pos, count


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("keep", ["none", "shared", "per_sample"])
def test_patch_embed_matches_the_reference(keep, dtype):
    x, weight, bias, pos, _ = _patch_inputs(3, (3, 5, 9, 13), (2, 4, 3), 7)  # 2×2×4 patches, remainders
    kept = {"none": None, "shared": torch.tensor([11, 0, 3, 3, 15], device=CUDA),
            "per_sample": torch.tensor([[1, 2], [15, 15], [0, 13]], device=CUDA)}[keep]
    check_against_float64(lambda *t: ops.patch_embed(t[0], (2, 4, 3), *t[1:], kept),
                          lambda *t: reference.patch_embed(t[0], (2, 4, 3), *t[1:], kept), [x, weight, bias, pos],
                          dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("signal, patch, dim", [((3, 32, 224, 224), (4, 16, 16), 1024), ((153600,), (128,), 768)],
                         ids=["video_32x224x224", "audio_153600"])
def test_patch_embed_at_vatts_shapes(signal, patch, dim, dtype):
    """The release's input sizes with its DropToken draw: a shared half of the patches, sorted."""
    x, weight, bias, pos, count = _patch_inputs(2, signal, patch, dim)
    keep = torch.randperm(count, generator=torch.Generator().manual_seed(1))[:count // 2].sort().values.to(CUDA)
    check_against_float64(lambda *t: ops.patch_embed(t[0], patch, *t[1:], keep),
                          lambda *t: reference.patch_embed(t[0], patch, *t[1:], keep), [x, weight, bias, pos], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_drop_tokens_matches_the_reference(dtype):
    tokens = torch.randn(4, 9, 6, device=CUDA)
    for keep in (torch.tensor([8, 0, 8, 3], device=CUDA), torch.tensor([[0, 1], [8, 8], [2, 7], [5, 5]], device=CUDA)):
        check_against_float64(lambda t: ops.drop_tokens(t, keep), lambda t: reference.drop_tokens(t, keep),
                              [tokens], dtype)


def _loss_inputs(clips, candidates, dim, seed=0):
    gen = torch.Generator(CUDA).manual_seed(seed)
    video = F.normalize(torch.randn(clips, dim, device=CUDA, generator=gen), dim=-1)
    text = F.normalize(torch.randn(clips, candidates, dim, device=CUDA, generator=gen), dim=-1)
    mask = torch.ones(clips, dtype=torch.bool, device=CUDA)
    mask[::7] = False  # some clips without text, as in AudioSet-mixed batches
    return video, text, mask


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("temperature, tile", [(0.07, 3), (0.01, 256)])
def test_contrastive_rows_local_against_global(temperature, tile, dtype):
    video, text, mask = _loss_inputs(11, 3, 8)
    local = slice(2, 7)
    check_against_float64(
        lambda v_local, t_local, v_all, t_all: ops.contrastive_rows(v_local, t_local, v_all, t_all, mask[local], mask,
                                                                    temperature, tile),
        lambda v_local, t_local, v_all, t_all: plain_rows(v_local, t_local, v_all, t_all, mask[local], mask,
                                                          temperature),
        [video[local], text[local], video, text], dtype, out_dtype=torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_the_tiled_loss_at_a_batch_of_8192(dtype):
    """B = G = 8192 clips with 5 captions each: 160 tiles of 256 columns per row block, every row's log-sum-exp
    accumulated over them; the plain rows build the 8192 × 2·40960 logits at once."""
    video, text, mask = _loss_inputs(8192, 5, 256)
    check_against_float64(lambda v, t: ops.contrastive_rows(v, t, v, t, mask, mask, 0.07),
                          lambda v, t: plain_rows(v, t, v, t, mask, mask, 0.07), [video, text], dtype,
                          out_dtype=torch.float32)
