"""Throughput of a pre-training step of any config: clips/s, achieved TFLOP/s and peak memory; prints JSON.

    python benchmarks/pretrain.py CONFIG [key=value ...] [--plain] [--variants A,B] [--batch N] [--steps N]
                                  [--rounds N] [--device cpu|cuda|xla] [--threads N] [--profile] [--out FILE]

The step is the trainer's own (`Loop.train_step`, on XLA `DeferredStep.step`: forward under the config's
precision, backward, gradient clipping if set, optimiser step) on a random batch shaped as the config's
tokenizers expect (text with ``--candidates`` captions per clip). The config's ``run`` switches apply: precision,
fused_ops, sdpa, compile, activation_checkpointing. ``--plain`` also runs the same model without the project's
optimisations (no fused vatt ops, explicit softmax(QKᵀ/√d)V attention instead of scaled_dot_product_attention, no
torch.compile, no activation checkpointing, no fused optimiser; same precision) and reports the ratio.
``--variants compiled,uncompiled,plain`` measures the config's switches with ``run.compile`` on and off beside the
plain model in one report (the plain model is never compiled, so it is measured once). Each variant runs in its own
process, so compile caches and peak memory do not mix; its time is the best of ``--rounds`` rounds of ``--steps``
steps after a warm-up round. ``--profile`` adds each variant's top operators over a few more steps.

TFLOP/s use the spec's count of a step (../shared/bench/anchor_gpu.py ``flops_per_clip``): for each tower's
transformer, per layer n·2·(weights of its linear maps) + 4·n²·d with n = kept tokens + [AGG], plus the patch
projection of every patch, times 3 for forward and backward. On CUDA the bf16 matmul peak is measured in a
process of its own and each variant's share of it reported.
"""
from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from vatt import config as cfglib  # noqa: E402
from vatt import ops  # noqa: E402
from vatt.engine import speed  # noqa: E402
from vatt.engine.trainer import Loop, LoopSettings  # noqa: E402
from vatt.models.droptoken import kept_count  # noqa: E402
from vatt.registry import build, get  # noqa: E402
from vatt.tasks import builders  # noqa: E402
from vatt.tasks.base import settings  # noqa: E402
from vatt.tasks.settings import RunSettings  # noqa: E402

PLAIN = {"fused_ops": False, "sdpa": False, "compile": False, "activation_checkpointing": False}
# What each variant changes in the config's run switches; "plain" also turns off a fused optimiser.
VARIANTS = {"optimised": {}, "compiled": {"compile": True}, "uncompiled": {"compile": False}, "plain": PLAIN}


def spec_flops_per_clip(model: nn.Module) -> float:
    """FLOPs of one clip's forward and backward as the spec counts them (see the module docstring)."""
    total = 0.0
    for tower in model.towers.values():
        tokenizer = tower.tokenizer
        kept = kept_count(tokenizer.num_tokens, tower.droptoken_rate) if tower.droptoken_rate else tokenizer.num_tokens
        n = kept + 1  # + [AGG]
        for block in speed.transformer_blocks(tower.backbone):
            weights = sum(m.in_features * m.out_features for m in block.modules() if isinstance(m, nn.Linear))
            total += n * 2 * weights + 4 * n * n * tower.backbone.width
        if hasattr(tokenizer, "patch_size"):  # the projection of every patch, as a convolution would compute it
            total += 2 * tokenizer.num_tokens * tokenizer.projection.in_features * tokenizer.projection.out_features
    return 3 * total


def random_batch(model: nn.Module, batch: int, candidates: int, device: torch.device) -> dict:
    """Inputs of the towers' shapes, ``candidates`` captions per clip, every clip with audio and text."""
    inputs = {}
    for name, tower in model.towers.items():
        if tower.tokenizer.supports_droptoken:
            inputs[name] = tower.tokenizer.example_input(batch)
        else:  # text: [B, L, W]
            inputs[name] = torch.stack([tower.tokenizer.example_input(batch) for _ in range(candidates)], dim=1)
        inputs[f"{name}_mask"] = torch.ones(batch, dtype=torch.bool)
    return {k: v.to(device) for k, v in inputs.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "xla":
        import torch_xla
        torch_xla.sync()


def _peak_rss_reset() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # Linux: the peak resident set (VmHWM) restarts from the current one


def _peak_rss_gib() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 2**20  # kB → GiB


def measure(spec: dict) -> dict:
    """One variant in this process: build, warm up, time; the JSON-able result."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    cfg = cfglib.load(spec["config"], spec["overrides"])
    run = settings(RunSettings, cfg, "run")
    switches = {"precision": run.precision, "fused_ops": run.fused_ops, "sdpa": getattr(run, "sdpa", True),
                "compile": run.compile, "activation_checkpointing": run.activation_checkpointing}
    switches.update(VARIANTS[spec["variant"]])
    if spec["variant"] == "plain":
        if "fused" in inspect.signature(get("optimizers", cfg["optimizer"]["type"]).obj).parameters:
            cfg["optimizer"]["fused"] = False  # torch's default (foreach) kernels instead
    device = torch.device(spec["device"])
    torch.manual_seed(0)
    model = builders.build_model(cfg["model"]).to(device)
    terms = builders.build_losses(cfg["losses"])
    fused_parts = speed.set_fused_ops([*model.modules(), *(t.fn for t in terms)], switches["fused_ops"])
    sdpa_parts = speed.set_sdpa(model, switches["sdpa"])
    if switches["activation_checkpointing"]:
        speed.checkpoint_activations(model)
    if switches["compile"]:
        speed.compile_towers(model)
    optimizer = build("optimizers", cfg["optimizer"], "optimizer", params=model.parameters())
    batch = random_batch(model, spec["batch"], spec["candidates"], device)
    lr = optimizer.param_groups[0]["lr"]
    with tempfile.TemporaryDirectory() as run_dir:
        loop = Loop(model=model, loss_fn=lambda m, b: builders.total_loss(terms, m(b), b), optimizer=optimizer,
                    schedule=lambda step: lr, batches=lambda start: iter(()),
                    run_dir=run_dir, device=device, handle_signals=False,
                    settings=LoopSettings(steps=1, max_grad_norm=run.max_grad_norm, precision=switches["precision"]))
        model.train()
        step = 0  # the steps this variant really ran, warm-up included
        rounds = []
        for round_index in range(spec["rounds"] + 1):  # round 0 warms up (and compiles)
            if round_index == 1:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                else:
                    _peak_rss_reset()
            _sync(device)
            start = time.perf_counter()
            for i in range(spec["steps"]):  # a lazy device (XLA) reads values back at a round's last step only
                outcome = loop.train_step(step, batch) if loop.deferred is None \
                    else loop.deferred.step(step, batch, read_back=i == spec["steps"] - 1)
                step += 1
            _sync(device)
            rounds.append(time.perf_counter() - start)
        profile = _profile(lambda: loop.train_step(step, batch), device) if spec.get("profile") and loop.deferred is None \
            else None
    best = min(rounds[1:]) / spec["steps"]
    flops = spec_flops_per_clip(model) * spec["batch"]
    # What served the fused parts: the vatt ops' kernels on this device type (None with fused_ops off).
    served_by = {name: devices[device.type] for name, devices in ops.implementations()["ops"].items()}
    return {
        "variant": spec["variant"], "switches": switches, "fused_parts": fused_parts, "sdpa_parts": sdpa_parts,
        "ops_served_by": served_by if switches["fused_ops"] else None, "steps_run": step,
        "optimizer_fused": optimizer.defaults.get("fused"), "step_s": round(best, 5),
        "clips_per_s": round(spec["batch"] / best, 2), "tflops": round(flops / best / 1e12, 4),
        "peak_memory_GiB": round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda"
        else round(_peak_rss_gib(), 3),
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS",
        "last_loss": outcome.scalars.get("loss"),
        **({"profile": profile} if profile else {}),
    }


def _profile(train_step, device: torch.device, steps: int = 3, rows: int = 30) -> str:
    """The operators that took the most time over a few more steps, as torch.profiler tabulates them."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(steps):
            train_step()
        _sync(device)
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=rows, max_name_column_width=60)


def matmul_peak_tflops(device: torch.device, n: int = 8192) -> float:
    """Measured bf16 matmul throughput, as anchor_gpu.py measures it."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * n**3 / ((time.perf_counter() - start) / 10) / 1e12


def _child(spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{spec.get('variant', 'peak')} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _variant_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown or text!r}; choose from {', '.join(VARIANTS)}")
    return list(dict.fromkeys(names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="YAML config (a pre-training config)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, as for python -m vatt.run")
    parser.add_argument("--plain", action="store_true", help="also run without the project's optimisations")
    parser.add_argument("--variants", type=_variant_list, default=["optimised"],
                        help="comma-separated, each in a process of its own: optimised (the config's switches), "
                             "compiled / uncompiled (those with run.compile on / off), plain (default: optimised)")
    parser.add_argument("--batch", type=int, help="clips per step (default: the config's run.batch_size)")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up round")
    parser.add_argument("--candidates", type=int, default=5, help="captions per clip (MIL-NCE's L)")
    parser.add_argument("--device", help="cpu, cuda or xla (default: the config's run.device, auto → cuda if any)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--out", help="also write the JSON report to this file")
    parser.add_argument("--profile", action="store_true",
                        help="after timing, profile a few more steps of each variant (its top operators, as text)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        result = measure(spec) if spec["variant"] != "matmul_peak" else \
            {"tflops": matmul_peak_tflops(torch.device(spec["device"]))}
        print(json.dumps(result))
        return
    if args.config is None:
        parser.error("a config is required")
    cfg = cfglib.load(args.config, args.overrides)
    run = settings(RunSettings, cfg, "run")
    device = args.device or run.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    spec = {"config": str(Path(args.config).resolve()), "overrides": args.overrides, "device": device,
            "batch": args.batch or run.batch_size, "steps": args.steps, "rounds": args.rounds,
            "candidates": args.candidates, "threads": args.threads, "profile": args.profile}
    report = {"config": args.config, "overrides": args.overrides, "device": device, "batch": spec["batch"],
              "torch": torch.__version__}
    if device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(torch.device(device))
        report["matmul_bf16_peak_tflops"] = round(_child({**spec, "variant": "matmul_peak"})["tflops"], 1)
    variants = args.variants + (["plain"] if args.plain and "plain" not in args.variants else [])
    report["variants"] = {}
    for name in variants:
        result = report["variants"][name] = _child({**spec, "variant": name})
        if "matmul_bf16_peak_tflops" in report:
            result["share_of_matmul_peak"] = round(result["tflops"] / report["matmul_bf16_peak_tflops"], 3)
        if args.out:  # after each variant, so a run stopped at a time limit keeps what it measured
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if "plain" in variants:
        plain = report["variants"]["plain"]
        for name in (v for v in variants if v != "plain"):
            key = "" if name == "optimised" else f"_{name}"
            report[f"speedup{key}_vs_plain"] = round(report["variants"][name]["clips_per_s"] / plain["clips_per_s"], 3)
            report[f"peak_memory{key}_vs_plain"] = round(
                report["variants"][name]["peak_memory_GiB"] / plain["peak_memory_GiB"], 3)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
