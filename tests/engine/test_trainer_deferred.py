"""Deferred read-backs (what the trainer does on lazy devices such as XLA), checked on the CPU: values are read
back only at log, checkpoint and final steps, a non-finite step is skipped in the graph (parameters and Adam's
state kept) and counted, and the run ends where the step-by-step loop ends."""
import pytest
import torch
import torch.nn as nn

from vatt.engine.checkpoint import load_latest
from vatt.engine.deferred import DeferredStep
from vatt.engine.faults import NonFiniteLoss
from vatt.engine.trainer import Loop, LoopSettings

STEPS = 7


class Recorder:
    print_every = 3  # RunLogger's print_every: the read-back cadence when the loop's log_every is unset

    def __init__(self):
        self.steps = {}

    def log_step(self, step, scalars):
        self.steps[step] = dict(scalars)


def make_loop(run_dir, defer, bad_steps=(), log_every=None, **settings):
    """A linear regression trained with Adam; its loss is NaN on the 1-based steps in ``bad_steps``."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    data = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    target = data @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])

    def loss_fn(model, batch):
        loss = (model(batch["x"]) - batch["y"]).square().mean()
        if batch["step"] in bad_steps:
            loss = loss * float("nan")
        return loss, {"loss/half": loss.detach() / 2}

    def batches(start):
        for step in range(start, 10_000):
            rows = torch.arange(8) + 8 * (step % 8)
            yield {"x": data[rows], "y": target[rows], "step": step + 1}

    settings.setdefault("checkpoint_every", 4)
    loop = Loop(model=model, loss_fn=loss_fn, optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
                schedule=lambda step: 0.05, batches=batches, run_dir=str(run_dir),
                settings=LoopSettings(steps=STEPS, **settings), defer_read_back=defer, log_every=log_every)
    loop.logger = Recorder()
    return loop


def test_xla_defers_read_backs_by_default_and_other_devices_do_not(tmp_path):
    assert make_loop(tmp_path, None).deferred is None  # on the CPU
    assert isinstance(make_loop(tmp_path, True).deferred, DeferredStep)  # asked for
    loop = Loop(model=nn.Linear(1, 1), loss_fn=None, optimizer=None, schedule=None, batches=None,
                run_dir=str(tmp_path), settings=LoopSettings(steps=1), device=torch.device("xla"))
    assert isinstance(loop.deferred, DeferredStep)
    assert Loop(model=nn.Linear(1, 1), loss_fn=None, optimizer=None, schedule=None, batches=None,
                run_dir=str(tmp_path), settings=LoopSettings(steps=1), device=torch.device("xla"),
                defer_read_back=False).deferred is None  # read back every step, even on XLA


def test_values_are_read_back_only_at_log_checkpoint_and_final_steps(tmp_path):
    loop = make_loop(tmp_path, True)  # log every 3 (the logger's), checkpoint every 4, 7 steps
    loop.fit()
    assert sorted(loop.logger.steps) == [3, 4, 6, 7]
    assert set(loop.logger.steps[7]) == {"loss", "loss/half", "lr"}
    assert loop.logger.steps[7]["loss/half"] == pytest.approx(loop.logger.steps[7]["loss"] / 2)
    explicit = make_loop(tmp_path / "explicit", True, log_every=5, checkpoint_every=100)
    explicit.fit()
    assert sorted(explicit.logger.steps) == [5, 7]


def test_deferred_and_step_by_step_runs_agree(tmp_path):
    eager, deferred = make_loop(tmp_path / "eager", False), make_loop(tmp_path / "deferred", True)
    eager.fit()
    deferred.fit()
    for key, value in eager.model.state_dict().items():
        torch.testing.assert_close(deferred.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    assert deferred.logger.steps[6]["loss"] == pytest.approx(eager.logger.steps[6]["loss"], rel=1e-5)
    state = load_latest(tmp_path / "deferred")[1]
    # the device-side step count is our choice for lazy devices; the checkpoint resumes anywhere
    assert all(not group["capturable"] for group in state["optimizer"]["param_groups"])


def test_a_non_finite_step_is_skipped_in_the_graph_and_counted(tmp_path):
    eager, deferred = make_loop(tmp_path / "eager", False, {2}), make_loop(tmp_path / "deferred", True, {2})
    eager.fit()
    deferred.fit()
    assert deferred.bad_steps.total == 1 and deferred.bad_steps.in_a_row == 0
    assert deferred.logger.steps[3]["skipped_steps"] == 1.0
    for key, value in eager.model.state_dict().items():  # same as skipping it on the host
        torch.testing.assert_close(deferred.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    step_counts = {float(s["step"]) for s in deferred.optimizer.state.values()}
    assert step_counts == {STEPS - 1.0}  # Adam's step count did not advance on the skipped step


def test_non_finite_steps_in_a_row_stop_the_run_at_the_next_read_back(tmp_path):
    loop = make_loop(tmp_path, True, bad_steps={2, 3, 4}, max_bad_steps=3, log_every=2, checkpoint_every=100)
    with pytest.raises(NonFiniteLoss, match="3 steps in a row"):
        loop.fit()
    step, state = load_latest(tmp_path)
    assert step == 4 and state["bad_steps"] == [3, 3]
