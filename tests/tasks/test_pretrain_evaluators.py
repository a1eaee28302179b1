"""Pre-training evaluators: a linear probe beside zero-shot retrieval, every N steps and at the end; the data
section's share of unreadable samples that stops a run."""
import json

import pytest

from tests.tasks.test_pretrain import QUICKSTART, TINY
from vatt.run import main
from vatt.tasks import classifier, pretrain

CLIPS = "frames: 8, size: 32, audio_samples: 6400, sample_rate: 8000"
EVALUATORS = ("evaluators=[{type: zero_shot_retrieval, dataset_name: synthetic, batch_size: 16}, "
              "{type: linear_probe, dataset_name: synthetic, steps: 5, batch_size: 16, feature_batch_size: 16, "
              f"classifiers: [low_rank], train: {{type: synthetic, split: train, num_clips: 32, {CLIPS}}}}}]")
EVAL_DATA = f"data.eval={{type: synthetic, split: test, num_clips: 16, {CLIPS}}}"


def test_a_linear_probe_and_zero_shot_retrieval_run_every_n_steps_and_at_the_end(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main([str(QUICKSTART), f"run.dir={run_dir}", "run.steps=4", *TINY, EVALUATORS, EVAL_DATA,
                 "run.eval_every=2", "run.tensorboard=false", "data.num_workers=0"])
    assert code == 0, capsys.readouterr().err[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [rec for rec in records if rec["kind"] == "eval"]
    assert [rec["step"] for rec in evals] == [2, 4]
    keys = ["zero_shot/synthetic/R@10", "linear/synthetic/top1", "linear/synthetic/top5"]
    for rec in evals:
        assert all(key in rec for key in keys), rec
    results = json.loads((run_dir / "results.json").read_text())
    assert all(key in results for key in keys), results
    assert 0.0 <= results["linear/synthetic/top1"] <= 1.0


def test_a_linear_probe_without_its_training_set_is_a_config_error(tmp_path, capsys):
    probe = "evaluators=[{type: linear_probe, dataset_name: synthetic}]"
    code = main([str(QUICKSTART), f"run.dir={tmp_path / 'run'}", *TINY, probe, EVAL_DATA])
    assert code != 0 and "evaluators.0" in capsys.readouterr().err


@pytest.mark.parametrize("task_module", [pretrain, classifier])  # classifier: the fine-tuning recipe
def test_max_failed_share_reaches_the_loader(task_module, monkeypatch, tmp_path):
    """data.max_failed_share is what make_loader gets as its share of failed samples that stops the run."""
    seen = {}

    def fake_make_loader(dataset, **kwargs):
        seen.update(kwargs)
        raise StopTraining

    class StopTraining(Exception):
        pass

    monkeypatch.setattr(task_module, "make_loader", fake_make_loader)
    if task_module is pretrain:
        args = [str(QUICKSTART), *TINY, "data.max_failed_share=0.25", "run.steps=1"]
    else:
        args = [str(QUICKSTART.parent / "finetune_synthetic.yaml"), "data.max_failed_share=0.25", "run.steps=1",
                "run.batch_size=4", "data.train.num_clips=32", "data.eval.num_clips=16"]
    with pytest.raises(StopTraining):
        main([*args, f"run.dir={tmp_path / 'run'}", "run.tensorboard=false"])
    assert seen["max_failure_rate"] == 0.25


CONFIGS = ["quickstart.yaml", "finetune_synthetic.yaml", "audio_synthetic.yaml"]


@pytest.mark.parametrize("config", CONFIGS)
def test_a_config_can_set_max_failed_share(config, tmp_path, capsys):
    code = main([str(QUICKSTART.parent / config), "data.max_failed_share=0.05", "--summary"])
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("value, says", [("1.5", "[0, 1]"), ("-0.1", "[0, 1]"), ("lots", "float")])
def test_a_wrong_max_failed_share_is_a_config_error_naming_the_key(config, value, says, capsys):
    code = main([str(QUICKSTART.parent / config), f"data.max_failed_share={value}", "--summary"])
    err = capsys.readouterr().err
    assert code != 0 and "data.max_failed_share" in err and says in err, err
