"""Video fine-tuning: a pre-trained start beats a random one, checkpoints load by name (positions resized),
configuration mistakes are named, and the recipe's loss and backbone clipping are what the paper says."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vatt.engine.checkpoint import save_checkpoint
from vatt.errors import UserError
from vatt.models.positions import resize_table
from vatt.run import main
from vatt.tasks import builders
from vatt.tasks.checkpoint_init import load_by_name, read_checkpoint
from vatt.tasks.classifier import ClassifierHead, build_tower_model, classifier_model, clip_before_step, smoothed_cross_entropy
from vatt.tasks.settings import ClassifierSettings, TowerSettings

ROOT = Path(__file__).resolve().parents[2]
FINETUNE = ROOT / "configs" / "finetune_synthetic.yaml"
TOWER = {"tokenizer": {"type": "video_patches", "patch_size": [4, 8, 8], "frames": 8, "size": 32, "dropout": 0.0},
         "backbone": {"type": "vit", "width": 128, "layers": 2, "mlp_dim": 256, "heads": 4, "dropout": 0.0}}
# the colour task (see conftest) with the paper's recipe shrunk to 30 steps of 32 clips
BUDGET = ["model.num_classes=6", "run.steps=30", "schedule.warmup_steps=5", "run.log_every=10",
          "run.checkpoint_every=30"]


def test_fine_tuning_the_pretrained_tower_beats_training_from_scratch(pretrained, colour_task, tmp_path):
    results = {}
    for start, init in (("pretrained", pretrained), ("scratch", "null")):
        run_dir = tmp_path / start
        assert main([str(FINETUNE), f"run.dir={run_dir}", f"model.init={init}", *BUDGET]) == 0
        results[start] = json.loads((run_dir / "results.json").read_text())
    top1 = {start: result["finetune/synthetic/top1"] for start, result in results.items()}
    assert top1["pretrained"] >= 0.9 and top1["pretrained"] > top1["scratch"], top1
    assert set(results["pretrained"]) == {"finetune/synthetic/top1", "finetune/synthetic/top5",
                                          "finetune/synthetic/samples"}
    assert results["pretrained"]["finetune/synthetic/samples"] == 256  # the held-out split
    run_dir = tmp_path / "pretrained"
    report = json.loads((run_dir / "init_report.json").read_text())
    assert report["fresh"] == ["heads.video.linear.bias", "heads.video.linear.weight"]
    assert report["loaded"] and all(name.startswith("towers.video.") for name in report["loaded"])
    assert {name.split(".")[1] for name in report["skipped"]} == {"audio", "text", "video"}  # towers and heads
    assert any((run_dir / "tensorboard").iterdir())
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert evals[-1]["kind"] == "eval" and evals[-1]["finetune/synthetic/top1"] == top1["pretrained"]


def test_a_larger_crop_interpolates_the_position_tables(pretrained):
    bigger = {**TOWER, "tokenizer": {**TOWER["tokenizer"], "size": 48}}  # 4x4 patches per frame become 6x6
    network = build_tower_model(TowerSettings(**bigger))
    source, state = read_checkpoint(pretrained)
    report = load_by_name(network, state, {"towers.video.": "towers.video."}, source=str(source))
    prefix = "towers.video.tokenizer.positions.axes"
    assert report.resized == {f"{prefix}.1": ([4, 128], [6, 128]), f"{prefix}.2": ([4, 128], [6, 128])}
    loaded = network.state_dict()
    torch.testing.assert_close(loaded[f"{prefix}.1"], resize_table(state[f"{prefix}.1"], 6))
    torch.testing.assert_close(loaded[f"{prefix}.0"], state[f"{prefix}.0"])  # time: 2 buckets either way
    network.eval()
    assert network.features({"video": torch.rand(1, 3, 8, 48, 48)})["video"].shape == (1, 128)


def test_a_checkpoint_that_does_not_fit_is_named_with_its_entries(pretrained, tmp_path, capsys):
    code = main([str(FINETUNE), f"run.dir={tmp_path}", f"model.init={pretrained}", "model.backbone.width=64",
                 "model.backbone.mlp_dim=128", "run.steps=1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "model.init" in err and "step_00000600.pt does not fit this model" in err
    assert "towers.video.tokenizer.projection.weight: checkpoint [128, 768], model [64, 768]" in err
    assert "lacks" not in err  # every entry is there, only the shapes differ


def test_a_missing_checkpoint_is_named(tmp_path, capsys):
    code = main([str(FINETUNE), f"run.dir={tmp_path}", f"model.init={tmp_path / 'nowhere'}", "run.steps=1"])
    assert code == 2 and f"model.init: no checkpoint at {tmp_path / 'nowhere'}" in capsys.readouterr().err


class OneBadLabel(Dataset):
    """Eight synthetic clips labelled 0, except the eighth, labelled 9."""
    num_classes = 6

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return 8

    def __getitem__(self, key):
        sample = dict(self.base[key])
        sample["label"] = torch.tensor(9 if getattr(key, "index", key) == 7 else 0)
        return sample

    def source(self, key):
        return self.base.source(key)


def test_a_label_outside_the_classes_names_the_file(monkeypatch, tmp_path, capsys):
    real = builders.build_dataset
    monkeypatch.setattr(builders, "build_dataset", lambda node, where: OneBadLabel(real(node, where)))
    code = main([str(FINETUNE), f"run.dir={tmp_path}", "model.num_classes=6", "run.steps=1", "run.batch_size=8"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "has label 9, outside model.num_classes = 6" in err and ".mp4" in err


def test_the_number_of_classes_must_match_the_data(tmp_path, capsys):
    code = main([str(FINETUNE), f"run.dir={tmp_path}", "model.num_classes=10", "run.steps=1"])
    assert code == 2 and "model.num_classes: 10, but data.train has 96 classes" in capsys.readouterr().err


def test_paper_configs_say_which_data_and_checkpoint_to_set(tmp_path, capsys):
    code = main([str(ROOT / "configs" / "finetune_k400.yaml"), f"run.dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and "data.train.root" in err and "data.eval.root" in err and "kinetics" in err


def test_loss_is_cross_entropy_with_label_smoothing():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 1])

    def network(batch, modalities):
        return {"video": {"logits": logits}}

    loss, scalars = smoothed_cross_entropy("video", label_smoothing=0.1)(network, {"label": labels})
    log_p = F.log_softmax(logits, dim=1)
    by_hand = -(0.9 * log_p[[0, 1], labels] + 0.1 * log_p.mean(dim=1)).mean()
    torch.testing.assert_close(loss, by_hand)
    assert scalars == {"train/top1": 0.5}


def test_only_the_backbone_gradients_are_clipped():
    network = build_tower_model(TowerSettings(**TOWER), lambda width: ClassifierHead(in_dim=width, num_classes=3))
    tower, head = list(network.towers.parameters()), list(network.heads.parameters())
    optimizer = torch.optim.SGD(network.parameters(), lr=0.0)
    clip_before_step(optimizer, tower, 0.75)
    for p in tower + head:
        p.grad = torch.full_like(p, 10.0)
    optimizer.step()
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in tower]))
    assert norm == pytest.approx(0.75, rel=1e-4)
    assert all(torch.equal(p.grad, torch.full_like(p, 10.0)) for p in head)


def tiny_tower(**backbone) -> dict:
    return {"tokenizer": {"type": "video_patches", "patch_size": [2, 4, 4], "frames": 4, "size": 8},
            "backbone": {"type": "vit", "width": 8, "layers": 2, "mlp_dim": 16, "heads": 2, **backbone}}


def test_load_by_name_reports_loaded_skipped_and_fresh_entries():
    source = build_tower_model(TowerSettings(**tiny_tower()))
    state = {**source.state_dict(), "heads.video.va.weight": torch.ones(3)}  # a pre-training head
    target = build_tower_model(TowerSettings(**tiny_tower()), lambda width: ClassifierHead(in_dim=width,
                                                                                              num_classes=2))
    report = load_by_name(target, state, {"towers.video.": "towers.video."}, source="ckpt.pt")
    assert report.skipped == ["heads.video.va.weight"]
    assert report.fresh == ["heads.video.linear.bias", "heads.video.linear.weight"]
    assert report.loaded == sorted(k for k in source.state_dict()) and not report.resized
    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items())
    assert "2 fresh" in report.describe() and "heads.video (1)" in report.describe()


@pytest.mark.parametrize("layers, message", [
    (3, "model entries the checkpoint lacks: towers.video.backbone.blocks.2."),
    (1, "checkpoint entries with no place in the model: towers.video.backbone.blocks.1."),
])
def test_a_different_depth_is_named_entry_by_entry(layers, message):
    state = build_tower_model(TowerSettings(**tiny_tower())).state_dict()
    target = build_tower_model(TowerSettings(**tiny_tower(layers=layers)))
    with pytest.raises(UserError, match=message):
        load_by_name(target, state, {"towers.video.": "towers.video."}, source="ckpt.pt")


def test_a_tower_under_another_name_maps_by_prefix():
    state = build_tower_model(TowerSettings(**tiny_tower(), modality="rgb")).state_dict()
    target = build_tower_model(TowerSettings(**tiny_tower()))
    report = load_by_name(target, state, {"towers.rgb.": "towers.video."}, source="ckpt.pt")
    assert report.loaded and all(name.startswith("towers.video.") for name in report.loaded)
    with pytest.raises(UserError, match="nothing matches the prefixes"):
        load_by_name(target, state, {"towers.audio.": "towers.audio."}, source="ckpt.pt")


def test_a_run_directory_is_a_checkpoint_and_so_is_a_file(tmp_path):
    state = {"towers.video.x": torch.ones(2)}
    save_checkpoint(tmp_path / "run", 5, {"model": state})
    source, loaded = read_checkpoint(tmp_path / "run")
    assert source.name == "step_00000005.pt" and torch.equal(loaded["towers.video.x"], torch.ones(2))
    torch.save(state, tmp_path / "plain.pt")
    assert read_checkpoint(tmp_path / "plain.pt")[0] == tmp_path / "plain.pt"


def test_classifier_dropout_is_applied_in_training_only():
    settings = ClassifierSettings(**{"tokenizer": {"type": "video_patches", "patch_size": [4, 8, 8], "frames": 8,
                                                   "size": 32},
                                     "backbone": {"type": "vit", "width": 16, "layers": 1, "mlp_dim": 32, "heads": 2}},
                                  num_classes=3, classifier_dropout=0.5)
    head = classifier_model(settings).heads["video"]
    feature = torch.ones(256, 16)  # the backbone's width
    head.train()
    dropped = head.dropout(feature)
    assert 0.3 < float((dropped == 0).float().mean()) < 0.7 and torch.allclose(dropped.max(), torch.tensor(2.0))
    head.eval()
    torch.testing.assert_close(head(feature)["logits"], head.linear(feature))
