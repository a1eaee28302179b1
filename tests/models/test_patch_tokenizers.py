import pytest
import torch

from vatt.models.patch_tokenizers import VideoPatchTokenizer, WaveformPatchTokenizer


def small_video_tokenizer(**kwargs):
    args = dict(dim=8, patch_size=(2, 4, 4), frames=4, size=8, dropout=0.0)
    args.update(kwargs)
    return VideoPatchTokenizer(**args)


def test_video_tokens_have_agg_first_and_one_token_per_patch():
    tokenizer = small_video_tokenizer()
    assert (tokenizer.num_tokens, tokenizer.sample_ndim, tokenizer.dim) == (8, 4, 8)
    tokens, mask = tokenizer(torch.randn(3, 3, 4, 8, 8))
    assert tokens.shape == (3, 9, 8) and mask is None
    assert torch.equal(tokens[:, 0], tokenizer.agg.expand(3, -1))


def test_video_tokenizer_counts_release_buckets_at_full_size():
    with torch.device("meta"):
        tokenizer = VideoPatchTokenizer(dim=16)
    assert tokenizer.positions.grid == (8, 14, 14) and tokenizer.num_tokens == 1568
    assert tokenizer.projection.weight.shape == (16, 3 * 4 * 16 * 16)


@pytest.mark.parametrize("per_sample", [False, True])
def test_kept_tokens_equal_the_same_positions_of_the_full_sequence(per_sample):
    tokenizer = small_video_tokenizer()
    x = torch.randn(2, 3, 4, 8, 8)
    full, _ = tokenizer(x)  # [B, 9, D]
    keep = torch.tensor([[1, 6, 7], [0, 2, 5]]) if per_sample else torch.tensor([6, 1, 3])
    kept, _ = tokenizer(x, keep=keep)
    assert kept.shape == (2, 4, 8)
    torch.testing.assert_close(kept[:, 0], full[:, 0])
    gathered = torch.stack([full[b, 1:][keep[b] if per_sample else keep] for b in range(2)])
    torch.testing.assert_close(kept[:, 1:], gathered)


def test_agg_token_carries_no_position():
    tokenizer = small_video_tokenizer()
    with torch.no_grad():
        tokenizer.positions.axes[0].add_(5.0)
    tokens, _ = tokenizer(torch.randn(1, 3, 4, 8, 8))
    torch.testing.assert_close(tokens[0, 0], tokenizer.agg)


def test_resize_positions_adapts_to_a_larger_frame():
    tokenizer = small_video_tokenizer(size=16)  # grid 2 x 4 x 4
    tokenizer.resize_positions(size=24)
    assert tokenizer.positions.grid == (2, 6, 6) and tokenizer.num_tokens == 72
    assert tokenizer.size == (24, 24)
    tokens, _ = tokenizer(torch.randn(1, 3, 4, 24, 24))
    assert tokens.shape == (1, 73, 8)


def test_resize_to_fine_tune_size_gives_eight_plus_twenty_plus_twenty_buckets():
    tokenizer = VideoPatchTokenizer(dim=4)
    tokenizer.resize_positions(size=320)
    assert tokenizer.positions.grid == (8, 20, 20)


def test_input_of_another_size_is_refused():
    with pytest.raises(ValueError, match="positions were built for"):
        small_video_tokenizer()(torch.randn(1, 3, 4, 12, 12))


def test_non_square_frames_and_a_temporal_patch_that_leaves_a_remainder():
    tokenizer = small_video_tokenizer(patch_size=(3, 4, 4), frames=7, size=(8, 12))
    assert tokenizer.positions.grid == (2, 2, 3)
    tokens, _ = tokenizer(torch.randn(2, 3, 7, 8, 12))
    assert tokens.shape == (2, 13, 8)


def test_waveform_tokenizer_has_1200_positions_at_release_size():
    tokenizer = WaveformPatchTokenizer(dim=4, dropout=0.0)
    assert (tokenizer.num_tokens, tokenizer.sample_ndim) == (1200, 1)
    tokens, mask = tokenizer(torch.rand(2, 153600) * 2 - 1, keep=torch.arange(0, 1200, 2))
    assert tokens.shape == (2, 601, 4) and mask is None


def test_waveform_tokens_are_projected_patches_plus_positions():
    tokenizer = WaveformPatchTokenizer(dim=3, patch_size=4, samples=8, dropout=0.0)
    wave = torch.randn(1, 8)
    tokens, _ = tokenizer(wave)
    expected = tokenizer.projection(wave.view(1, 2, 4)) + tokenizer.positions.table()
    torch.testing.assert_close(tokens[:, 1:], expected)


def test_dropout_is_active_only_in_training():
    tokenizer = small_video_tokenizer(dropout=0.5)
    x = torch.randn(1, 3, 4, 8, 8)
    tokenizer.eval()
    torch.testing.assert_close(tokenizer(x)[0], tokenizer(x)[0])
    tokenizer.train()
    assert (tokenizer(x)[0][:, 1:] == 0).any()


@pytest.mark.parametrize("kwargs, message", [
    (dict(dim=0), "dim"), (dict(size=[8, 8, 8]), "size"), (dict(patch_size=(2, 4)), "patch_size"),
    (dict(dropout=1.0), "dropout"), (dict(frames=1), "does not fit"),
])
def test_bad_video_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_video_tokenizer(**kwargs)
