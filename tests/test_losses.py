import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vatt.losses import MILNCELoss, NCELoss, mil_nce, nce
from vatt.registry import get


def _logsumexp(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def reference_mil_nce(video, text, mask, temperature):
    """The spec's formula written out clip by clip, in Python floats."""
    video = (video / video.norm(dim=-1, keepdim=True)).tolist()
    text = (text / text.norm(dim=-1, keepdim=True)).tolist()
    batch, candidates = len(text), len(text[0])

    def sim(i, j, l):  # video i against candidate l of clip j
        if not mask[j]:
            return -1e9
        return sum(a * b for a, b in zip(video[i], text[j][l])) / temperature

    total = 0.0
    for i in range(batch):
        if not mask[i]:
            continue
        denominator = [sim(i, j, l) for j in range(batch) for l in range(candidates)]
        denominator += [sim(j, i, l) for j in range(batch) for l in range(candidates)]
        positives = [sim(i, i, l) for l in range(candidates)]
        total += _logsumexp(denominator) - _logsumexp(positives)
    with_text = sum(bool(m) for m in mask)
    return total / with_text if with_text else 0.0


def test_hand_made_nce_matches_the_formula():
    video = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    audio = torch.tensor([[1.0, 1.0], [0.0, -1.0], [2.0, 0.5]], dtype=torch.float64)
    expected = reference_mil_nce(video, audio[:, None], [True] * 3, 0.5)
    assert nce(video, audio, temperature=0.5).item() == pytest.approx(expected, rel=1e-12)


def test_two_clips_one_candidate_by_hand():
    # Orthonormal pairs: s(v_i, t_i) = 1/τ, s(v_i, t_j) = 0 for i != j. Denominator of each row holds
    # the positive twice (once per direction) and two zeros.
    video = torch.eye(2, dtype=torch.float64)
    tau = 0.1
    expected = math.log(2 * math.exp(1 / tau) + 2) - 1 / tau
    assert nce(video, video.clone(), temperature=tau).item() == pytest.approx(expected, rel=1e-12)


def test_hand_made_mil_nce_with_a_missing_text():
    torch.manual_seed(0)
    video = torch.randn(4, 3, dtype=torch.float64)
    text = torch.randn(4, 2, 3, dtype=torch.float64)
    mask = torch.tensor([True, False, True, True])
    expected = reference_mil_nce(video, text, mask.tolist(), 0.07)
    assert mil_nce(video, text, mask).item() == pytest.approx(expected, rel=1e-10)


def test_text_of_masked_clips_does_not_matter():
    torch.manual_seed(1)
    video, text = torch.randn(3, 4), torch.randn(3, 2, 4)
    mask = torch.tensor([True, True, False])
    other = text.clone()
    other[2] = torch.randn(2, 4) * 100
    assert torch.equal(mil_nce(video, text, mask), mil_nce(video, other, mask))


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 4), candidates=st.integers(1, 3), dim=st.integers(1, 4),
       temperature=st.sampled_from([0.05, 0.07, 0.3, 1.0, 4.0]), seed=st.integers(0, 2**16),
       mask_bits=st.lists(st.booleans(), min_size=4, max_size=4))
def test_matches_loop_reference_and_ignores_batch_order(batch, candidates, dim, temperature, seed, mask_bits):
    generator = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, dim, generator=generator, dtype=torch.float64) + 0.1
    text = torch.randn(batch, candidates, dim, generator=generator, dtype=torch.float64) + 0.1
    mask = torch.tensor(mask_bits[:batch])
    loss = mil_nce(video, text, mask, temperature)
    assert loss.item() == pytest.approx(reference_mil_nce(video, text, mask.tolist(), temperature),
                                        rel=1e-9, abs=1e-9)
    order = torch.randperm(batch, generator=generator)
    assert mil_nce(video[order], text[order], mask[order], temperature).item() == pytest.approx(
        loss.item(), rel=1e-9, abs=1e-9)
    if candidates == 1:
        assert nce(video, text[:, 0], mask, temperature).item() == pytest.approx(loss.item(), rel=1e-12)


@pytest.mark.parametrize("loss_fn, text_shape", [(nce, (3, 5)), (mil_nce, (3, 2, 5))])
def test_no_text_at_all_gives_zero_with_finite_zero_grads(loss_fn, text_shape):
    video = torch.randn(3, 5, requires_grad=True)
    text = torch.randn(*text_shape, requires_grad=True)
    loss = loss_fn(video, text, torch.zeros(3, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(video.grad, torch.zeros_like(video))
    assert torch.equal(text.grad, torch.zeros_like(text))


def test_extreme_temperature_with_unit_vectors_stays_finite():
    torch.manual_seed(2)
    video = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1).requires_grad_()
    text = torch.nn.functional.normalize(torch.randn(8, 5, 16), dim=-1)
    text[:, 0] = video.detach()  # a perfect match: logits of 1/0.01 = 100
    text.requires_grad_()
    mask = torch.tensor([True, False] * 4)
    loss = mil_nce(video, text, mask, temperature=0.01)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(video.grad).all() and torch.isfinite(text.grad).all()


def test_half_precision_inputs_give_a_finite_float32_loss():
    video, text = torch.randn(4, 8).half(), torch.randn(4, 2, 8).half()
    loss = mil_nce(video, text, torch.tensor([True, False, True, False]), temperature=0.01)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_gradcheck_float64():
    torch.manual_seed(3)
    video = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    text = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([True, False, True])
    assert torch.autograd.gradcheck(lambda v, t: mil_nce(v, t, mask, 0.3), (video, text))
    assert torch.autograd.gradcheck(lambda v, t: nce(v, t[:, 0], None, 0.3), (video, text))


def test_registered_losses_are_the_functions():
    torch.manual_seed(4)
    video, audio, text = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 2, 4)
    mask = torch.tensor([True, False, True])
    nce_loss = get("losses", "nce").obj(**get("losses", "nce").example)
    mil_loss = get("losses", "mil_nce").obj(temperature=0.2)
    assert isinstance(nce_loss, NCELoss) and isinstance(mil_loss, MILNCELoss)
    assert torch.equal(nce_loss(video, audio, mask), nce(video, audio, mask, 0.07))
    assert torch.equal(mil_loss(video, text, mask), mil_nce(video, text, mask, 0.2))


@pytest.mark.parametrize("call, message", [
    (lambda: nce(torch.randn(3, 4), torch.randn(3, 5)), "y must have the shape"),
    (lambda: nce(torch.randn(3), torch.randn(3)), "x must be a non-empty"),
    (lambda: nce(torch.randn(3, 4), torch.randn(3, 4), torch.ones(2, dtype=torch.bool)), "mask must have"),
    (lambda: mil_nce(torch.randn(3, 4), torch.randn(3, 2, 5)), "text must be"),
    (lambda: mil_nce(torch.randn(3, 4), torch.randn(3, 0, 4)), "at least one candidate"),
    (lambda: mil_nce(torch.randn(3, 4), torch.randn(3, 2, 4), torch.ones(4)), "text_mask must have"),
    (lambda: nce(torch.randn(3, 4), torch.randn(3, 4), temperature=0.0), "temperature"),
    (lambda: NCELoss(temperature=-1.0), "temperature"),
    (lambda: MILNCELoss(temperature=float("nan")), "temperature"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mil_nce_with_one_candidate_per_clip_is_nce():
    video, text = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    assert torch.allclose(mil_nce(video, text), nce(video, text))
    assert torch.allclose(mil_nce(video, text), mil_nce(video, text[:, None]))
