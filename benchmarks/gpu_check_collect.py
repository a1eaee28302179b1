"""Merges what benchmarks/gpu_check.sh's stages wrote into one report, and checks it against issue 14's targets.

    python benchmarks/gpu_check_collect.py WORK OUT --dry-run 0|1 [--summary]

WORK holds the stages' own files (stages.jsonl, ops.json, cuda_tests.xml, anchor.jsonl, pretrain_b*.json); OUT
receives gpu_check.json (everything, the profiles aside), profile.txt (each profiled variant's top operators) and
anchor.jsonl. Run after every stage, so a stopped run keeps what it measured; ``--summary`` also prints a short
table of the figures beside their targets.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import torch

# Issue 14's bar for the LBS step on one H200, in bf16.
TARGET_CLIPS_PER_S = 270.0
TARGET_SHARE_OF_MATMUL_PEAK = 0.65
TARGET_RATIO_TO_ANCHOR = 1.3


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def cuda_tests(path: Path) -> dict | None:
    """pytest's JUnit XML as counts, the failures with their messages, and the time of each test."""
    if not path.exists():
        return None
    cases = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", None
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome, message = kind, (found.get("message") or "")[:2000]
        cases.append({"test": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0),
                      **({"message": message} if message and outcome != "skipped" else {})})
    counts = {kind: sum(c["outcome"] == kind for c in cases) for kind in ("passed", "failure", "error", "skipped")}
    return {"counts": counts, "cases": cases}


def targets(pretrain: dict, anchor: list[dict]) -> dict:
    """The best vatt LBS figure (any batch, compiled or not) against the three bars of the issue."""
    best = None
    for report in pretrain.values():
        for name, variant in report["variants"].items():
            if name != "plain" and (best is None or variant["clips_per_s"] > best["clips_per_s"]):
                best = {"batch": report["batch"], "variant": name, **{k: variant.get(k) for k in (
                    "clips_per_s", "tflops", "share_of_matmul_peak", "peak_memory_GiB")}}
    anchor_steps = [line for line in anchor if line.get("what") == "naive_lbs_step" and line.get("clips_per_s")]
    anchor_best = max((line["clips_per_s"] for line in anchor_steps), default=None)
    if best is None:
        return {"vatt_best": None, "anchor_best_clips_per_s": anchor_best}
    ratio = round(best["clips_per_s"] / anchor_best, 3) if anchor_best else None
    share = best.get("share_of_matmul_peak")
    return {
        "vatt_best": best, "anchor_best_clips_per_s": anchor_best, "ratio_to_anchor": ratio,
        "met": {f"clips_per_s >= {TARGET_CLIPS_PER_S:g}": best["clips_per_s"] >= TARGET_CLIPS_PER_S,
                f"share_of_matmul_peak >= {TARGET_SHARE_OF_MATMUL_PEAK}":
                    share is not None and share >= TARGET_SHARE_OF_MATMUL_PEAK,
                f"ratio_to_anchor >= {TARGET_RATIO_TO_ANCHOR}": ratio is not None and ratio >= TARGET_RATIO_TO_ANCHOR},
    }


def machine() -> dict:
    info = {"host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_GiB=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, capability=f"{props.major}.{props.minor}")
    return info


def collect(work: Path, out: Path, dry_run: bool) -> dict:
    pretrain, profiles = {}, []
    for path in sorted(work.glob("pretrain_b*.json")):
        report = json.loads(path.read_text())
        for name, variant in report["variants"].items():
            if "profile" in variant:
                profiles.append(f"== batch {report['batch']}, {name}\n{variant.pop('profile')}\n")
        pretrain[f"batch_{report['batch']}"] = report
    anchor = _json_lines(work / "anchor.jsonl")
    report = {
        "what": "benchmarks/gpu_check.sh" + (" --dry-run" if dry_run else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "stages": _json_lines(work / "stages.jsonl"),
        "ops": json.loads((work / "ops.json").read_text()) if (work / "ops.json").exists() else None,
        "cuda_tests": cuda_tests(work / "cuda_tests.xml"),
        "anchor": anchor,
        "pretrain": pretrain,
        "targets": targets(pretrain, anchor),
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    if profiles:
        (out / "profile.txt").write_text("\n".join(profiles))
    if (work / "anchor.jsonl").exists():
        shutil.copyfile(work / "anchor.jsonl", out / "anchor.jsonl")
    return report


def summary(report: dict) -> str:
    lines = ["stage            rc   seconds"]
    lines += [f"{s['stage']:<16} {s.get('rc', '-')!s:>3} {s.get('seconds', s.get('skipped', ''))!s:>9}"
              for s in report["stages"]]
    tests = report["cuda_tests"]
    if tests:
        lines.append("cuda tests: " + ", ".join(f"{k} {v}" for k, v in tests["counts"].items()))
    for key, pre in report["pretrain"].items():
        peak = pre.get("matmul_bf16_peak_tflops")
        for name, v in pre["variants"].items():
            lines.append(f"{key:<9} {name:<10} {v['clips_per_s']:>9} clips/s {v['tflops']:>8} TFLOP/s "
                         + (f"share {v['share_of_matmul_peak']} of the {peak} TFLOP/s peak, " if peak else "")
                         + f"{v['peak_memory_GiB']} GiB")
    for line in report["anchor"]:
        if line.get("what") == "naive_lbs_step":
            lines.append(f"anchor    batch {line['batch']} compile={line['compile']} patch={line['patch']}: "
                         f"{line.get('clips_per_s', 'OOM')} clips/s")
    lines.append("targets: " + json.dumps(report["targets"].get("met", "no vatt figure")))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dry-run", type=int, choices=(0, 1), default=0)
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    report = collect(args.work, args.out, bool(args.dry_run))
    if args.summary:
        print(summary(report))


if __name__ == "__main__":
    main()
