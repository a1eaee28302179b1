"""Two gloo processes on CPU run the quickstart recipe as torchrun would start it, and must train like one
process on the whole batch: DDP and FSDP, checkpoints that resume on 2 and on 1 process, a stop signal that
reaches one process only, per-process DropToken draws, a NaN loss on one process, and a stuck process that ends
the job.

One pair of processes runs every scenario in turn (process start-up is the slow part); each test then checks
what one scenario left behind.
"""
import contextlib
import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from vatt.engine.checkpoint import load_latest
from vatt.engine.distributed import all_gather_with_grad
from vatt.engine.parallel import synchronise_batchnorm
from vatt.engine.trainer import Loop
from vatt.run import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
WORLD = 2
# The quickstart in a few seconds. SGD rather than Adam: Adam's first steps divide tiny gradients by their own
# size, which turns float rounding into visible parameter differences. (torch has no fused SGD for FSDP's
# sharded parameters.)
SMALL = ["run.batch_size=8", "run.log_every=1", "run.tensorboard=false", "run.checkpoint_every=3",
         "data.train.num_clips=32", "evaluators=[]", "data.eval=null", "schedule={type: constant}",
         "optimizer={type: sgd, lr: 0.05, fused: false}", "run.max_grad_norm=1.0"]
# DropToken draws differ per process by design; without them a step is the same computation on 1 or 2 processes.
SAME_DRAWS = ["model.modalities.video.droptoken=0", "model.modalities.audio.droptoken=0"]
SCENARIOS = ("collectives", "ddp", "fsdp", "stopped", "resumed2", "uneven", "faults")
ROWS = (3, 1)  # uneven local batches (a loader may drop an unreadable sample on one process only)
CLOSE = dict(rtol=1e-4, atol=1e-5)
# Weights after a few steps carry float32 rounding of differently ordered sums (gloo's all-reduce, 1 vs 2 threads,
# the CPU's vector width) through the optimizer; a real mistake (unsynchronised gradients or BatchNorm statistics)
# moves them by 1e-2 or more.
WEIGHTS_CLOSE = dict(rtol=1e-3, atol=1e-4)


def _free_ports(count):
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _on_rank(process_rank, actions):
    """Loop.train_step that first runs ``actions[step](loop)`` on one rank at the given (0-based) steps."""
    real = Loop.train_step

    def train_step(self, step, batch):
        if int(os.environ["RANK"]) == process_rank and step in actions:
            actions[step](self)
        return real(self, step, batch)
    return mock.patch.object(Loop, "train_step", train_step)


def _global_rows():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(sum(ROWS), 5, generator=generator, dtype=torch.float64), \
        torch.randn(sum(ROWS), 5, generator=generator, dtype=torch.float64)


def _collectives(process_rank):
    """Rank r's rows of a global batch through the gather and the batch norm; what the parent checks."""
    dist.init_process_group("gloo")  # from the environment, as torchrun sets it
    try:
        inputs, weights = _global_rows()
        rows = slice(sum(ROWS[:process_rank]), sum(ROWS[:process_rank + 1]))
        x = inputs[rows].clone().requires_grad_()
        gathered = all_gather_with_grad(x)
        (gathered * weights * (process_rank + 1)).sum().backward()  # each rank's own loss of the global rows
        norm = synchronise_batchnorm(nn.Sequential(nn.BatchNorm1d(5, dtype=torch.float64)))
        y = inputs[rows].clone().requires_grad_()
        normalised = norm(y)
        (normalised * weights[rows]).sum().backward()
        return {"gathered": gathered.detach(), "gather_grad": x.grad, "normalised": normalised.detach(),
                "norm_grad": y.grad, "norm_state": norm.state_dict()}
    finally:
        dist.destroy_process_group()


def _poison_loss(loop):
    """This process's loss becomes NaN from now on."""
    real = loop.loss_fn

    def loss_fn(model, batch):
        loss, scalars = real(model, batch)
        return loss * float("nan"), scalars
    loop.loss_fn = loss_fn


def _worker(process_rank, ports, out):
    out = Path(out)
    torch.set_num_threads(1)  # two processes share the cores, as torchrun's default OMP_NUM_THREADS=1 makes them
    os.environ.update(RANK=str(process_rank), LOCAL_RANK=str(process_rank), WORLD_SIZE=str(WORLD),
                      LOCAL_WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1")
    codes, draws, faults = {}, [], {}

    def launch(name, *overrides):
        os.environ["MASTER_PORT"] = str(ports[SCENARIOS.index(name)])  # a fresh rendezvous per run
        codes[name] = main([str(QUICKSTART), f"run.dir={out / name}", *overrides])

    os.environ["MASTER_PORT"] = str(ports[0])
    collectives = _collectives(process_rank)

    launch("ddp", "run.steps=5", *SMALL, *SAME_DRAWS)
    launch("fsdp", "run.steps=3", "run.parallel=fsdp", *SMALL, *SAME_DRAWS)
    # only rank 1 is told to stop, during step 2
    with _on_rank(1, {1: lambda loop: os.kill(os.getpid(), signal.SIGTERM)}):
        launch("stopped", "run.steps=5", *SMALL, *SAME_DRAWS)
    if process_rank == 0:  # only rank 0 reads the run directory when resuming
        shutil.copytree(out / "stopped", out / "resumed2")
    launch("resumed2", "run.steps=5", *SMALL, *SAME_DRAWS)
    launch("uneven", "run.steps=1", *SMALL, "run.batch_size=7")

    # With DropToken on: rank 1's loss turns NaN in step 1 (both processes must skip the update), then rank 1
    # stops answering in step 2 (rank 0 must give up after the collective timeout).
    released = out / "faults_released"

    def hang(loop):
        while not released.exists():
            time.sleep(0.05)
        raise SystemExit("released")
    import vatt.models.multimodal as multimodal
    real_draw = multimodal.draw_keep
    with _on_rank(1, {0: _poison_loss, 1: hang}), \
            mock.patch.object(multimodal, "draw_keep", lambda *a, **k: draws.append(real_draw(*a, **k)) or draws[-1]):
        start = time.monotonic()
        try:
            launch("faults", "run.steps=3", "run.collective_timeout=3", *SMALL)
        except BaseException as exc:  # noqa: BLE001  (what ended the run is the result)
            faults = {"error": f"{type(exc).__name__}: {exc}", "seconds": time.monotonic() - start}
        if process_rank == 0:
            released.touch()
    torch.save({"codes": codes, "draws": draws[:2], "faults": faults, "collectives": collectives},
               out / f"rank{process_rank}.pt")
    os._exit(0)  # the last scenario leaves a broken process group behind; nothing is left to clean up


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("gloo")
    mp.spawn(_worker, args=(_free_ports(len(SCENARIOS)), str(out)), nprocs=WORLD, join=True)
    return out, [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process on the whole batch: the reference."""
    run_dir = tmp_path_factory.mktemp("single") / "run"
    assert main([str(QUICKSTART), f"run.dir={run_dir}", "run.steps=5", *SMALL, *SAME_DRAWS]) == 0
    return run_dir


def losses(run_dir):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {rec["step"]: rec["loss"] for rec in lines if rec["kind"] == "train"}


def weights(run_dir, step):
    return torch.load(run_dir / "checkpoints" / f"step_{step:08d}.pt")["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], **WEIGHTS_CLOSE, msg=lambda m, key=key: f"{key}: {m}")


def assert_close_losses(a, b, steps):
    assert sorted(a) == sorted(b) == list(steps)
    torch.testing.assert_close(torch.tensor([a[s] for s in steps]), torch.tensor([b[s] for s in steps]), **CLOSE)


def test_gather_of_uneven_batches_keeps_rank_order_and_routes_gradients(runs):
    _, per_rank = runs
    inputs, weights = _global_rows()
    for results in per_rank:
        torch.testing.assert_close(results["collectives"]["gathered"], inputs)
    # d(sum over ranks s of loss_s)/d(rows of r) with loss_s = (s + 1) * sum(weights * gathered)
    gradient = torch.cat([r["collectives"]["gather_grad"] for r in per_rank])
    torch.testing.assert_close(gradient, weights * sum(s + 1 for s in range(WORLD)))


def test_batch_norm_uses_the_statistics_of_the_global_batch(runs):
    _, per_rank = runs
    inputs, weights = _global_rows()
    whole = nn.BatchNorm1d(5, dtype=torch.float64)
    x = inputs.clone().requires_grad_()
    expected = whole(x)
    (expected * weights).sum().backward()
    torch.testing.assert_close(torch.cat([r["collectives"]["normalised"] for r in per_rank]), expected.detach())
    torch.testing.assert_close(torch.cat([r["collectives"]["norm_grad"] for r in per_rank]), x.grad)
    for results in per_rank:
        state = results["collectives"]["norm_state"]
        for key, value in whole.state_dict().items():
            torch.testing.assert_close(state[f"0.{key}"], value, msg=key)


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_train_like_one_on_the_whole_batch(runs, single, mode):
    out, per_rank = runs
    assert [r["codes"][mode] for r in per_rank] == [0, 0]
    assert_close_losses({s: v for s, v in losses(out / mode).items() if s <= 3},
                        {s: v for s, v in losses(single).items() if s <= 3}, range(1, 4))
    assert_same_weights(weights(out / mode, 3), weights(single, 3))  # BatchNorm statistics included


def test_a_stop_signal_to_one_process_saves_and_stops_both(runs):
    out, per_rank = runs
    assert [r["codes"]["stopped"] for r in per_rank] == [130, 130]  # the command line's exit on interruption
    assert load_latest(out / "resumed2")[0] == 5
    assert sorted(int(p.stem[5:]) for p in (out / "stopped" / "checkpoints").glob("step_*.pt")) == [2]


def test_a_checkpoint_of_two_processes_resumes_exactly_on_two(runs):
    out, per_rank = runs
    assert [r["codes"]["resumed2"] for r in per_rank] == [0, 0]
    assert losses(out / "resumed2") == losses(out / "ddp")  # bit for bit


def test_a_checkpoint_of_two_processes_resumes_on_one(runs, single, tmp_path):
    out, _ = runs
    run_dir = tmp_path / "resumed1"
    shutil.copytree(out / "stopped", run_dir)
    assert main([str(QUICKSTART), f"run.dir={run_dir}", "run.steps=5", *SMALL, *SAME_DRAWS]) == 0
    assert_close_losses(losses(run_dir), losses(out / "ddp"), range(1, 6))
    assert_same_weights(weights(run_dir, 5), weights(single, 5))


def test_a_sharded_checkpoint_resumes_on_one(runs, single, tmp_path):
    out, _ = runs
    run_dir = tmp_path / "fsdp_on_one"
    shutil.copytree(out / "fsdp", run_dir)
    assert main([str(QUICKSTART), f"run.dir={run_dir}", "run.steps=4", *SMALL, *SAME_DRAWS]) == 0
    assert_close_losses(losses(run_dir), {s: v for s, v in losses(single).items() if s <= 4}, range(1, 5))


def test_a_global_batch_that_does_not_split_over_the_processes_is_a_config_error(runs):
    _, per_rank = runs
    assert [r["codes"]["uneven"] for r in per_rank] == [2, 2]


def test_droptoken_draws_differ_between_processes(runs):
    _, per_rank = runs
    draws = [r["draws"] for r in per_rank]  # video then audio, first step
    for mine, theirs in zip(*draws):
        assert mine.shape == theirs.shape and not torch.equal(mine, theirs)


def test_a_nan_loss_on_one_process_skips_the_update_on_all(runs):
    out, _ = runs
    (first, *_) = [json.loads(line) for line in (out / "faults" / "metrics.jsonl").read_text().splitlines()]
    assert first["step"] == 1 and "loss" not in first and first["skipped_steps"] == 1


def test_a_stuck_process_ends_the_job_after_the_collective_timeout(runs):
    _, per_rank = runs
    error = per_rank[0]["faults"]["error"]
    assert "timeout" in error.lower() or "timed out" in error.lower(), error
