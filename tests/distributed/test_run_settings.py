"""The run settings of scale and speed are checked with the rest of the config, before anything is built."""
from pathlib import Path

import pytest

from vatt.run import main

QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


@pytest.mark.parametrize("override, message", [
    ("run.parallel=zero3", "run.parallel: must be one of ddp, fsdp, got 'zero3'"),
    ("run.precision=fp16", "run.precision: must be one of fp32, bf16, got 'fp16'"),
    ("run.max_bad_steps=0", "run.max_bad_steps: must be at least 1, got 0"),
    ("run.compile=maybe", "run.compile"),
])
def test_bad_scale_and_speed_settings_are_config_errors(override, message, capsys):
    assert main([str(QUICKSTART), override, "--summary"]) == 2
    assert message in capsys.readouterr().err


def test_the_speed_switches_are_accepted(capsys):
    assert main([str(QUICKSTART), "run.parallel=fsdp", "run.precision=bf16", "run.compile=true",
                 "run.activation_checkpointing=true", "run.fused_ops=false", "run.collective_timeout=60",
                 "--summary"]) == 0


def test_a_run_with_bf16_activation_checkpointing_and_plain_ops_trains(tmp_path):
    run_dir = tmp_path / "run"
    assert main([str(QUICKSTART), f"run.dir={run_dir}", "run.steps=2", "run.batch_size=8", "run.tensorboard=false",
                 "data.train.num_clips=32", "evaluators=[]", "data.eval=null", "run.precision=bf16",
                 "run.activation_checkpointing=true", "run.fused_ops=false"]) == 0
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all('"loss": ' in line for line in lines)


@pytest.mark.parametrize("sdpa", [True, False])
def test_run_sdpa_selects_the_attention_kernel_of_every_layer(tmp_path, monkeypatch, sdpa):
    import torch.nn.functional as F
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main([str(QUICKSTART), f"run.dir={tmp_path}", "run.steps=1", "run.batch_size=4", "run.tensorboard=false",
                 "data.train.num_clips=8", "evaluators=[]", "data.eval=null", f"run.sdpa={str(sdpa).lower()}"]) == 0
    assert (len(calls) > 0) == sdpa
