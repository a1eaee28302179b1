"""The Loop's step on a lazy device (XLA), where every read-back to the host stalls the trace of the next step.

Nothing is read back between log steps: each step is traced into one graph cut by ``torch_xla.sync()``, which
decides in the graph whether the update is kept (a non-finite loss or gradient norm keeps the parameters and
optimiser state as they were, via ``torch.where``) and counts the skipped steps on the device. The logged
scalars, the counters and the stop flag are read back only every ``log_every`` steps, at checkpoints,
evaluations and the last step. Checkpoints hold CPU copies, and the optimiser settings of the run, not ours.

The Loop uses it on XLA devices, or anywhere when asked (``Loop(defer_read_back=True)``, as the tests do on
the CPU).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from vatt.engine.distributed import world_size
from vatt.engine.trainer import StepOutcome, sync
from vatt.ranges import require

if TYPE_CHECKING:
    from vatt.engine.trainer import Loop

CAPTURABLE_DEVICES = ("xla", "cuda")  # where torch's optimisers can keep their step counts (capturable=True)


class DeferredStep:
    """The deferred training step of one Loop; the loop's forward, backward and agreement, the update in the
    graph."""

    def __init__(self, loop: Loop, log_every: int | None = None):
        # steps between read-backs of the logged scalars (None: the logger's print_every, else 1)
        require(1, whole=True, log_every=log_every)
        self.loop = loop
        self.log_every = log_every
        self._counters: torch.Tensor | None = None  # [skipped in total, skipped in a row], on the device
        self._last_values: torch.Tensor | None = None  # the last step's agreed values, on the device

    def start(self) -> None:
        """Before the first step of ``fit``: the optimiser's step counts onto the device, and the device
        counters restarted from the loop's ``bad_steps`` (as resumed)."""
        _capture_optimizer(self.loop.optimizer)
        self._counters = None

    def reads_back(self, done: int) -> bool:
        """Whether the step completing ``done`` reads its values back."""
        loop, run = self.loop, self.loop.settings
        every = self.log_every or (loop.logger.print_every if hasattr(loop.logger, "print_every") else 1)
        return (done % every == 0 or done % run.checkpoint_every == 0 or done >= run.steps
                or bool(run.eval_every and done % run.eval_every == 0)
                or (loop.stop_requests.requested is not None and world_size() == 1))

    def step(self, step: int, batch: dict, read_back: bool | None = None) -> StepOutcome:
        """One update from this process's ``batch`` of global step ``step`` (0-based). Unless it reads back
        (``read_back``; None: as `reads_back` says), the step's values stay on the device and the outcome has no
        scalars; a non-finite update is skipped in the graph either way."""
        loop = self.loop
        read_back = self.reads_back(step + 1) if read_back is None else read_back
        lr, loss, scalars, grad_norm = loop._forward_backward(step, batch)
        names, summed = loop.summed(loss, scalars, grad_norm)
        *sums, bad_count, stop_count = summed.unbind()
        keep = bad_count == 0  # every process keeps or skips the same update
        _keep_update_if(loop.optimizer, keep)
        if self._counters is None:
            self._counters = torch.tensor([float(loop.bad_steps.total), float(loop.bad_steps.in_a_row)],
                                          device=loss.device)
        skipped = (~keep).float()
        total, in_a_row = self._counters.unbind()
        self._counters = torch.stack([total + skipped, (in_a_row + 1) * skipped])
        # what a log step reads, as one output of the step's graph (the same graph whether read or not)
        self._last_values = torch.stack([*sums, stop_count, *self._counters.unbind()])
        sync(loop.device)  # one graph: forward, backward, update, counters
        if not read_back:
            return StepOutcome(scalars={}, skipped=False, stop=None, read_back=False)
        *sums, stop_count, total, in_a_row = self._last_values.tolist()
        loop.bad_steps.total, loop.bad_steps.in_a_row = int(total), int(in_a_row)
        skipped_now = loop.bad_steps.in_a_row > 0  # this very step was skipped
        scalars = {} if skipped_now else {name: value / world_size() for name, value in zip(names, sums)}
        return loop.outcome(scalars, lr, skipped=skipped_now, stop=loop.stop_reason(stop_count))

    @staticmethod
    def uncapture(state: dict) -> None:
        """Give a checkpoint's ``state`` (`vatt.engine.parallel.full_state`) the optimiser settings of the run:
        the device-side step counts (`_capture_optimizer`) are our choice for lazy devices, and the checkpoint
        resumes anywhere."""
        for group in state["optimizer"].get("param_groups", []):
            if group.get("capturable"):
                group["capturable"] = False


@torch.no_grad()
def _keep_update_if(optimizer: torch.optim.Optimizer, keep: torch.Tensor) -> None:
    """``optimizer.step()``, then put back the parameters and optimiser state where ``keep`` is False, without
    reading ``keep`` back. On a lazy device the "before" values are references into the graph, not copies;
    state the step creates is put back to zeros (how Adam and SGD start it)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    before = [p.detach().clone() for p in params]
    state_before = {id(p): {k: v.detach().clone() for k, v in optimizer.state.get(p, {}).items()
                            if torch.is_tensor(v) and v.device == p.device} for p in params}
    optimizer.step()
    for p, old in zip(params, before):
        p.copy_(torch.where(keep, p, old))
        for key, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value) and value.device == p.device:
                old_value = state_before[id(p)].get(key)
                value.copy_(torch.where(keep, value, old_value if old_value is not None
                                        else torch.zeros_like(value)))


def _capture_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """Keep the optimiser's step counts on the device (Adam's ``capturable``), so that a skipped update can put
    them back in the graph and ``step()`` reads nothing back."""
    for group in optimizer.param_groups:
        if "capturable" not in group or group.get("fused") \
                or any(p.device.type not in CAPTURABLE_DEVICES for p in group["params"]):
            continue  # (on the CPU the step count is a tensor beside the parameters: restored as it is)
        group["capturable"] = True
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if torch.is_tensor(state.get("step")) and state["step"].device != p.device:
                state["step"] = state["step"].to(device=p.device, dtype=torch.float32)
