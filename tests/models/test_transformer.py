import pytest
import torch
import torch.nn.functional as F

from vatt.models.patch_tokenizers import VideoPatchTokenizer
from vatt.models.transformer import VisionTransformer, vit_base, vit_large, vit_medium, vit_small


def tiny(**kwargs):
    args = dict(width=8, layers=2, mlp_dim=16, heads=2, dropout=0.0)
    args.update(kwargs)
    return VisionTransformer(**args).eval()


def test_output_shape_width_and_final_norm():
    model = tiny()
    out = model(torch.randn(3, 5, 8))
    assert out.shape == (3, 5, 8) and model.width == 8
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)  # LayerNorm, bias 0


def test_one_block_matches_a_hand_written_pre_ln_block():
    model = tiny(layers=1)
    block = model.blocks[0]
    x = torch.randn(2, 4, 8)
    ln = lambda norm, t: F.layer_norm(t, (8,), norm.weight, norm.bias, eps=1e-6)
    q, k, v = F.linear(ln(block.attention_norm, x), block.attention.qkv.weight, block.attention.qkv.bias).chunk(3, -1)
    heads = lambda t: t.view(2, 4, 2, 4).transpose(1, 2)  # [B, h, N, d]
    weights = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / 2.0, dim=-1)  # sqrt(d) = 2
    attended = (weights @ heads(v)).transpose(1, 2).reshape(2, 4, 8)
    x1 = x + block.attention.out(attended)
    pre = block.mlp_in(ln(block.mlp_norm, x1))
    hidden = 0.5 * pre * (1 + torch.erf(pre / 2 ** 0.5))  # exact GELU
    x2 = x1 + block.mlp_out(hidden)
    torch.testing.assert_close(model(x), ln(model.final_norm, x2), atol=1e-5, rtol=1e-5)


def test_padded_tokens_do_not_change_valid_outputs():
    model = tiny()
    x = torch.randn(1, 6, 8)
    mask = torch.tensor([[True, True, True, True, False, False]])
    masked = model(x, mask)[:, :4]
    changed = x.clone()
    changed[:, 4:] = 100.0
    torch.testing.assert_close(model(changed, mask)[:, :4], masked)
    torch.testing.assert_close(model(x[:, :4]), masked, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("factory, reference", [(vit_base, 87.9e6), (vit_medium, 155.0e6), (vit_large, 306.1e6)])
def test_video_tower_parameter_count_matches_table_1_within_one_percent(factory, reference):
    with torch.device("meta"):
        backbone = factory()
        tokenizer = VideoPatchTokenizer(dim=backbone.width)
    count = sum(p.numel() for module in (tokenizer, backbone) for p in module.parameters())
    assert abs(count / reference - 1) < 0.01


def test_size_factories_pass_dropout_through():
    with torch.device("meta"):
        model = vit_small(dropout=0.3)
    assert model.width == 512 and len(model.blocks) == 6 and model.blocks[0].dropout.p == 0.3


@pytest.mark.parametrize("kwargs, message", [
    (dict(width=9), "divisible"), (dict(layers=0), "layers"), (dict(dropout=1.5), "dropout"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_bad_token_shapes_raise():
    with pytest.raises(ValueError, match="tokens must be"):
        tiny()(torch.randn(2, 3, 7))
    with pytest.raises(ValueError, match="mask must be"):
        tiny()(torch.randn(2, 3, 8), torch.ones(2, 3))
