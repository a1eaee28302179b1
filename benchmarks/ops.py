"""Benchmark of the fused vatt ops against the plain PyTorch forms they replace; prints JSON.

    python benchmarks/ops.py [--quick] [--only patch_embed|contrastive] [--cases NAME ...] [--repeats N] [--threads N]

Patch embedding (forward + backward into weight, bias and positions; the raw input needs no gradient):
  conv_then_drop  ConvNd with stride = kernel over every patch, add positions, keep the DropToken set  (a)
  gather_matmul   patchify (reshape/permute copy), gather the kept patches, one matmul               (b)
  model_helper    vatt.models.patching.patch_embed: kept patches indexed from a strided view, matmul (b')
  fused           vatt.ops.patch_embed
Contrastive loss (forward + backward into all four embeddings, fp32):
  plain           matmul + masked logsumexp over the concatenated B×2GL logits (vatt.losses.contrastive_rows)
  fused           vatt.ops.contrastive_rows (tiled, online log-sum-exp)

Memory: torch's CPU allocations are invisible to tracemalloc, so each (case, variant) runs in a fresh
subprocess that builds its inputs, warms the libraries up on a tiny problem, reads its resident set size
(RSS) and resets the kernel's peak-RSS mark, runs one forward + backward, and reports the peak (VmHWM) minus
that baseline: every byte the step touched beyond its inputs and parameters, outputs and gradients included.
glibc's mmap threshold is pinned at 64 KiB there, so that memory freed earlier cannot be silently reused and
hide an allocation.
Time: all variants of a case run in one subprocess, in turn, round after round (after a warm-up round); the
best round of each is reported, so that load from other processes on the machine skews no variant alone.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PATCH_CASES = {
    "video_small": dict(batch=8, shape=(3, 16, 64, 64), patch=(4, 16, 16), dim=256),
    "video_vatt": dict(batch=4, shape=(3, 32, 224, 224), patch=(4, 16, 16), dim=1024),
    "audio_vatt": dict(batch=8, shape=(153600,), patch=(128,), dim=768),
}
LOSS_CASES = {
    "loss_small": dict(batch=256, candidates=5, dim=256),
    "loss_2048": dict(batch=2048, candidates=5, dim=256),
    "loss_8192": dict(batch=8192, candidates=5, dim=256),
}
QUICK = {"video_small", "loss_small"}
PATCH_VARIANTS = ("conv_then_drop", "gather_matmul", "model_helper", "fused")
LOSS_VARIANTS = ("plain", "fused")


def _status_bytes(field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident since the last reset) of this process."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024  # kB


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # Linux: the peak (VmHWM) restarts from the current RSS


def _tiny(kind: str, case: dict) -> dict:
    """A small problem of the same kind, to load and warm the libraries before measuring."""
    if kind == "contrastive":
        return dict(case, batch=16)
    channels = case["shape"][:len(case["shape"]) - len(case["patch"])]
    return dict(case, batch=1, shape=(*channels, *(2 * p for p in case["patch"])))


def _patch_step(case: dict, variant: str):
    """A function running one forward + backward of ``variant`` on fresh inputs of ``case``."""
    import torch
    import torch.nn.functional as F

    import vatt.ops as ops
    from vatt.ops import composite

    batch, shape, patch, dim = case["batch"], tuple(case["shape"]), tuple(case["patch"]), case["dim"]
    channels = shape[0] if len(shape) == len(patch) + 1 else 1
    count = math.prod(s // p for s, p in zip(shape[-len(patch):], patch))
    x = torch.empty(batch, *shape).uniform_(-1, 1)  # raw signal in [-1, 1]
    weight = torch.empty(dim, channels * math.prod(patch)).normal_(std=0.02).requires_grad_()
    bias, pos = torch.zeros(dim, requires_grad=True), torch.empty(count, dim).normal_(std=0.02).requires_grad_()
    keep = torch.randperm(count)[:count // 2].sort().values  # the release's shared DropToken draw, rate 0.5
    grad_out = torch.randn(batch, keep.numel(), dim)

    def conv_then_drop():
        kernel = weight.view(dim, channels, *patch)
        signal = x if len(shape) > 1 else x[:, None]
        conv = F.conv3d if len(patch) == 3 else F.conv2d if len(patch) == 2 else F.conv1d
        tokens = conv(signal, kernel, bias, stride=patch).flatten(2).transpose(1, 2) + pos  # [B, N, D]
        return tokens[:, keep]

    def model_helper():
        from vatt.models.patching import patch_embed
        return patch_embed(x, patch, weight, bias, pos, keep)

    forward = {
        "conv_then_drop": conv_then_drop,
        "gather_matmul": lambda: composite.patch_embed(x, patch, weight, bias, pos, keep),
        "model_helper": model_helper,
        "fused": lambda: ops.patch_embed(x, patch, weight, bias, pos, keep),
    }[variant]

    def step():
        weight.grad = bias.grad = pos.grad = None
        forward().backward(grad_out)

    return step


def _loss_step(case: dict, variant: str):
    import torch
    import torch.nn.functional as F

    import vatt.ops as ops
    from vatt.losses import contrastive_rows

    batch = case["batch"]
    video = F.normalize(torch.randn(batch, case["dim"]), dim=-1).requires_grad_()
    text = F.normalize(torch.randn(batch, case["candidates"], case["dim"]), dim=-1).requires_grad_()
    mask = torch.ones(batch, dtype=torch.bool)
    mask[::7] = False  # some clips without text, as in AudioSet-mixed batches
    loss = {"plain": lambda: contrastive_rows(video, text, video, text, mask, mask, 0.07),
            "fused": lambda: ops.contrastive_rows(video, text, video, text, mask, mask, 0.07)}[variant]

    def step():
        video.grad = text.grad = None
        loss().sum().backward()

    return step


def _make(kind: str):
    return _patch_step if kind == "patch_embed" else _loss_step


def peak_memory(spec: dict) -> dict:
    """Inside a fresh subprocess: RSS growth during one step of one variant."""
    make = _make(spec["kind"])
    make(_tiny(spec["kind"], spec["case"]), spec["variant"])()  # load and warm the libraries first
    step = make(spec["case"], spec["variant"])
    _reset_peak_rss()  # building the inputs had its own transient peak
    baseline = _status_bytes("VmRSS")
    step()
    return {"peak_mib": round(max(_status_bytes("VmHWM") - baseline, 0) / 2**20, 1)}


def best_times(spec: dict) -> dict:
    """Inside one subprocess: every variant timed in turn, round after round, so that load from other processes
    falls on all of them alike; the best round of each counts."""
    steps = {variant: _make(spec["kind"])(spec["case"], variant) for variant in spec["variants"]}
    times = {variant: [] for variant in steps}
    for round_ in range(spec["repeats"] + 1):  # round 0 warms up
        for variant, step in steps.items():
            start = time.perf_counter()
            step()
            if round_:
                times[variant].append(time.perf_counter() - start)
    return {variant: round(min(values) * 1e3, 2) for variant, values in times.items()}


def _child(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if spec["mode"] == "memory":
        # A fixed mmap threshold: glibc then maps every block of 64 KiB or more on its own and unmaps it when freed,
        # so RSS follows the live tensors (by default freed blocks stay resident and hide later allocations).
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                            env=env, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child {spec} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(kind: str, case: dict, variants: tuple[str, ...], repeats: int, threads: int | None) -> dict:
    """{variant: {"ms": best time, "peak_mib": peak memory}}."""
    times = _child(dict(mode="time", kind=kind, case=case, variants=variants, repeats=repeats, threads=threads))
    return {variant: {"ms": times[variant],
                      **_child(dict(mode="memory", kind=kind, case=case, variant=variant, threads=threads))}
            for variant in variants}


def _ratio(numerator: dict, denominator: dict, key: str) -> float | None:
    return round(numerator[key] / denominator[key], 3) if denominator[key] else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the small cases (a smoke test)")
    parser.add_argument("--only", choices=["patch_embed", "contrastive"])
    parser.add_argument("--cases", nargs="+", choices=[*PATCH_CASES, *LOSS_CASES], help="run only these cases")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (1 for the B = 8192 loss)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads in every measurement (default: torch's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        if spec.get("threads"):
            import torch
            torch.set_num_threads(spec["threads"])
        print(json.dumps(best_times(spec) if spec["mode"] == "time" else peak_memory(spec)))
        return

    import torch

    import vatt.ops as ops

    report = {"torch": torch.__version__, "threads": args.threads or torch.get_num_threads(),
              "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
              "ops": ops.implementations()["extension"]["source"], "memory": "peak RSS minus RSS before the step, "
              "in a fresh subprocess per variant (see the module docstring)", "patch_embed": {}, "contrastive": {}}
    selected = [("patch_embed", PATCH_CASES, PATCH_VARIANTS), ("contrastive", LOSS_CASES, LOSS_VARIANTS)]
    for kind, cases, variants in selected:
        if args.only and args.only != kind:
            continue
        for name, case in cases.items():
            if (args.quick and name not in QUICK) or (args.cases and name not in args.cases):
                continue
            repeats = 1 if name == "loss_8192" else args.repeats
            results = measure(kind, case, variants, repeats, args.threads)
            fused = results["fused"]
            if kind == "patch_embed":
                plain = min((results[v] for v in ("gather_matmul", "model_helper")), key=lambda r: r["ms"])
                summary = {"speedup_vs_conv_then_drop": _ratio(results["conv_then_drop"], fused, "ms"),
                           "speedup_vs_best_plain_composite": _ratio(plain, fused, "ms"),
                           "memory_vs_best_plain_composite": _ratio(fused, plain, "peak_mib")}
            else:
                summary = {"time_vs_plain": _ratio(fused, results["plain"], "ms"),
                           "memory_vs_plain": _ratio(fused, results["plain"], "peak_mib")}
            report[kind][name] = {"case": case, "results": results, **summary}
            print(json.dumps({name: report[kind][name]}), file=sys.stderr, flush=True)  # progress
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
