"""Audio fine-tuning: mixup with Beta(5, 5), the per-batch label balancing, the sigmoid loss, and end-to-end runs
on multi-label (mAP, AUC, d′) and single-label (accuracy) synthetic sets."""
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vatt.data.synthetic import COLOURS, SHAPES, attributes_of
from vatt.run import main
from vatt.tasks import builders
from vatt.tasks.audio_finetune import AudioFineTune, AudioFineTuneSettings, balanced_sigmoid_loss, label_balance_weights, mixup, mixup_sigmoid_loss
from vatt.tasks.settings import ClassifierSettings

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "configs" / "audio_synthetic.yaml"
TOWER = {"tokenizer": {"type": "waveform_patches", "patch_size": 128, "samples": 6400},
         "backbone": {"type": "vit", "width": 16, "layers": 1, "mlp_dim": 32, "heads": 2}}


def test_mixup_blends_inputs_and_labels_with_one_weight_and_partner():
    torch.manual_seed(0)
    identity = torch.eye(6)
    inputs, targets = mixup(identity * 3.0, identity, alpha=5.0)
    torch.testing.assert_close(inputs, targets * 3.0)  # the same weight and the same partners for both
    torch.testing.assert_close(targets.sum(1), torch.ones(6))  # a of one sample, 1 - a of its partner
    own = {round(v, 5) for v in targets.diagonal().tolist() if v < 1}  # rows not paired with themselves
    assert len(own) == 1  # one weight a for the whole batch
    partners = targets - torch.diag(targets.diagonal())
    assert {round(v, 5) for v in partners[partners > 0].tolist()} == {round(1 - own.pop(), 5)}


def test_mixup_weight_follows_beta_5_5():
    torch.manual_seed(0)
    draws = []
    for _ in range(2000):
        _, targets = mixup(torch.zeros(2, 1), torch.tensor([[1.0], [0.0]]), alpha=5.0)
        if targets[1, 0] > 0:  # the two samples were swapped: sample 0 keeps weight a of its own label
            draws.append(float(targets[0, 0]))
    draws = np.array(draws)
    assert len(draws) > 500
    assert abs(draws.mean() - 0.5) < 0.02
    assert abs(draws.var() - 25 / (100 * 11)) < 0.004  # Beta(5, 5): variance ab / ((a+b)^2 (a+b+1))


def test_label_balance_weights_by_hand():
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # class counts 2, 1, 1: sample 0 has one label seen twice, sample 1 averages 1/2 and 1/1, sample 2 is unique
    torch.testing.assert_close(label_balance_weights(targets), torch.tensor([0.5, 0.75, 1.0]))


def test_balanced_sigmoid_loss_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0], [1.0, 1.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    per_class = -(targets * F.logsigmoid(logits) + (1 - targets) * F.logsigmoid(-logits))
    expected = (per_class.sum(1) * torch.tensor([0.5, 0.75, 1.0])).mean()
    torch.testing.assert_close(balanced_sigmoid_loss(logits, targets), expected)
    torch.testing.assert_close(balanced_sigmoid_loss(logits, targets, balance=False), per_class.sum(1).mean())


def test_classifier_starts_at_the_prior_of_one_class_in_c():
    config = {"model": {**TOWER, "modality": "audio", "num_classes": 527}}
    head = AudioFineTune().build_model(config).heads["audio"]
    torch.testing.assert_close(head.linear.bias, torch.full((527,), -math.log(526)))


def test_single_label_batches_become_one_hot_targets():
    seen = {}

    def network(batch, modalities):
        seen["audio"] = batch["audio"]
        return {"audio": {"logits": torch.zeros(2, 4)}}

    model = ClassifierSettings(**TOWER, modality="audio", num_classes=4)
    loss_fn = mixup_sigmoid_loss(AudioFineTuneSettings(mixup_alpha=0.0, balance_labels=False), model)
    loss, _ = loss_fn(network, {"audio": torch.ones(2, 6400), "label": torch.tensor([1, 3])})
    torch.testing.assert_close(loss, torch.tensor(4 * math.log(2.0)))  # 4 classes at sigmoid(0) each
    assert torch.equal(seen["audio"], torch.ones(2, 6400))


class ColourAndShape(Dataset):
    """Synthetic clips with multi-hot labels: the colour (pitch) and the shape (beep rhythm), 10 classes."""
    num_classes = len(COLOURS) + len(SHAPES)

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, key):
        sample = dict(self.base[key])
        colour, shape, _ = attributes_of(np.asarray(int(sample.pop("label"))))
        labels = torch.zeros(self.num_classes)
        labels[int(colour)] = labels[len(COLOURS) + int(shape)] = 1.0
        return {**sample, "labels": labels}


def test_multi_label_fine_tuning_reports_map_auc_and_d_prime(pretrained, monkeypatch, tmp_path):
    real = builders.build_dataset
    monkeypatch.setattr(builders, "build_dataset", lambda node, where: ColourAndShape(real(node, where)))
    code = main([str(AUDIO), f"run.dir={tmp_path}", f"model.init={pretrained}", "model.num_classes=10",
                 "run.steps=30", "schedule.warmup_steps=5", "run.checkpoint_every=30"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {f"audio/synthetic/{k}" for k in ("mAP", "AUC", "d_prime", "samples")}
    assert results["audio/synthetic/mAP"] > 0.5 and results["audio/synthetic/AUC"] > 0.75, results
    report = json.loads((tmp_path / "init_report.json").read_text())
    assert report["loaded"] and all(name.startswith("towers.audio.") for name in report["loaded"])


def test_single_label_fine_tuning_reports_accuracy(pretrained, colour_task, tmp_path):
    code = main([str(AUDIO), f"run.dir={tmp_path}", f"model.init={pretrained}", "model.num_classes=6",
                 "run.steps=2", "run.checkpoint_every=2"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"audio/synthetic/top1", "audio/synthetic/top5", "audio/synthetic/samples"}


def test_a_negative_mixup_alpha_is_a_config_error(tmp_path, capsys):
    assert main([str(AUDIO), f"run.dir={tmp_path}", "training.mixup_alpha=-1"]) == 2
    assert "training.mixup_alpha: must be >= 0" in capsys.readouterr().err
