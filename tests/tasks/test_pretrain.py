"""End-to-end pre-training: the quickstart learns, runs resume exactly, the full-size LBS model takes a step."""
import json
from pathlib import Path

import pytest

from vatt.engine.logging import RunLogger
from vatt.run import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
# the quickstart shrunk to seconds: a few steps, small batches, no evaluation
TINY = ["run.batch_size=8", "run.log_every=1", "run.checkpoint_every=3", "data.train.num_clips=32",
        "evaluators=[]", "data.eval=null"]


def losses(run_dir: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {rec["step"]: rec["loss"] for rec in lines if rec["kind"] == "train"}


def test_quickstart_learns_and_writes_its_run_directory(quickstart):
    assert quickstart.code == 0, quickstart.err[-2000:]
    run_dir, out, err = quickstart.dir, quickstart.out, quickstart.err
    results = json.loads((run_dir / "results.json").read_text())
    pool = results["zero_shot/synthetic/pool"]
    chance_r10 = 10 / pool
    assert results["zero_shot/synthetic/R@10"] >= 3 * chance_r10, results
    for key in ["R@1", "R@5", "R@10", "median_rank"]:
        assert f"zero_shot/synthetic/{key}" in out  # printed for the user
    assert "ETA" in err and "clips/s" in err
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "latest").is_file()
    assert any((run_dir / "tensorboard").iterdir())
    kinds = [json.loads(line)["kind"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert kinds.count("train") == 600 and kinds[-1] == "eval"


class Interrupt(Exception):
    pass


def test_a_stopped_run_resumes_with_identical_losses(tmp_path, monkeypatch, capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main([str(QUICKSTART), f"run.dir={whole}", "run.steps=7", *TINY]) == 0

    real_log_step = RunLogger.log_step

    def stop_at_step_5(self, step, scalars):
        if step == 5:  # dies after the checkpoint of step 3 and the log line of step 4
            raise Interrupt
        return real_log_step(self, step, scalars)

    monkeypatch.setattr(RunLogger, "log_step", stop_at_step_5)
    with pytest.raises(Interrupt):
        main([str(QUICKSTART), f"run.dir={split}", "run.steps=7", *TINY])
    assert sorted(losses(split)) == [1, 2, 3, 4]
    monkeypatch.setattr(RunLogger, "log_step", real_log_step)
    capsys.readouterr()

    assert main([str(QUICKSTART), f"run.dir={split}", "run.steps=7", *TINY]) == 0
    assert "resuming" in capsys.readouterr().err
    assert losses(split) == losses(whole)  # bit for bit, steps 4..7 replayed from the step-3 checkpoint
    assert sorted(losses(split)) == list(range(1, 8))


def test_a_finished_run_rerun_does_not_train_again(tmp_path, capsys):
    run_dir = tmp_path / "done"
    args = [str(QUICKSTART), f"run.dir={run_dir}", "run.steps=2", *TINY]
    assert main(args) == 0
    before = (run_dir / "metrics.jsonl").read_text()
    assert main(args) == 0
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_full_size_lbs_takes_one_real_step_on_cpu(tmp_path, capsys):
    config = ROOT / "configs" / "pretrain_lbs.yaml"
    code = main([str(config), f"run.dir={tmp_path / 'lbs'}", "run.batch_size=2", "run.steps=1",
                 "run.device=cpu", "data.train.type=synthetic", "data.train.num_clips=4",
                 "data.train.frames=32", "data.train.size=224", "data.train.audio_samples=153600",
                 "data.train.sample_rate=48000", "data.num_workers=0"])
    assert code == 0, capsys.readouterr().err
    (record,) = [json.loads(line) for line in (tmp_path / "lbs" / "metrics.jsonl").read_text().splitlines()]
    assert record["step"] == 1 and record["loss"] > 0
    assert (tmp_path / "lbs" / "checkpoints" / "step_00000001.pt").is_file()
