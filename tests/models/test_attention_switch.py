"""scaled_dot_product_attention or the explicit softmax(QKᵀ/√d)V: the same outputs and gradients either way, and
`speed.set_sdpa` (run.sdpa) reaches every attention layer of a model."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vatt import config as cfglib
from vatt.engine import speed
from vatt.models import transformer
from vatt.models.t5 import T5TextEncoder
from vatt.models.transformer import VisionTransformer, attention
from vatt.tasks import builders

ROOT = Path(__file__).resolve().parents[2]


def _qkv(requires_grad=True):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, 5, 8, generator=gen, requires_grad=requires_grad) for _ in range(3)]


@pytest.mark.parametrize("kind", ["none", "bool", "bias"])
@pytest.mark.parametrize("scale", [None, 1.0])
def test_explicit_attention_matches_sdpa_with_gradients(kind, scale):
    mask = {"none": None,
            "bool": torch.tensor([[True] * 5, [True, True, True, False, False]])[:, None, None, :],
            "bias": torch.randn(1, 3, 5, 5, generator=torch.Generator().manual_seed(1))}[kind]
    results = []
    for sdpa in (True, False):
        q, k, v = _qkv()
        y = attention(q, k, v, attn_mask=mask, scale=scale, sdpa=sdpa)
        y.square().sum().backward()
        results.append((y, q.grad, k.grad, v.grad))
    for fused, explicit in zip(*results):
        torch.testing.assert_close(explicit, fused, rtol=1e-4, atol=1e-5)


def test_explicit_attention_is_not_sdpa(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(transformer.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    q, k, v = _qkv(requires_grad=False)
    attention(q, k, v, sdpa=False)
    assert calls == []
    attention(q, k, v, sdpa=True)
    assert calls == [1]


@pytest.mark.parametrize("train", [False, True])
def test_backbones_give_the_same_tokens_either_way(train):
    torch.manual_seed(0)
    vit = VisionTransformer(width=16, layers=2, mlp_dim=32, heads=4, dropout=0.0)
    t5 = T5TextEncoder(width=16, layers=2, mlp_dim=32, heads=4, dropout=0.0)
    tokens = torch.randn(3, 7, 16)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    for backbone in (vit, t5):
        backbone.train(train)
        assert speed.set_sdpa(backbone, True) == 2
        fused = backbone(tokens, mask)
        assert speed.set_sdpa(backbone, False) == 2
        explicit = backbone(tokens, mask)
        torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-5)


def test_set_sdpa_reaches_every_attention_layer_of_the_quickstart_model(monkeypatch):
    cfg = cfglib.load(ROOT / "configs" / "quickstart.yaml")
    torch.manual_seed(0)
    model = builders.build_model(cfg["model"]).eval()
    layers = [m for m in model.modules() if isinstance(getattr(m, "sdpa", None), bool)]
    assert len(layers) == 6  # 2 layers in each of the video, audio and text towers
    batch = {name: tower.tokenizer.example_input(2) for name, tower in model.towers.items()}
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        fused = model(batch)
        assert len(calls) == 6
        assert speed.set_sdpa(model, False) == 6 and not any(m.sdpa for m in layers)
        explicit = model(batch)
    assert len(calls) == 6  # the explicit path never called it
    for modality, spaces in fused.items():
        for space, value in spaces.items():
            torch.testing.assert_close(explicit[modality][space], value, rtol=1e-4, atol=1e-5)
