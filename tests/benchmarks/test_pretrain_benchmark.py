"""benchmarks/pretrain.py end to end, as a user runs it: the quickstart config at its smallest (2 clips, one timed
step), optimised, with ``run.compile`` off and ``--plain``, profiled; the JSON report has every figure of each
variant, what served the fused ops, and each variant really trained (no timing is asserted)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import vatt.ops as ops

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_reports_both_variants_and_their_ratio(tmp_path):
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pretrain.py"), str(ROOT / "configs" / "quickstart.yaml"),
         "--variants", "optimised,uncompiled", "--plain", "--profile", "--batch", "2", "--steps", "1", "--rounds", "1", "--candidates", "2", "--threads", "1",
         "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert json.loads(done.stdout) == report  # the same JSON on stdout
    assert report["device"] == "cpu" and report["batch"] == 2
    assert list(report["variants"]) == ["optimised", "uncompiled", "plain"]
    for variant in report["variants"].values():
        for key in ("clips_per_s", "tflops", "peak_memory_GiB", "step_s"):
            assert isinstance(variant[key], (int, float)) and variant[key] > 0, (key, variant)
        assert math.isfinite(variant["last_loss"])
        assert variant["sdpa_parts"] == 6 and variant["fused_parts"] > 0
        assert variant["steps_run"] == 2  # a warm-up round and one timed round of one step
        assert "aten::" in variant["profile"] and "Self CPU" in variant["profile"]  # torch.profiler's table
    optimised, plain = report["variants"]["optimised"]["switches"], report["variants"]["plain"]["switches"]
    assert optimised["fused_ops"] and optimised["sdpa"]  # the quickstart's own switches
    # --plain: no fused ops, explicit attention, no compile or checkpointing, no fused optimiser; same precision
    assert plain == {**optimised, "fused_ops": False, "sdpa": False, "compile": False,
                     "activation_checkpointing": False}
    assert report["variants"]["plain"]["optimizer_fused"] is False
    assert report["variants"]["uncompiled"]["switches"] == {**optimised, "compile": False}
    # the fused parts ran on the kernels this environment serves the CPU with; the plain variant had none
    cpu_kernels = {name: devices["cpu"] for name, devices in ops.implementations()["ops"].items()}
    assert report["variants"]["optimised"]["ops_served_by"] == cpu_kernels
    assert report["variants"]["plain"]["ops_served_by"] is None
    for ratio in ("speedup_vs_plain", "peak_memory_vs_plain", "speedup_uncompiled_vs_plain",
                  "peak_memory_uncompiled_vs_plain"):
        assert isinstance(report[ratio], float) and report[ratio] > 0, ratio


def test_an_unknown_variant_is_refused_by_name():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pretrain.py"), "configs/quickstart.yaml",
                           "--variants", "optimised,fastest"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and "unknown variant(s) ['fastest']" in done.stderr
    assert "Traceback" not in done.stderr
