"""benchmarks/gpu_check_collect.py: the GPU check's stage outputs merged into one report, the profiles split off,
and the best vatt figure judged against the issue's three bars (clips/s, share of the matmul peak, ratio to the
anchor's best figure of the same run)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu_check_collect as collect  # noqa: E402

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="3">
<testcase classname="tests.ops.test_ops_cuda" name="test_opcheck_on_cuda[patch_embed-dtype0]" time="1.5"/>
<testcase classname="tests.ops.test_ops_cuda" name="test_the_tiled_loss_at_a_batch_of_8192[dtype1]" time="4.0">
<failure message="AssertionError: Tensor-likes are not close!">trace</failure></testcase>
<testcase classname="tests.ops.test_ops_cuda" name="test_the_cuda_kernels_serve_cuda" time="0.0">
<skipped message="needs a CUDA GPU"/></testcase></testsuite></testsuites>"""


def variant(clips_per_s: float, share: float, profile: str | None = None) -> dict:
    return {"clips_per_s": clips_per_s, "tflops": share * 800, "share_of_matmul_peak": share,
            "peak_memory_GiB": 30.0, **({"profile": profile} if profile else {})}


@pytest.fixture
def work(tmp_path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "stages.jsonl").write_text(json.dumps({"stage": "build", "rc": 0, "seconds": 61.2}) + "\n"
                                       + json.dumps({"stage": "pretrain_b64", "skipped": "needs about 150s"}) + "\n")
    (work / "cuda_tests.xml").write_text(JUNIT)
    (work / "anchor.jsonl").write_text("\n".join(json.dumps(line) for line in [
        {"what": "matmul_bf16_8192", "tflops": 790.0},
        {"what": "naive_lbs_step", "compile": True, "patch": "matmul", "batch": 32, "clips_per_s": 200.0},
        {"what": "naive_lbs_step", "compile": True, "patch": "matmul", "batch": 64, "oom": True}]) + "\n")
    report = {"batch": 32, "matmul_bf16_peak_tflops": 790.0,
              "variants": {"compiled": variant(280.0, 0.70, profile="aten::mm  12ms"),
                           "uncompiled": variant(240.0, 0.60), "plain": variant(150.0, 0.40)}}
    (work / "pretrain_b32.json").write_text(json.dumps(report))
    return work


def test_the_stages_are_merged_into_one_report_and_the_profiles_split_off(work, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    report = collect.collect(work, out, dry_run=False)
    assert json.loads((out / "gpu_check.json").read_text()) == report
    assert [s["stage"] for s in report["stages"]] == ["build", "pretrain_b64"]
    assert report["cuda_tests"]["counts"] == {"passed": 1, "failure": 1, "error": 0, "skipped": 1}
    (failed,) = [case for case in report["cuda_tests"]["cases"] if case["outcome"] == "failure"]
    assert failed["test"].startswith("test_the_tiled_loss") and "not close" in failed["message"]
    assert "profile" not in report["pretrain"]["batch_32"]["variants"]["compiled"]
    assert "== batch 32, compiled\naten::mm  12ms" in (out / "profile.txt").read_text()
    assert (out / "anchor.jsonl").read_text() == (work / "anchor.jsonl").read_text()
    assert report["machine"]["torch"] and report["what"] == "benchmarks/gpu_check.sh"
    assert "pretrain_b64" in collect.summary(report) and "anchor    batch 64" in collect.summary(report)


def test_the_best_variant_is_judged_against_each_bar(work, tmp_path):
    targets = collect.collect(work, tmp_path, dry_run=False)["targets"]
    assert targets["vatt_best"]["variant"] == "compiled" and targets["vatt_best"]["clips_per_s"] == 280.0
    assert targets["anchor_best_clips_per_s"] == 200.0 and targets["ratio_to_anchor"] == 1.4
    assert all(targets["met"].values())
    slower = json.loads((work / "pretrain_b32.json").read_text())
    slower["variants"]["compiled"] = variant(255.0, 0.66)  # under 270 clips/s and under 1.3x the anchor
    (work / "pretrain_b32.json").write_text(json.dumps(slower))
    met = collect.collect(work, tmp_path, dry_run=False)["targets"]["met"]
    assert met == {"clips_per_s >= 270": False, "share_of_matmul_peak >= 0.65": True, "ratio_to_anchor >= 1.3": False}


def test_a_run_stopped_before_any_timing_still_reports_what_it_has(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "stages.jsonl").write_text(json.dumps({"stage": "build", "rc": 1, "seconds": 30.0}) + "\n")
    report = collect.collect(work, tmp_path, dry_run=True)
    assert report["what"] == "benchmarks/gpu_check.sh --dry-run"
    assert report["cuda_tests"] is None and report["pretrain"] == {}
    assert report["targets"] == {"vatt_best": None, "anchor_best_clips_per_s": None}
