"""The log_mel tokenizer: found through its entry point, patches of the right map, through vatt's patch embedding."""
import importlib.metadata as metadata

import pytest
import torch
import torch.nn.functional as F

import vatt.ops
from vatt.registry import get
from vatt.run import main
from vatt_spectrogram import LogMelTokenizer


def test_vatt_finds_it_through_the_entry_point():
    entry = get("tokenizers", "log_mel")
    assert entry.obj is LogMelTokenizer
    assert (entry.provider, entry.version) == ("vatt-spectrogram", metadata.version("vatt-spectrogram"))
    assert entry.example == LogMelTokenizer.vatt_example


def test_listed_with_its_package_and_version(capsys):
    assert main(["--list", "tokenizers"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("log_mel"))
    assert f"[vatt-spectrogram {metadata.version('vatt-spectrogram')}]" in line


def test_paper_geometry_at_48_khz():
    tok = LogMelTokenizer(dim=8)  # 3.2 s at 48 kHz, 80 bins, 16 × 5 patches
    assert tok.grid == (9, 16) and tok.num_tokens == 144
    assert [p.shape[0] for p in tok.patches.positions.axes] == [9, 16]  # its own (time, mel) table


def test_tokens_are_a_strided_convolution_of_the_log_mel_map():
    torch.manual_seed(0)
    tok = LogMelTokenizer(dim=6, samples=4000, sample_rate=8000, num_mels=20, patch_size=[4, 5], dropout=0.0).eval()
    wave = tok.example_input(2)
    tokens, mask = tok(wave)
    assert mask is None and tokens.shape == (2, 1 + tok.num_tokens, 6)

    spectrogram = tok.spectrogram(wave).unsqueeze(1)  # [2, 1, frames, 20]
    kernel = tok.patches.projection.weight.view(6, 1, 4, 5)  # one 4-frame × 5-bin patch per output
    conv = F.conv2d(spectrogram, kernel, tok.patches.projection.bias, stride=(4, 5))  # [2, 6, Gt, Gm]
    expected = conv.flatten(2).transpose(1, 2) + tok.patches.positions.table()  # time-major patch order
    assert torch.allclose(tokens[:, 1:], expected, atol=1e-5)
    assert torch.equal(tokens[:, 0], tok.patches.agg.expand(2, -1))  # [AGG] first, no position


def test_the_map_goes_through_vatts_fused_patch_embedding(monkeypatch):
    calls = []
    fused = vatt.ops.patch_embed

    def spy(x, patch_size, *args):
        calls.append((tuple(x.shape), tuple(patch_size)))
        return fused(x, patch_size, *args)

    monkeypatch.setattr(vatt.ops, "patch_embed", spy)
    torch.manual_seed(0)
    tok = LogMelTokenizer(dim=4, samples=4000, sample_rate=8000, num_mels=20, patch_size=[4, 5], dropout=0.0)
    wave = tok.example_input(3)
    keep = torch.tensor([0, 3, 7, 19])
    tokens, _ = tok(wave, keep)
    assert calls == [((3, 1, 21, 20), (4, 5))]  # the 2-D map [B, 1, frames, mel], 4-frame × 5-bin patches

    tokens.square().sum().backward()
    fused_grad = tok.patches.projection.weight.grad.clone()
    tok.zero_grad()
    tok.patches.fused_ops = False  # the plain PyTorch path computes the same tokens and gradients
    plain, _ = tok(wave, keep)
    plain.square().sum().backward()
    assert torch.allclose(tokens, plain, atol=1e-5)
    assert torch.allclose(fused_grad, tok.patches.projection.weight.grad, atol=1e-4)


def test_wrong_length_names_the_expected_shape():
    tok = LogMelTokenizer(dim=4, samples=4000, sample_rate=8000, num_mels=20, patch_size=[4, 5])
    with pytest.raises(ValueError, match=r"\[B, 4000\]"):
        tok(torch.zeros(2, 3999))


def test_a_clip_shorter_than_one_patch_is_refused():
    with pytest.raises(ValueError, match="fewer than one patch"):
        LogMelTokenizer(dim=4, samples=1000, sample_rate=8000, num_mels=20, patch_size=[16, 5])
