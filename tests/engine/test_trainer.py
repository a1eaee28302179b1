"""The training loop on one process: NaN/Inf steps skipped and counted, stop requests, exact resume, and the speed
switches (bf16 autocast, activation checkpointing, torch.compile of the towers, fused ops on/off)."""
import math
import os
import signal
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from vatt import config as cfglib
from vatt.engine import speed
from vatt.engine.checkpoint import load_latest
from vatt.engine.faults import NonFiniteLoss, StopRequests, TrainingInterrupted
from vatt.engine.trainer import Loop, LoopSettings, step_seed
from vatt.tasks import builders

ROOT = Path(__file__).resolve().parents[2]
STEPS = 6


class Recorder:
    """A RunLogger stand-in that keeps what the loop logs."""

    def __init__(self):
        self.steps = {}

    def log_step(self, step, scalars):
        self.steps[step] = dict(scalars)


def make_loop(run_dir, bad_steps=(), on_step=None, **options):
    """A linear regression trained by the Loop; its loss is NaN on the 1-based steps in ``bad_steps``."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    data = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    target = data @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    calls = []

    def loss_fn(model, batch):
        calls.append(len(calls) + 1)
        if on_step is not None:
            on_step(len(calls))
        loss = (model(batch["x"]) - batch["y"]).square().mean()
        if len(calls) in bad_steps:
            loss = loss * float("nan")
        return loss, {}

    def batches(start):
        for step in range(start, 10_000):
            rows = torch.arange(8) + 8 * (step % 8)
            yield {"x": data[rows], "y": target[rows]}

    loop = Loop(model=model, loss_fn=loss_fn, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                schedule=lambda step: 0.05, batches=batches, run_dir=str(run_dir),
                settings=LoopSettings(steps=STEPS, checkpoint_every=2, **options))
    loop.logger = Recorder()
    return loop


def weights(loop):
    return {k: v.clone() for k, v in loop.model.state_dict().items()}


def test_a_non_finite_loss_skips_the_update_and_is_counted(tmp_path):
    loop = make_loop(tmp_path, bad_steps={3})
    seen = {}
    real_step = loop.train_step

    def train_step(step, batch):
        before = weights(loop)
        outcome = real_step(step, batch)
        seen[step + 1] = (before, weights(loop), outcome.skipped)
        return outcome
    loop.train_step = train_step
    loop.fit()
    before, after, skipped = seen[3]
    assert skipped and all(torch.equal(before[k], after[k]) for k in before)
    assert not seen[4][2] and not torch.equal(seen[4][0]["weight"], seen[4][1]["weight"])
    logged = loop.logger.steps
    assert "loss" not in logged[3] and logged[3]["skipped_steps"] == 1
    assert math.isfinite(logged[4]["loss"]) and logged[4]["skipped_steps"] == 1 and "skipped_steps" not in logged[2]
    assert load_latest(tmp_path)[1]["bad_steps"] == [1, 0]


def test_too_many_non_finite_losses_in_a_row_stop_the_run_with_a_clear_message(tmp_path):
    loop = make_loop(tmp_path, bad_steps={2, 3, 4}, max_bad_steps=3)
    with pytest.raises(NonFiniteLoss) as caught:
        loop.fit()
    message = str(caught.value)
    assert "3 steps in a row" in message and "steps 2-4" in message and "run.max_bad_steps=3" in message
    step, state = load_latest(tmp_path)
    assert step == 4 and state["bad_steps"] == [3, 3]


def test_non_finite_steps_apart_do_not_stop_the_run(tmp_path):
    loop = make_loop(tmp_path, bad_steps={2, 4, 6}, max_bad_steps=2)
    loop.fit()
    assert loop.logger.steps[6]["skipped_steps"] == 3


def test_sigterm_finishes_the_step_saves_and_stops_then_the_run_resumes_exactly(tmp_path):
    whole = make_loop(tmp_path / "whole")
    whole.fit()

    def terminate_at_step_3(call):
        if call == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    stopped = make_loop(tmp_path / "split", on_step=terminate_at_step_3)
    with pytest.raises(TrainingInterrupted, match="SIGTERM after step 3"):
        stopped.fit()
    assert load_latest(tmp_path / "split")[0] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers are restored after fit()

    resumed = make_loop(tmp_path / "split")
    assert resumed.resume() == 3
    resumed.fit()
    assert sorted(resumed.logger.steps) == [4, 5, 6]
    assert all(resumed.logger.steps[s]["loss"] == whole.logger.steps[s]["loss"] for s in (4, 5, 6))
    assert all(torch.equal(a, b) for a, b in zip(weights(resumed).values(), weights(whole).values()))


@pytest.fixture
def sigint_handler():
    """SIGINT handled as Python does by default for the test (a test run started in the background ignores it),
    and whatever the process had put back afterwards."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_second_ctrl_c_interrupts_at_once(sigint_handler):
    with StopRequests() as requests:
        os.kill(os.getpid(), signal.SIGINT)
        assert requests.requested == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_ignored_before_the_run_stays_ignored(sigint_handler):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job or under nohup
    with StopRequests() as requests:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        assert requests.requested is None
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM is still caught
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_step_seeds_differ_per_process_and_repeat():
    seeds = {step_seed(7, step, rank) for step in range(50) for rank in range(4)}
    assert len({s % 2**32 for s in seeds}) == 200  # torch's CPU generator reads the low 32 bits
    assert step_seed(7, 3, 1) == step_seed(7, 3, 1)


@pytest.fixture(scope="module")
def quickstart_model():
    cfg = cfglib.load(ROOT / "configs" / "quickstart.yaml")
    for name in ("video", "audio"):
        cfg["model"]["modalities"][name]["droptoken"] = 0.0  # the same tokens in every variant compared

    def build():
        torch.manual_seed(0)
        return builders.build_model(cfg["model"]).train(), builders.build_losses(cfg["losses"])
    model, _ = build()
    batch = {name: tower.tokenizer.example_input(4) for name, tower in model.towers.items()}
    batch["text"] = batch["text"][:, None].expand(-1, 2, -1)  # [B, L, W]: two candidate captions per clip
    return build, batch


def loss_and_grads(model, terms, batch, precision="fp32"):
    with speed.autocast(torch.device("cpu"), precision):
        loss, _ = builders.total_loss(terms, model(batch), batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_bf16_autocast_runs_the_matmuls_in_bf16_and_stays_close_to_fp32(quickstart_model):
    build, batch = quickstart_model
    model, terms = build()
    dtypes = []
    model.towers["video"].backbone.blocks[0].mlp_in.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    full, _ = loss_and_grads(model, terms, batch)
    half, _ = loss_and_grads(model, terms, batch, "bf16")
    assert dtypes == [torch.float32, torch.bfloat16]
    assert abs(float(full) - float(half)) < 0.05 * float(full)


def test_activation_checkpointing_gives_the_same_gradients_and_state_dict(quickstart_model):
    build, batch = quickstart_model
    plain, terms = build()
    checkpointed, _ = build()
    speed.checkpoint_activations(checkpointed)
    assert len(list(speed.transformer_blocks(checkpointed))) == 6  # two layers in each of the three towers
    assert checkpointed.state_dict().keys() == plain.state_dict().keys()
    loss, grads = loss_and_grads(plain, terms, batch)
    loss_ckpt, grads_ckpt = loss_and_grads(checkpointed, terms, batch)
    torch.testing.assert_close(loss_ckpt, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, msg=name)


def test_compiled_towers_give_the_same_loss_and_keep_the_state_dict(quickstart_model):
    build, batch = quickstart_model
    plain, terms = build()
    compiled, _ = build()
    speed.compile_towers(compiled, backend="eager")  # Dynamo traces each tower as for inductor, minus the build
    assert compiled.state_dict().keys() == plain.state_dict().keys()
    loss, grads = loss_and_grads(plain, terms, batch)
    loss_compiled, grads_compiled = loss_and_grads(compiled, terms, batch)
    torch.testing.assert_close(loss_compiled, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_compiled[name], grad, msg=name)


def test_fused_ops_on_and_off_give_the_same_loss_and_gradients(quickstart_model):
    build, batch = quickstart_model
    # in float64, where both paths' rounding is far below any real difference: in float32 a gradient that is
    # zero in exact arithmetic (a shift just before the heads' BatchNorm) is rounding noise of either sign
    batch = {name: x.double() if x.is_floating_point() else x for name, x in batch.items()}
    results = []
    for enabled in (True, False):
        model, terms = build()
        model.double()
        parts = [*model.modules(), *(term.fn for term in terms)]
        assert speed.set_fused_ops(parts, enabled) == 4  # the video and audio patch tokenizers, both losses
        assert {part.fused_ops for part in parts if hasattr(part, "fused_ops")} == {enabled}
        results.append(loss_and_grads(model, terms, batch))
    (fused_loss, fused_grads), (plain_loss, plain_grads) = results
    assert fused_loss.dtype == torch.float64
    torch.testing.assert_close(fused_loss, plain_loss, rtol=1e-12, atol=0)  # float64 sums in another order
    for name, grad in plain_grads.items():
        scale = float(grad.abs().max())
        torch.testing.assert_close(fused_grads[name], grad, rtol=0, atol=1e-9 * scale + 1e-12, msg=name)


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        speed.autocast(torch.device("cpu"), "fp16")
