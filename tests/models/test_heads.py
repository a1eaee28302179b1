import pytest
import torch

from vatt.models.heads import FineAndCoarseVideoHead, LinearHead


def test_fac_head_computes_vt_from_va():
    head = FineAndCoarseVideoHead(in_dim=8, va_dim=6, vt_dim=4).eval()
    with torch.no_grad():
        for norm in (head.va_hidden_norm, head.va_norm, head.vt_norm):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
    feature = torch.randn(5, 8)
    out = head(feature)
    assert set(out) == {"va", "vt"} and out["va"].shape == (5, 6) and out["vt"].shape == (5, 4)
    hidden = torch.relu(head.va_hidden_norm(feature @ head.va_hidden.weight.t()))
    va = head.va_norm(hidden @ head.va_out.weight.t())
    torch.testing.assert_close(out["va"], va)
    torch.testing.assert_close(out["vt"], head.vt_norm(torch.relu(va) @ head.vt_out.weight.t()))


def test_fac_head_is_bias_free_with_release_batch_norm_settings():
    head = FineAndCoarseVideoHead(in_dim=8)
    assert all(linear.bias is None for linear in (head.va_hidden, head.va_out, head.vt_out))
    assert head.va_norm.momentum == 0.1 and head.va_norm.eps == 1e-5
    assert head.va_out.weight.shape == (512, 512) and head.vt_out.weight.shape == (256, 512)


def test_fac_head_normalises_with_batch_statistics_in_training():
    out = FineAndCoarseVideoHead(in_dim=8, va_dim=6, vt_dim=4).train()(torch.randn(16, 8))
    torch.testing.assert_close(out["va"].mean(0), torch.zeros(6), atol=1e-5, rtol=0)


def test_linear_head_names_its_space():
    head = LinearHead(in_dim=8, dim=3, space="vt")
    feature = torch.randn(2, 8)
    out = head(feature)
    assert list(out) == ["vt"]
    torch.testing.assert_close(out["vt"], feature @ head.projection.weight.t() + head.projection.bias)


def test_bad_head_arguments_raise():
    with pytest.raises(ValueError, match="va_dim"):
        FineAndCoarseVideoHead(in_dim=8, va_dim=0)
    with pytest.raises(ValueError, match="space"):
        LinearHead(in_dim=8, dim=3, space="")
