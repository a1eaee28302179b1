"""vatt's contrastive losses against the release's AsymmetricNCE (`loss_cases.npz`, README §1.7, §7).

12 cases: B ∈ {4, 8} × L ∈ {1, 5} × text mask ∈ {all valid, clips 1 and B−1 without text, no text}; for B = 8
clip 2 has no audio. The release's loss is (L_vt + L_va) / 2 with the text mask on video-text and the audio
mask on video-audio; `nomask/*` are the same embeddings with every clip counted. Every path vatt trains with
is held to it: the functions, the registered loss objects (plain and fused), and the pre-training loss terms
with their masks combined over both modalities and weighted as `total_loss` does (Σ w·L / Σ w).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.tf_reference import load_npz
from vatt.engine.speed import set_fused_ops
from vatt.losses import mil_nce, nce
from vatt.registry import build
from vatt.tasks.builders import build_losses, total_loss

CASES = [f"case_{i:02d}" for i in range(12)]
TOLERANCE = 1e-5  # absolute; the README's float64 re-derivation was within 1.3e-6 of TF (§9)
RECIPE = [{"type": "nce", "inputs": ["video.va", "audio.va"], "weight": 1.0, "temperature": 0.07},
          {"type": "mil_nce", "inputs": ["video.vt", "text.vt"], "weight": 1.0, "temperature": 0.07}]


@pytest.fixture(scope="module")
def reference():
    return load_npz("loss_cases.npz")


def case(reference: dict, name: str, dtype=torch.float32) -> dict:
    """One case as tensors: embeddings, text [B, L, D], 0/1 masks, and the release's values as floats."""
    get = lambda key: reference[f"{name}/{key}"]  # noqa: E731
    batch, candidates = int(get("B")), int(get("L"))
    tensor = lambda key: torch.from_numpy(get(key)).to(dtype)  # noqa: E731
    text = tensor("text_tovid")  # [B·L, D], rows b·L … b·L+L−1 are clip b's
    assert text.shape[0] == batch * candidates
    return {"B": batch, "L": candidates,
            "video_toaud": tensor("video_toaud"), "audio_tovid": tensor("audio_tovid"),
            "video_totxt": tensor("video_totxt"), "text_tovid": text.reshape(batch, candidates, -1),
            "text_mask": torch.from_numpy(get("text_mask")), "audio_mask": torch.from_numpy(get("audio_mask")),
            "expected": {key: float(get(key)) for key in ("loss", "vidtxt_loss", "vidaud_loss")},
            "expected_nomask": {key: float(get(f"nomask/{key}")) for key in ("loss", "vidtxt_loss", "vidaud_loss")}}


def values(vidtxt: torch.Tensor, vidaud: torch.Tensor) -> dict[str, float]:
    return {"loss": float((vidtxt + vidaud) / 2), "vidtxt_loss": float(vidtxt), "vidaud_loss": float(vidaud)}


def assert_matches(actual: dict[str, float], expected: dict[str, float], what: str) -> None:
    for key, value in expected.items():
        assert abs(actual[key] - value) <= TOLERANCE, f"{what} {key}: vatt {actual[key]!r}, release {value!r}"


def test_the_cases_are_the_ones_the_readme_describes(reference):
    shapes = set()
    for name in CASES:
        c = case(reference, name)
        shapes.add((c["B"], c["L"], tuple(c["text_mask"].tolist())))
        assert c["video_toaud"].shape == (c["B"], 12) and c["video_totxt"].shape == (c["B"], 10)
        assert c["audio_mask"].tolist() == [1.0 if (c["B"] == 4 or i != 2) else 0.0 for i in range(c["B"])]
    assert len(shapes) == 12


@pytest.mark.parametrize("dtype, fused", [(torch.float32, False), (torch.float32, True), (torch.float64, False)],
                         ids=["torch", "fused", "torch-float64"])
@pytest.mark.parametrize("name", CASES)
def test_the_functions_equal_the_release(reference, name, dtype, fused):
    c = case(reference, name, dtype)
    vidtxt = mil_nce(c["video_totxt"], c["text_tovid"], c["text_mask"], fused=fused)
    vidaud = nce(c["video_toaud"], c["audio_tovid"], c["audio_mask"], fused=fused)
    assert_matches(values(vidtxt, vidaud), c["expected"], f"{name} masked")
    vidtxt = mil_nce(c["video_totxt"], c["text_tovid"], fused=fused)
    vidaud = nce(c["video_toaud"], c["audio_tovid"], fused=fused)
    assert_matches(values(vidtxt, vidaud), c["expected_nomask"], f"{name} no mask")


@pytest.mark.parametrize("fused", [False, True], ids=["torch", "fused"])
@pytest.mark.parametrize("name", CASES)
def test_the_registered_losses_equal_the_release(reference, name, fused):
    c = case(reference, name)
    video_audio = build("losses", {"type": "nce", "temperature": 0.07}, "losses.0")
    video_text = build("losses", {"type": "mil_nce", "temperature": 0.07}, "losses.1")
    assert set_fused_ops([video_audio, video_text], fused) == 2
    vidtxt = video_text(c["video_totxt"], c["text_tovid"], c["text_mask"].bool())
    vidaud = video_audio(c["video_toaud"], c["audio_tovid"], c["audio_mask"].bool())
    assert_matches(values(vidtxt, vidaud), c["expected"], f"{name} masked")
    assert_matches(values(video_text(c["video_totxt"], c["text_tovid"]),
                          video_audio(c["video_toaud"], c["audio_tovid"])), c["expected_nomask"], f"{name} no mask")


@pytest.mark.parametrize("fused", [False, True], ids=["torch", "fused"])
@pytest.mark.parametrize("name", CASES)
def test_the_pretraining_loss_terms_equal_the_release(reference, name, fused):
    """The recipe's two terms as pre-training builds them: masks of both modalities combined per term (video
    is always present here), weights 1 and 1, total = Σ w·L / Σ w = the release's (L_vt + L_va) / 2."""
    c = case(reference, name)
    terms = build_losses(RECIPE)
    set_fused_ops([t.fn for t in terms], fused)
    outputs = {"video": {"va": c["video_toaud"], "vt": c["video_totxt"]}, "audio": {"va": c["audio_tovid"]},
               "text": {"vt": c["text_tovid"]}}  # text as the model returns it: [B, L, d]
    batch = {"video_mask": torch.ones(c["B"], dtype=torch.bool), "audio_mask": c["audio_mask"].bool(),
             "text_mask": c["text_mask"].bool()}
    loss, logged = total_loss(terms, outputs, batch)
    actual = {"loss": float(loss), "vidtxt_loss": float(logged["loss/mil_nce/video_text"]),
              "vidaud_loss": float(logged["loss/nce/video_audio"])}
    assert_matches(actual, c["expected"], f"{name} masked")
    loss, logged = total_loss(terms, outputs, {})  # no masks in the batch: every clip counts
    actual = {"loss": float(loss), "vidtxt_loss": float(logged["loss/mil_nce/video_text"]),
              "vidaud_loss": float(logged["loss/nce/video_audio"])}
    assert_matches(actual, c["expected_nomask"], f"{name} no mask")


@pytest.mark.parametrize("fused", [False, True], ids=["torch", "fused"])
def test_no_valid_text_gives_exactly_zero_with_a_gradient_path(reference, fused):
    empty = [name for name in CASES if not case(reference, name)["text_mask"].any()]
    assert len(empty) == 4
    for name in empty:
        c = case(reference, name)
        assert c["expected"]["vidtxt_loss"] == 0.0
        video = c["video_totxt"].clone().requires_grad_()
        vidtxt = mil_nce(video, c["text_tovid"], c["text_mask"], fused=fused)
        assert vidtxt.item() == 0.0 and vidtxt.requires_grad
        vidtxt.backward()
        assert video.grad is not None and torch.all(video.grad == 0)


def test_a_clip_without_text_contributes_nothing_and_is_no_negative(reference):
    """README §7: text_mask[b] = 0 removes clip b's term and its texts as negatives, so the masked loss
    equals the unmasked loss of the batch with clip b's text dropped (its video stays a negative for the
    other texts, through the second half of each row: the release keeps it there, and dropping it would
    change e.g. case_01 from 7.774 to 7.398)."""
    for name in CASES:
        c = case(reference, name)
        mask = c["text_mask"].bool()
        if mask.all() or not mask.any():
            continue
        masked = mil_nce(c["video_totxt"], c["text_tovid"], mask)
        # the same rows by hand: only the valid texts as candidates of the video-to-text half
        texts = torch.nn.functional.normalize(c["text_tovid"].double(), dim=-1)
        videos = torch.nn.functional.normalize(c["video_totxt"].double(), dim=-1)
        rows = []
        for b in torch.nonzero(mask).flatten().tolist():
            video_to_text = (videos[b] @ texts[mask].reshape(-1, texts.shape[-1]).T) / 0.07
            text_to_video = (texts[b] @ videos.T).flatten() / 0.07
            positives = texts[b] @ videos[b] / 0.07
            rows.append(torch.logsumexp(torch.cat([video_to_text, text_to_video]), 0)
                        - torch.logsumexp(positives, 0))
        by_hand = torch.stack(rows).mean()
        assert abs(float(masked) - float(by_hand)) <= TOLERANCE
        assert abs(float(masked) - c["expected"]["vidtxt_loss"]) <= TOLERANCE, name
        assert np.isfinite(float(masked))
