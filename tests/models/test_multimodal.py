import pytest
import torch

from vatt.models.heads import FineAndCoarseVideoHead, LinearHead
from vatt.models.multimodal import MultimodalModel, Tower, pixels_to_model_range
from vatt.models.patch_tokenizers import VideoPatchTokenizer, WaveformPatchTokenizer
from vatt.models.t5 import T5TextEncoder
from vatt.models.transformer import VisionTransformer
from vatt.models.word_tokenizer import WordTokenizer


def vit(width=8):
    return VisionTransformer(width=width, layers=1, mlp_dim=16, heads=2, dropout=0.0)


def video_tokenizer(dim=8):
    return VideoPatchTokenizer(dim=dim, patch_size=(2, 4, 4), frames=4, size=8, dropout=0.0)


def audio_tokenizer(dim=8):
    return WaveformPatchTokenizer(dim=dim, patch_size=4, samples=32, dropout=0.0)


def text_tokenizer(dim=8, **kwargs):
    return WordTokenizer(dim=dim, vocab_size=20, embed_dim=6, max_words=4, **kwargs)


def specific_model(rate=0.5):
    towers = {"video": Tower(video_tokenizer(), vit(), droptoken_rate=rate),
              "audio": Tower(audio_tokenizer(), vit(), droptoken_rate=rate),
              "text": Tower(text_tokenizer(), T5TextEncoder(width=8, layers=1, mlp_dim=16, heads=2, dropout=0.0))}
    heads = {"video": FineAndCoarseVideoHead(in_dim=8, va_dim=6, vt_dim=4),
             "audio": LinearHead(in_dim=8, dim=6, space="va"), "text": LinearHead(in_dim=8, dim=4, space="vt")}
    return MultimodalModel(towers, heads)


def batch(b=3, lists=2):
    return {"video": torch.rand(b, 3, 4, 8, 8) * 2 - 1, "audio": torch.rand(b, 32) * 2 - 1,
            "text": torch.randint(0, 20, (b, lists, 4)), "text_mask": torch.ones(b, dtype=torch.bool)}


def test_outputs_per_modality_and_space_with_text_lists_reshaped_back():
    out = specific_model()(batch())
    assert out["video"]["va"].shape == (3, 6) and out["video"]["vt"].shape == (3, 4)
    assert out["audio"]["va"].shape == (3, 6)
    assert out["text"]["vt"].shape == (3, 2, 4)


def test_uint8_video_is_pixels_mapped_to_minus_one_one_on_the_way_in():
    model = specific_model().eval()
    pixels = torch.randint(0, 256, (3, 3, 4, 8, 8), dtype=torch.uint8)  # what the datasets give
    scaled = pixels.float() / 127.5 - 1
    assert float(pixels_to_model_range(torch.tensor([0, 255], dtype=torch.uint8)).min()) == -1.0
    torch.testing.assert_close(pixels_to_model_range(pixels), scaled)
    views = pixels.unsqueeze(1).expand(3, 2, 3, 4, 8, 8)  # evaluation views [B, V, ...] too
    for inputs, floats in ((pixels, scaled), (views, scaled.unsqueeze(1).expand(3, 2, 3, 4, 8, 8))):
        torch.testing.assert_close(model({"video": inputs})["video"]["vt"], model({"video": floats})["video"]["vt"])
    audio = torch.rand(3, 32)
    assert pixels_to_model_range(audio) is audio  # float inputs pass through


def test_text_lists_are_embedded_independently():
    model = specific_model().eval()
    data = batch()
    whole = model(data, modalities=["text"])["text"]["vt"]
    first = model({"text": data["text"][:, 0]}, modalities=["text"])["text"]["vt"]
    torch.testing.assert_close(whole[:, 0], first)


def test_modalities_selects_towers_and_missing_inputs_are_skipped():
    model = specific_model()
    assert set(model(batch(), modalities=["audio"])) == {"audio"}
    assert set(model({"video": batch()["video"]})) == {"video"}
    with pytest.raises(ValueError, match="no tower"):
        model(batch(), modalities=["depth"])


def record_keep(tower):
    seen = []
    tower.tokenizer.register_forward_pre_hook(lambda _m, args, kwargs: seen.append(kwargs["keep"]), with_kwargs=True)
    return seen


def test_droptoken_only_in_training_and_shared_by_the_batch():
    model = specific_model(rate=0.5)
    seen = record_keep(model.towers["video"])
    model.train()(batch(), modalities=["video"])
    model.eval()(batch(), modalities=["video"])
    assert seen[0].shape == (4,) and seen[1] is None


def test_per_sample_drop_gives_one_row_per_clip():
    tower = Tower(audio_tokenizer(), vit(), droptoken_rate=0.5, per_sample_drop=True)
    seen = record_keep(tower)
    assert tower(torch.randn(3, 32)).shape == (3, 8)
    assert seen[0].shape == (3, 4)


def test_features_are_the_agg_outputs_without_heads():
    model = specific_model().eval()
    data = batch()
    features = model.features(data)
    assert features["video"].shape == (3, 8) and features["text"].shape == (3, 2, 8)
    tokens, _ = model.towers["video"].tokenizer(data["video"])
    torch.testing.assert_close(features["video"], model.towers["video"].backbone(tokens)[:, 0])


def modality_agnostic_model():
    shared = vit(width=12)
    towers = {"video": Tower(VideoPatchTokenizer(dim=12, patch_size=(2, 4, 4), frames=4, size=8, dropout=0.0,
                                                 pre_projection=True), shared, droptoken_rate=0.5, post_projection=10),
              "audio": Tower(WaveformPatchTokenizer(dim=12, patch_size=4, samples=32, dropout=0.0,
                                                    pre_projection=True), shared, droptoken_rate=0.5,
                             post_projection=10),
              "text": Tower(text_tokenizer(12, pre_projection=True), shared, post_projection=10)}
    heads = {"video": FineAndCoarseVideoHead(in_dim=10, va_dim=6, vt_dim=4),
             "audio": LinearHead(in_dim=10, dim=6, space="va"), "text": LinearHead(in_dim=10, dim=4, space="vt")}
    return MultimodalModel(towers, heads), shared


def test_shared_backbone_is_counted_once():
    model, shared = modality_agnostic_model()
    counts = model.parameter_counts()
    assert "video/backbone" not in counts and counts["shared/backbone"] == sum(p.numel() for p in shared.parameters())
    assert counts["video/post_projection"] == 12 * 10 + 10
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert counts["total"] == sum(p.numel() for p in model.parameters())


def test_modality_agnostic_model_runs_every_tower_through_the_shared_weights():
    model, shared = modality_agnostic_model()
    out = model(batch())
    assert out["text"]["vt"].shape == (3, 2, 4)
    sum(z.sum() for spaces in out.values() for z in spaces.values()).backward()
    assert shared.blocks[0].mlp_in.weight.grad is not None


def test_specific_model_counts_each_part():
    counts = specific_model().parameter_counts()
    assert list(counts) == ["video/tokenizer", "video/backbone", "video/head", "audio/tokenizer",
                            "audio/backbone", "audio/head", "text/tokenizer", "text/backbone", "text/head", "total"]
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_encode_gives_the_agg_and_every_token_after_the_post_projection():
    model, _ = modality_agnostic_model()
    model.eval()
    data = batch()
    encoded = model.encode(data)
    assert encoded["video"]["tokens"].shape == (3, 2 * 2 * 2, 10) and encoded["text"]["tokens"].shape == (3, 2, 4, 10)
    features = model.features(data)
    for name in ("video", "audio", "text"):
        torch.testing.assert_close(encoded[name]["pooled"], features[name])
    tower = model.towers["audio"]
    tokens, _ = tower.tokenizer(data["audio"])
    hidden = tower.post_projection(tower.backbone(tokens))  # [B, 1+K, 10]: the GELU Dense on every token
    torch.testing.assert_close(encoded["audio"]["tokens"], hidden[:, 1:])


def test_pre_projection_maps_patches_before_their_positions_with_and_without_droptoken():
    tokenizer = WaveformPatchTokenizer(dim=8, patch_size=4, samples=32, dropout=0.0, pre_projection=True)
    x = torch.rand(2, 32) * 2 - 1
    patches = x.view(2, 8, 4) @ tokenizer.projection.weight.t() + tokenizer.projection.bias  # [B, N, D]
    expected = torch.nn.functional.gelu(tokenizer.pre_projection(patches)) + tokenizer.positions.table()
    tokens, _ = tokenizer(x)
    torch.testing.assert_close(tokens[:, 1:], expected)
    for keep in (torch.tensor([5, 1]), torch.tensor([[0, 7], [3, 2]])):
        kept, _ = tokenizer(x, keep=keep)
        rows = expected[:, keep] if keep.dim() == 1 else torch.stack([expected[b, keep[b]] for b in range(2)])
        torch.testing.assert_close(kept[:, 1:], rows)


def test_mismatched_widths_and_bad_rates_raise():
    with pytest.raises(ValueError, match="dim=8"):
        Tower(video_tokenizer(6), vit(8))
    with pytest.raises(ValueError, match="droptoken_rate"):
        Tower(video_tokenizer(), vit(), droptoken_rate=1.0)


def test_heads_without_towers_and_unbatched_inputs_raise():
    with pytest.raises(ValueError, match="no tower"):
        MultimodalModel({"video": Tower(video_tokenizer(), vit())}, {"audio": LinearHead(in_dim=8, dim=2, space="va")})
    with pytest.raises(ValueError, match="batch dim"):
        specific_model()({"audio": torch.randn(32)})


def test_bfloat16_autocast_forward_and_backward():
    model = specific_model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch())
    assert out["text"]["vt"].dtype == torch.bfloat16
    sum(z.float().sum() for spaces in out.values() for z in spaces.values()).backward()
    assert model.towers["video"].tokenizer.projection.weight.grad is not None


def test_a_modality_can_read_another_modalitys_batch_entry():
    def tower():
        return Tower(WaveformPatchTokenizer(dim=8, patch_size=4, samples=16, dropout=0.0),
                     VisionTransformer(width=8, layers=1, mlp_dim=16, heads=2, dropout=0.0))

    model = MultimodalModel({"audio": tower(), "echo": tower()},
                            {"audio": LinearHead(in_dim=8, dim=4, space="va"),
                             "echo": LinearHead(in_dim=8, dim=4, space="va")}, inputs={"echo": "audio"})
    out = model({"audio": torch.randn(2, 16)})
    assert set(out) == {"audio", "echo"} and out["echo"]["va"].shape == (2, 4)
    with pytest.raises(ValueError, match="name no tower"):
        MultimodalModel({"audio": tower()}, {}, inputs={"smell": "audio"})
