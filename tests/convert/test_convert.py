"""python -m vatt.convert: what it writes, the full-size release architectures mapped completely, the release's
pretrain → fine-tune restore reproduced by ``model.init``, and bad input as one-screen errors (exit code 2)."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import vatt
from tests.convert.tf_bundles import DATA, numeric, write_bundle
from tests.tf_reference import load_npz, reference_path, relative_error
from vatt import config as cfglib
from vatt.convert.__main__ import main
from vatt.convert.convert import check_fit, full_config
from vatt.convert.release import plan, strip
from vatt.engine.weights import read_weights
from vatt.errors import UserError
from vatt.registry import registry
from vatt.tasks.checkpoint_init import load_by_name, read_checkpoint

FULL_SIZE = {"lbs_variables.txt": ("tx_fac", 431_721_260), "tx_fac_mbs_variables.txt": ("tx_fac", 280_566_572),
             "tx_fac_bbs_variables.txt": ("tx_fac", 213_538_092), "ut_fac_medium_variables.txt": ("ut_fac", 182_651_136)}


def variable_list(name: str) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in reference_path(name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, shape = line.partition("\t")
            shapes[key] = tuple(int(n) for n in shape.split(",")) if shape else ()
    return shapes


TRAINING = {"optimizer": {"type": "sgd", "lr": 0.005, "momentum": 0.9},
            "schedule": {"type": "warmup_cosine", "warmup_steps": 10, "end_lr": 0.0, "period": "half"}}


def task_of(cfg: dict):
    task = registry("tasks").get(cfg["task"], where="task").obj()
    task.validate(cfg, need_data=False)
    return task


@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_full_size_release_architectures_map_completely(name):
    """On the names and shapes alone: no model variable without a target, no vatt entry left unfilled."""
    shapes = variable_list(name)
    result = plan(shapes)
    kind, parameters = FULL_SIZE[name]
    cfg = full_config(result, Path("/converted"))
    with torch.device("meta"):
        model = task_of(cfg).build_model(cfg)
    counters = check_fit(model, result.rules, {strip(k): v for k, v in shapes.items()})
    assert result.kind == kind and sum(p.numel() for p in model.parameters()) == parameters
    assert counters == [f"heads.video.{bn}.num_batches_tracked" for bn in ("va_hidden_norm", "va_norm", "vt_norm")]
    model_variables = [k for k in shapes if k.startswith("model/") and ".OPTIMIZER_SLOT" not in k]
    assert sorted(rule.source for rule in result.rules) == sorted(strip(k) for k in model_variables)


def test_lbs_uses_the_paper_sizes_and_released_head_counts():
    cfg = full_config(plan(variable_list("lbs_variables.txt")), Path("/converted"))
    towers = cfg["model"]["modalities"]
    assert [towers[m]["backbone"]["type"] for m in ("video", "audio", "text")] == ["vit_large", "vit_base", "t5_small"]
    assert towers["video"]["tokenizer"]["patch_size"] == [4, 16, 16] and towers["video"]["tokenizer"]["frames"] == 32
    assert towers["audio"]["tokenizer"]["samples"] == 153600


def test_outputs_written(converted):
    out = converted("tx_fac_small")
    report = json.loads((out / "conversion.json").read_text())
    assert len(report["variables"]) == 124 and report["kind"] == "tx_fac"
    assert report["left_out"]["optimizer slots"]["count"] == 234
    assert sorted(report["left_out"]["optimizer state"]["names"]) == [
        "optimizer/beta_1", "optimizer/beta_2", "optimizer/decay", "optimizer/iter"]
    kernels = {e["source"].rsplit("/", 2)[-2]: e for e in report["variables"] if e["source"].endswith("kernel")}
    assert kernels["voxel_to_patch"]["target"] == "towers.video.tokenizer.projection.weight"
    assert "permuted" in kernels["voxel_to_patch"]["layout"]
    qkv = [e for e in report["variables"] if e["target"] == "towers.video.backbone.blocks.0.attention.qkv.weight"]
    assert [e["rows"] for e in qkv] == [[0, 64], [64, 128], [128, 192]]
    cfg = cfglib.load(out / "config.yaml")
    assert cfg["task"] == "zero_shot" and cfg["model"]["init"] == str(out)
    weights = read_weights(out / "model.safetensors")
    assert len(weights) == len(vatt.load_pretrained(out).state_dict())


def test_shared_backbone_is_stored_once(converted):
    from safetensors import safe_open
    out = converted("ut_fac_small")
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        names = list(f.keys())
    assert not [n for n in names if n.startswith(("towers.audio.backbone", "towers.text.backbone"))]
    model = vatt.load_pretrained(out)
    assert model.towers["audio"].backbone is model.towers["video"].backbone


def test_the_written_config_runs_as_it_is(converted, tmp_path, capsys):
    from vatt.run import main as run_main
    out = converted("tx_fac_small")
    assert run_main([str(out / "config.yaml"), f"run.dir={tmp_path / 'run'}", "run.device=cpu"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["zero_shot/synthetic/pool"] == 64 and 0 <= results["zero_shot/synthetic/R@10"] <= 1


@pytest.mark.parametrize("modality, task, frames_or_samples", [("video", "finetune", 48), ("audio", "audio_finetune", 9600)])
def test_model_init_reproduces_the_release_finetune_restore(converted, modality, task, frames_or_samples):
    """The release's restore into classifiers whose buckets differ (video 2×6×6, audio 75): the same variables
    loaded, only the classifier left fresh, the position tables resized by its spline (README §1.5)."""
    ref = load_npz("finetune_restore_check.npz")
    source = cfglib.load(converted("tx_fac_small") / "config.yaml")["model"]["modalities"][modality]
    tokenizer = dict(source["tokenizer"])
    tokenizer.update({"size": frames_or_samples} if modality == "video" else {"samples": frames_or_samples})
    cfg = {"task": task, "model": {"modality": modality, "num_classes": 7, "tokenizer": tokenizer,
                                   "backbone": source["backbone"], "init": str(converted("tx_fac_small"))},
           **TRAINING}
    model = task_of(cfg).build_model(cfg)
    origin, state = read_checkpoint(cfg["model"]["init"])
    report = load_by_name(model, state, {f"towers.{modality}.": f"towers.{modality}."}, source=str(origin))
    assert report.fresh == [f"heads.{modality}.linear.bias", f"heads.{modality}.linear.weight"]
    assert len(ref[f"{modality}/skipped"]) == 2 and all("classification" in s for s in ref[f"{modality}/skipped"])
    conversion = json.loads((converted("tx_fac_small") / "conversion.json").read_text())
    restored_sources = {e["source"] for e in conversion["variables"] if e["target"] in report.loaded}
    assert len(restored_sources) == int(ref[f"{modality}/n_weights"]) - 2
    axes = ("temporal", "vertical", "horizontal") if modality == "video" else ("temporal",)
    tables = model.towers[modality].tokenizer.positions.axes
    for axis, table in zip(axes, tables):
        restored = ref[f"{modality}/{axis}/restored"]
        assert table.shape == restored.shape
        # video tables are tight; the 50 → 75 audio table is float32-noisy in TF (README §5)
        assert relative_error(table.detach(), restored) < (3e-6 if modality == "video" else 0.1)
    assert sorted(report.resized) == sorted(f"towers.{modality}.tokenizer.positions.axes.{i}"
                                            for i, axis in enumerate(axes) if axis != "temporal" or modality == "audio")


def test_word2vec_and_vocabulary_go_into_the_model(converted, tmp_path):
    table = np.random.default_rng(0).normal(size=(64, 40)).astype(np.float32)
    pkl = tmp_path / "word2vec.pkl"
    pkl.write_bytes(pickle.dumps({"word_embeddings": table}, protocol=4))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["<pad>", "<bos>", "<eos>", "<unk>"] + [f"w{i}" for i in range(60)]) + "\n")
    out = tmp_path / "model"
    assert main([str(reference_path("tx_fac_small_ckpt")), str(out), "--heads", "4", "--max-relative-distance", "64",
                 "--vocabulary", str(vocab), "--word2vec", str(pkl)]) == 0
    model = vatt.load_pretrained(out)
    assert torch.equal(model.towers["text"].tokenizer.embedding.weight, torch.from_numpy(table))
    assert (out / "vocabulary.txt").read_text() == vocab.read_text()
    assert json.loads((out / "conversion.json").read_text())["word2vec"]["shape"] == [64, 40]


# --- bad input: one screen, exit code 2 ------------------------------------------------------------------------

def refused(capsys, *args: str) -> str:
    assert main([*args]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and "Traceback" not in err and len(err.splitlines()) < 25
    return err


@pytest.fixture
def copied(tmp_path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(reference_path("tx_fac_small_ckpt"), folder)
    return folder


def test_not_a_checkpoint(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert str(tmp_path) in refused(capsys, str(tmp_path), str(tmp_path / "out"))
    assert "notes.txt" in refused(capsys, str(tmp_path / "notes.txt"), str(tmp_path / "out"))


def test_missing_or_truncated_data_file(capsys, copied, tmp_path):
    data = copied / f"ckpt-0{DATA}"
    data.write_bytes(data.read_bytes()[:-100])
    assert "truncated" in refused(capsys, str(copied), str(tmp_path / "out"), "--heads", "4")
    data.unlink()
    assert data.name in refused(capsys, str(copied), str(tmp_path / "out"), "--heads", "4")
    assert not (tmp_path / "out").exists()


def test_architectures_vatt_does_not_have_are_named(capsys, tmp_path):
    """The release's I3D video backbone (here its first variables, as a small bundle) is refused, listing what
    the checkpoint holds."""
    base = "model/layer_with_weights-0/_base_layer/"
    tensors = {f"{base}vid_backbone/_base/conv3d_1a_7x7/conv_3d/kernel/.ATTRIBUTES/VARIABLE_VALUE":
               numeric(1, np.zeros((7, 7, 7, 3, 4), np.float32)),
               f"{base}aud_backbone/_base/wave_to_patch/kernel/.ATTRIBUTES/VARIABLE_VALUE":
               numeric(1, np.zeros((4, 1, 4), np.float32))}
    write_bundle(tmp_path / "ckpt-1", tensors)
    err = refused(capsys, str(tmp_path / "ckpt-1"), str(tmp_path / "out"))
    assert "voxel_to_patch" in err and "conv3d_1a_7x7" in err
    write_bundle(tmp_path / "ckpt-2", {"model/layer_with_weights-0/resnet/conv1/kernel/.ATTRIBUTES/VARIABLE_VALUE":
                                       numeric(1, np.zeros((3, 3), np.float32))})
    assert "resnet" in refused(capsys, str(tmp_path / "ckpt-2"), str(tmp_path / "out"))


def test_head_counts_are_required_for_unreleased_widths(capsys, tmp_path):
    err = refused(capsys, str(reference_path("tx_fac_small_ckpt")), str(tmp_path / "out"))
    assert "--heads video=N" in err and "64 wide" in err
    err = refused(capsys, str(reference_path("tx_fac_small_ckpt")), str(tmp_path / "out"), "--heads", "4")
    assert "--max-relative-distance" in err
    assert "does not divide" in refused(capsys, str(reference_path("tx_fac_small_ckpt")), str(tmp_path / "out"),
                                        "--heads", "5")


def test_vocabulary_must_match_the_word_table(capsys, tmp_path):
    err = refused(capsys, str(reference_path("tx_fac_small_ckpt")), str(tmp_path / "out"), "--heads", "4",
                  "--max-relative-distance", "64", "--vocabulary", str(reference_path("tokenizer_vocab.txt")))
    assert "111 words" in err and "64 rows" in err and "tokenizer_vocab.txt" in err


def test_model_init_of_another_architecture_names_the_parameters(converted):
    source = cfglib.load(converted("vit_cls_small") / "config.yaml")["model"]
    cfg = {"task": "finetune", "model": {**source, "backbone": {**source["backbone"], "width": 32, "heads": 2}},
           **TRAINING}
    model = task_of(cfg).build_model(cfg)
    _, state = read_checkpoint(converted("vit_cls_small"))
    with pytest.raises(UserError, match=r"shapes differ: towers\.video\.backbone\.blocks\.0\.attention"):
        load_by_name(model, state, {"towers.video.": "towers.video."}, source="vit_cls_small")
    with pytest.raises(UserError, match="shapes differ"):
        from vatt.engine.weights import load_weights
        load_weights(model, state, "vit_cls_small")
