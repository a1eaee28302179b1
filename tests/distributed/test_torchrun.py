"""The command a user types: ``torchrun --nproc_per_node=2 -m vatt.run CONFIG`` trains on two gloo processes,
evaluates on both, and only the main process prints, logs and writes results."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_trains_on_two_processes_and_only_rank_0_reports(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "vatt.run", "configs/quickstart.yaml", f"run.dir={run_dir}", "run.steps=2",
               "run.batch_size=8", "run.log_every=1", "run.tensorboard=false", "data.train.num_clips=32",
               "data.eval.num_clips=32", "evaluators.0.batch_size=16"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in records] == [("train", 1), ("train", 2), ("eval", 2)]
    assert done.stderr.count("step 1/2 |") == 1 and done.stderr.count("eval step 2") == 1
    results = json.loads((run_dir / "results.json").read_text())
    assert results["zero_shot/synthetic/pool"] == 32
    assert done.stdout.count("zero_shot/synthetic/R@10") == 1  # printed by rank 0 only
