import pytest
import torch

from vatt.models.t5 import T5TextEncoder, relative_position_buckets, t5_small


def tiny(**kwargs):
    args = dict(width=4, layers=1, mlp_dim=8, heads=2, dropout=0.0)
    args.update(kwargs)
    return T5TextEncoder(**args).eval()


def test_buckets_match_hand_computed_t5_values():
    buckets = relative_position_buckets(101, num_buckets=32, max_distance=64)
    # key - query → bucket: exact below 8, logarithmic up to 64, keys after the query in the upper half
    for relative, expected in [(0, 0), (-1, 1), (-7, 7), (-8, 8), (-16, 10), (-63, 15), (-100, 15),
                               (1, 17), (7, 23), (16, 26), (100, 31)]:
        query = 100 if relative < 0 else 0
        assert buckets[query, query + relative] == expected, relative


def rms(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight


def test_one_layer_matches_a_hand_computation_without_scaling():
    model = tiny()
    block = model.blocks[0]
    x = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    buckets = relative_position_buckets(3, 32, 64)
    bias = model.relative_bias.weight[buckets].permute(2, 0, 1)  # [h, N, N]
    normed = rms(x, block.attention_norm.weight)
    split = lambda t: t.view(2, 3, 2, 2).transpose(1, 2)  # [B, h, N, d]
    q, k, v = (split(normed @ lin.weight.t()) for lin in (block.attention.query, block.attention.key, block.attention.value))
    logits = q @ k.transpose(-1, -2) + bias  # no 1/sqrt(d)
    logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
    attended = (torch.softmax(logits, -1) @ v).transpose(1, 2).reshape(2, 3, 4)
    x1 = x + attended @ block.attention.out.weight.t()
    normed_mlp = torch.nn.functional.layer_norm(x1, (4,), block.mlp_norm.weight, block.mlp_norm.bias, eps=1e-6)
    hidden = torch.nn.functional.gelu(normed_mlp @ block.mlp_in.weight.t())  # the release: LayerNorm, then GELU
    x2 = x1 + hidden @ block.mlp_out.weight.t()
    torch.testing.assert_close(model(x, mask), rms(x2, model.final_norm.weight), atol=1e-5, rtol=1e-5)


def test_one_bias_table_is_shared_by_all_layers_and_only_the_mlp_norms_have_a_bias():
    model = tiny(layers=3)
    names = [name for name, _ in model.named_parameters()]
    assert [n for n in names if "relative_bias" in n] == ["relative_bias.weight"]
    assert [n for n in names if n.endswith(".bias")] == [f"blocks.{i}.mlp_norm.bias" for i in range(3)]
    assert model.relative_bias.weight.shape == (32, 2)


def test_bias_is_computed_once_per_forward():
    model = tiny(layers=3)
    lookups = []
    model.relative_bias.register_forward_hook(lambda *_: lookups.append(1))
    model(torch.randn(1, 5, 4))
    assert len(lookups) == 1


def test_padded_tokens_do_not_change_valid_outputs():
    model = tiny(layers=2)
    x = torch.randn(1, 5, 4)
    mask = torch.tensor([[True, True, True, False, False]])
    changed = x.clone()
    changed[:, 3:] = 50.0
    torch.testing.assert_close(model(changed, mask)[:, :3], model(x, mask)[:, :3])


def test_t5_small_size():
    with torch.device("meta"):
        model = t5_small()
    assert model.width == 512 and len(model.blocks) == 6
    count = sum(p.numel() for p in model.parameters())
    # per layer: q, k, v, o; wi, wo; the RMS norm's weight; the MLP LayerNorm's weight and bias
    assert count == 6 * (4 * 512 * 512 + 2 * 512 * 2048 + 3 * 512) + 512 + 32 * 8


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_buckets=7), "num_buckets"), (dict(max_distance=1), "max_distance"), (dict(heads=3), "divisible"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_rms_norm_statistics_are_float32_for_bfloat16_inputs():
    model = tiny()
    x = torch.randn(2, 3, 4).to(torch.bfloat16)
    normed = model.final_norm(x)
    assert normed.dtype == torch.bfloat16
    torch.testing.assert_close(normed.float(), rms(x.float(), model.final_norm.weight).bfloat16().float())
