"""Converted release checkpoints compute what the authors' TensorFlow model computed on the same inputs.

Every reference output of ../shared/tf_reference (README §1.1–1.4) is compared in float32, eval mode, within
1e-5 relative (max |vatt − TF| / max |TF|); the README's own float64 re-derivation saw ≤ 6e-6.
"""
from __future__ import annotations

import pytest
import torch

import vatt
from tests.tf_reference import channels_first, load_npz, mono, relative_error
from vatt.evaluators.classification import ClassificationEvaluator

TOLERANCE = 1e-5
HEAD_OUTPUTS = {"video/toaud": ("video", "va"), "video/totxt": ("video", "vt"), "audio/tovid": ("audio", "va"),
                "text/tovid": ("text", "vt")}


def multimodal_batch(ref: dict) -> dict[str, torch.Tensor]:
    video = channels_first(ref["inputs/video"])
    text = torch.from_numpy(ref["inputs/text"]).long()  # [B·L, 16]: rows b·L … b·L+L−1 are clip b's
    return {"video": video, "audio": mono(ref["inputs/audio"]),
            "text": text.view(video.shape[0], -1, text.shape[-1])}


def errors_of(model, ref: dict, modalities=("video", "audio", "text")) -> dict[str, float]:
    """The relative error of every output the reference holds for these modalities."""
    batch = multimodal_batch(ref)
    with torch.no_grad():
        encoded, spaces = model.encode(batch), model(batch)
    errors = {}
    for m in modalities:
        expected = ref[f"outputs/{m}/features"]
        errors[f"{m}/features_pooled"] = relative_error(encoded[m]["pooled"].reshape(expected.shape[0], -1),
                                                        ref[f"outputs/{m}/features_pooled"])
        errors[f"{m}/features"] = relative_error(encoded[m]["tokens"].reshape(expected.shape), expected)
    for key, (m, space) in HEAD_OUTPUTS.items():
        if m in modalities:
            expected = ref[f"outputs/head_stack/bridge/{key}"]
            errors[key] = relative_error(spaces[m][space].reshape(expected.shape), expected)
    return errors


@pytest.mark.parametrize("name", ["tx_fac_small", "ut_fac_small"])
def test_pretraining_models_equal_the_release(converted, name):
    model = vatt.load_pretrained(converted(name))
    assert not model.training
    errors = errors_of(model, load_npz(f"{name}_reference.npz"))
    assert len(errors) == 10 and max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("name, size", [("tx_fac_small_interp_reference.npz", 48),
                                        ("tx_fac_small_interp_smaller_reference.npz", 24)])
def test_video_position_tables_resize_as_the_release_does(converted, name, size):
    """The 4×4 spatial buckets resized to the 6×6 (3×3) grid of 48² (24²) frames give TF's outputs."""
    ref = load_npz(name)
    model = vatt.load_pretrained(converted("tx_fac_small"))
    model.towers["video"].tokenizer.resize_positions(size=size)
    tables = model.towers["video"].tokenizer.positions.axes
    for axis, table in zip(("temporal", "vertical", "horizontal"), tables):
        assert relative_error(table.detach(), ref[f"debug/video/pos_tables/{axis}"]) < 3e-6
    errors = errors_of(model, ref)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("name, samples", [("tx_fac_small_interp_audio_reference.npz", 9600),
                                           ("tx_fac_small_interp_audio_shorter_reference.npz", 3200)])
def test_audio_position_table_resizes_as_the_release_does(converted, name, samples):
    """TF resizes the 50-row audio table in ill-conditioned float32 (README §5): vatt's exact float64 spline is
    within that noise of TF's table, and with TF's own table put in, the rest of the audio path is tight."""
    ref = load_npz(name)
    model = vatt.load_pretrained(converted("tx_fac_small"))
    tokenizer = model.towers["audio"].tokenizer
    tokenizer.resize_positions(samples=samples)
    tf_table = ref["debug/audio/pos_tables/temporal"]
    assert relative_error(tokenizer.positions.axes[0].detach(), tf_table) < 0.1
    with torch.no_grad():
        tokenizer.positions.axes[0].copy_(torch.from_numpy(tf_table))
    errors = errors_of(model, ref)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("name, modality, key", [("vit_cls_small", "video", "images"),
                                                 ("wat_cls_small", "audio", "audio")])
def test_classifiers_equal_the_release_with_two_clip_evaluation(converted, name, modality, key):
    ref = load_npz(f"{name}_reference.npz")
    model = vatt.load_pretrained(converted(name))
    as_vatt = channels_first if modality == "video" else mono
    with torch.no_grad():
        logits = model({modality: as_vatt(ref[f"inputs/{key}"])})[modality]["logits"]
        encoded = model.encode({modality: as_vatt(ref[f"inputs/{key}"])})[modality]
    assert relative_error(logits, ref["outputs/logits"]) < TOLERANCE
    assert relative_error(encoded["pooled"], ref["outputs/features_pooled"]) < TOLERANCE
    features = ref["outputs/features"]
    assert relative_error(encoded["tokens"].reshape(features.shape), features) < TOLERANCE

    # The release's evaluation with 2 test clips per sample averages the clips' logits: vatt's classification
    # evaluator does the same with each sample's clips as views.
    clips = as_vatt(ref[f"eval_ntest2/inputs/{key}"])  # [4, ...]: samples 0, 0, 1, 1
    samples = [{modality: clips[2 * i: 2 * i + 2], "label": torch.tensor(0)} for i in range(2)]
    evaluator = ClassificationEvaluator(dataset_name="reference", modality=modality, batch_size=2)
    averaged, _ = evaluator.predict(model, samples)
    assert relative_error(averaged, ref["eval_ntest2/logits"]) < TOLERANCE
    activation = torch.softmax if modality == "video" else lambda x, dim: torch.sigmoid(x)
    assert relative_error(activation(averaged, dim=-1), ref["eval_ntest2/probabilities"]) < TOLERANCE
