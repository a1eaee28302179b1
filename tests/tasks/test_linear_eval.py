"""Linear evaluation: pre-trained features beat random-init ones, features are computed once and cached, and
each split is reported with the mean over splits."""
import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from vatt import config as cfglib
from vatt.run import main
from vatt.tasks import builders, linear_eval
from vatt.tasks.checkpoint_init import load_by_name, read_checkpoint

ROOT = Path(__file__).resolve().parents[2]
LINEAR = ROOT / "configs" / "linear_synthetic.yaml"
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
# a short probe: 500 LRC steps, 200 SVM iterations, on one thread (many tiny ops)
PROBE = ["probe.steps=500", "probe.svm_max_iter=200", "run.threads=1"]


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_pretrained_features_beat_random_ones(pretrained, colour_task, tmp_path):
    colour_task["train_limit"] = 256  # clips the probe trains on; all 256 held-out clips are scored
    results = {}
    for start, init in (("pretrained", pretrained), ("random", "null")):
        run_dir = tmp_path / start
        assert main([str(LINEAR), f"run.dir={run_dir}", f"model.init={init}", *PROBE]) == 0
        results[start] = json.loads((run_dir / "results.json").read_text())
    for key in ("top1", "svm_top1"):
        ours, random = results["pretrained"][f"linear/synthetic/{key}"], results["random"][f"linear/synthetic/{key}"]
        assert ours >= 0.9 and ours > random, (key, results)
    assert set(results["pretrained"]) == {f"linear/synthetic/{k}" for k in ("top1", "top5", "svm_top1", "svm_top5")}
    assert any((tmp_path / "pretrained" / "tensorboard").iterdir())


def test_features_are_computed_once_and_reused(pretrained, colour_task, tmp_path, monkeypatch):
    colour_task["train_limit"] = 64
    args = [str(LINEAR), f"run.dir={tmp_path}", f"model.init={pretrained}", "probe.classifiers=[svm]", *PROBE]
    assert main(args) == 0
    first = json.loads((tmp_path / "results.json").read_text())
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == ["eval.pt", "train.pt"]

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were computed again")

    monkeypatch.setattr(linear_eval, "extract_features", no_extraction)
    assert main(args) == 0  # a second probe on the same frozen features reads the cache
    assert json.loads((tmp_path / "results.json").read_text()) == first
    with pytest.raises(AssertionError, match="computed again"):  # another tower: the cache does not match
        main([*args, "model.init=null"])


class Blobs(Dataset):
    """Videos of one grey level per class plus noise; each split draws other clips."""
    num_classes = 3

    def __init__(self, split_number: int, part: str):
        generator = torch.Generator().manual_seed(split_number * 10 + (part == "eval"))
        self.labels = torch.arange(24) % 3
        levels = (self.labels.float() - 1) * 0.6
        noise = 0.1 * torch.randn(24, 3, 8, 32, 32, generator=generator)
        self.videos = levels[:, None, None, None, None] + noise

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, key):
        index = getattr(key, "index", key)
        return {"video": self.videos[index], "label": self.labels[index]}


def test_each_split_is_reported_and_averaged(monkeypatch, tmp_path):
    built = []

    def build(node, where):
        built.append((where, node["split_number"]))
        return Blobs(node["split_number"], where.split(".")[-1])

    monkeypatch.setattr(builders, "build_dataset", build)
    code = main([str(LINEAR), f"run.dir={tmp_path}", "data.split_key=split_number", "data.splits=[1, 2, 3]",
                 "data.name=blobs", "probe.classifiers=[low_rank]", *PROBE])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert built == [(f"data.{part}", k) for k in (1, 2, 3) for part in ("train", "eval")]
    for metric in ("top1", "top5"):
        per_split = [results[f"linear/blobs/split{k}/{metric}"] for k in (1, 2, 3)]
        assert results[f"linear/blobs/{metric}"] == pytest.approx(sum(per_split) / 3)
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == [
        f"{part}_split{k}.pt" for part in ("eval", "train") for k in (1, 2, 3)]


def test_split_key_and_splits_go_together(tmp_path, capsys):
    assert main([str(LINEAR), f"run.dir={tmp_path}", "data.split_key=fold"]) == 2
    assert "data.split_key and data.splits" in capsys.readouterr().err


def test_paper_configs_say_which_data_to_set(tmp_path, capsys):
    assert main([str(ROOT / "configs" / "linear_esc50.yaml"), f"run.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "data.train.root" in err and "esc50" in err and "Traceback" not in err


def test_the_probe_evaluator_reads_a_pretraining_model(pretrained, colour_task):
    # what a pre-training config's evaluators list builds and runs every N steps on the held-out split
    colour_task["train_limit"] = 128
    clip = {"frames": 8, "size": 32, "audio_samples": 6400, "sample_rate": 8000}
    node = {"type": "linear_probe", "dataset_name": "synthetic", "steps": 300, "svm_max_iter": 100,
            "feature_batch_size": 64, "train": {"type": "synthetic", "split": "train", **clip}}
    probe = builders.build_evaluator(node, "evaluators.1")
    model = builders.build_model(cfglib.load(QUICKSTART)["model"])
    source, state = read_checkpoint(pretrained)
    load_by_name(model, state, {"": ""}, source=str(source))
    held_out = builders.build_dataset({"type": "synthetic", "split": "test", **clip}, "data.eval")
    torch.set_num_threads(1)  # restored by restore_threads
    result = probe.run(model, held_out)
    assert set(result) == {f"linear/synthetic/{k}" for k in ("top1", "top5", "svm_top1", "svm_top5")}
    assert result["linear/synthetic/svm_top1"] >= 0.9, result
