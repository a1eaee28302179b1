"""``python -m vatt.run configs/quickstart.yaml run.device=xla`` end to end on torch_xla's CPU PJRT client: the
quickstart recipe shrunk to 2 steps of 2 clips (1-layer towers, 4 generated clips, no evaluators) trains through
the pre-training task, writes its checkpoint from CPU copies and its metrics, and reads the loss back only at log
steps.

Runs in the XLA lane (.ci/xla.sh: torch 2.9.0 + torch_xla 2.9.0, PJRT_DEVICE=CPU); skipped where torch_xla is absent.
"""
import json
import math
from pathlib import Path

import pytest

torch_xla = pytest.importorskip("torch_xla")

import torch  # noqa: E402

from vatt.engine.checkpoint import load_latest  # noqa: E402
from vatt.run import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_the_quickstart_trains_on_xla_through_vatt_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    overrides = ["run.device=xla", "run.steps=2", "run.batch_size=2", "run.log_every=2", "run.checkpoint_every=2",
                 f"run.dir={run_dir}", "run.tensorboard=false", "evaluators=null", "data.eval=null",
                 "data.num_workers=0", "data.train.num_clips=4", f"data.train.cache_dir={tmp_path / 'data'}"]
    overrides += [f"model.modalities.{m}.backbone.layers=1" for m in ("video", "audio", "text")]
    assert main([str(ROOT / "configs" / "quickstart.yaml"), *overrides]) == 0, capsys.readouterr().err

    step, state = load_latest(run_dir)
    assert step == 2
    tensors = [*state["model"].values(), *(v for s in state["optimizer"]["state"].values() for v in s.values()
                                          if torch.is_tensor(v))]
    assert tensors and all(t.device.type == "cpu" for t in tensors)  # loadable anywhere
    assert all(not g.get("capturable") for g in state["optimizer"]["param_groups"])  # resumable on the CPU

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    # read back at the log step only: step 1 stayed on the device
    assert [r["step"] for r in train] == [2], records
    assert math.isfinite(train[0]["loss"]) and train[0]["lr"] > 0
    assert json.loads((run_dir / "results.json").read_text()) == {}
