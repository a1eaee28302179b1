"""The training loop shared by the tasks: step, log, checkpoint, evaluate, resume; on one process or many.

Exact resumption without saving RNG state: the global torch RNG is re-seeded from (seed, step, rank) before
every step, and the data order is a pure function of (seed, step) (vatt.data.sampler), so a run resumed from
the checkpoint of step N replays steps N+1... bit for bit on the same machine and number of processes. Each
process draws differently (DropToken, dropout), as independent devices would.

Under torch.distributed every process runs the loop on its share of the global batch; after each backward
the processes agree, in one small collective, on the global-batch loss to log, on whether any of them saw a
non-finite loss (then every process skips the update) and on whether any was asked to stop. Only the main
process logs and writes; checkpoints hold full tensors (`vatt.engine.parallel.full_state`), so a run saved by
N processes resumes on any number.

On a lazy device (XLA) nothing is read back to the host between log steps: the trainer traces each step into
one graph cut by ``torch_xla.sync()``, decides in the graph whether the update is kept (a non-finite loss or
gradient norm keeps the parameters and optimiser state as they were, via ``torch.where``), counts the skipped
steps on the device, and reads the logged scalars, the counters and the stop flag back only every
``log_every`` steps, at checkpoints, evaluations and the last step. Checkpoints hold CPU copies.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from vatt.engine.checkpoint import check_fits, load_latest, model_shapes, save_checkpoint
from vatt.engine.distributed import all_sum, broadcast_from_main, is_main_process, raise_on_every_process, rank, world_size
from vatt.engine.faults import BadStepCounter, StopRequests, TrainingInterrupted
from vatt.engine.logging import RunLogger
from vatt.engine.optim import set_lr
from vatt.engine.parallel import full_state, load_full_state
from vatt.engine.speed import autocast
from vatt.errors import UserError

CAPTURABLE_DEVICES = ("xla", "cuda")  # where torch's optimisers can keep their step counts (capturable=True)


def step_seed(seed: int, step: int, process_rank: int = 0) -> int:
    """The RNG seed of one process's step; rank 0's equals a single-process run's.

    A hash of all three, not a sum: torch's CPU generator keeps only the low 32 bits of a seed.
    """
    return int(np.random.SeedSequence([seed, step, process_rank]).generate_state(1, dtype=np.uint64)[0])


@dataclass
class StepOutcome:
    """What one training step reports, identical on every process."""
    scalars: dict[str, float]  # to log: loss (global-batch mean), its terms, lr, ...
    skipped: bool  # the loss was not finite on some process: no update was made
    stop: str | None  # the signal some process received during the step, if any
    read_back: bool = True  # False: a lazy device's step between log steps, whose values stay on the device


@dataclass
class Loop:
    """What one training run needs; tasks build it and call :meth:`fit`."""
    model: torch.nn.Module
    loss_fn: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict]]  # → (loss, scalars to log)
    optimizer: torch.optim.Optimizer
    schedule: Callable[[int], float]
    batches: Callable[[int], Iterator[dict]]  # start step → this process's batches from that step on
    run_dir: str
    steps: int
    logger: RunLogger | None = None  # made after resume(), so it knows where the run continues; main process only
    seed: int = 0
    device: torch.device = torch.device("cpu")
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    max_grad_norm: float | None = None
    evaluate: Callable[[int], dict] | None = None  # step → metrics; runs on every process
    eval_every: int = 0
    start_step: int = 0
    precision: str = "fp32"  # or "bf16": the forward runs under autocast
    max_bad_steps: int = 10  # non-finite losses in a row before the run stops
    handle_signals: bool = True  # SIGTERM / Ctrl-C: finish the step, save, stop
    # Lazy devices: steps between read-backs of the logged scalars (None: the logger's print_every, else 1).
    log_every: int | None = None
    # Keep the step's values on the device between log steps (update skipping and counting in the graph).
    # None: on lazy devices (XLA), where every read-back stalls the trace of the next step.
    defer_read_back: bool | None = None
    bad_steps: BadStepCounter = field(init=False)
    stop_requests: StopRequests = field(init=False)  # listening for SIGTERM / Ctrl-C while fit() runs

    def __post_init__(self):
        self.bad_steps = BadStepCounter(self.max_bad_steps)
        self.stop_requests = StopRequests()
        if self.defer_read_back is None:
            self.defer_read_back = self.device.type == "xla"
        if self.log_every is not None and (isinstance(self.log_every, bool) or not isinstance(self.log_every, int)
                                           or self.log_every < 1):
            raise ValueError(f"log_every must be an int >= 1, got {self.log_every!r}")
        self._counters: torch.Tensor | None = None  # deferred: [skipped in total, skipped in a row] on the device
        self._last_values: torch.Tensor | None = None  # deferred: the last step's agreed values, on the device

    def resume(self) -> int:
        """Load the run directory's latest checkpoint, if any; returns the step to continue from.

        The main process reads the checkpoint and sends it to the others, which need no access to the run
        directory. When no checkpoint loads, or the newest does not fit the model (`CheckpointError`,
        `CheckpointMismatch`), every process raises the main process's error before anything is loaded.
        """
        shapes = model_shapes(self.model)  # on every process: the same calls everywhere, whatever the wrapper
        step, state, problem = 0, None, None
        if is_main_process():
            try:
                found = load_latest(self.run_dir)
                if found is not None:
                    step, state = found
                    check_fits(shapes, state, self.run_dir, step)
            except UserError as exc:
                problem = exc
        raise_on_every_process(problem)
        bad_total, bad_in_a_row = state.get("bad_steps", (0, 0)) if state is not None else (0, 0)
        step, bad_total, bad_in_a_row = broadcast_from_main((step, bad_total, bad_in_a_row))
        if step == 0:
            return 0
        load_full_state(self.model, self.optimizer, state)
        self.bad_steps = BadStepCounter(self.max_bad_steps, bad_total, bad_in_a_row)
        self.start_step = step
        return step

    def save(self, step: int) -> Path | None:
        """Write the checkpoint of ``step``; every process must call it, the main process writes (and gets the
        checkpoint's path back; the others get None)."""
        state = full_state(self.model, self.optimizer)
        for group in state["optimizer"].get("param_groups", []):
            if group.get("capturable") and self.defer_read_back:
                group["capturable"] = False  # our choice for lazy devices (see _capture_optimizer), not the run's
        if is_main_process():
            state.update(step=step, bad_steps=[self.bad_steps.total, self.bad_steps.in_a_row])
            return save_checkpoint(self.run_dir, step, state, keep=self.keep_checkpoints)
        return None

    def read_step(self, done: int) -> bool:
        """Whether the step completing ``done`` reads its values back (always, unless reads are deferred)."""
        if not self.defer_read_back:
            return True
        every = self.log_every or (self.logger.print_every if hasattr(self.logger, "print_every") else 1)
        return (done % every == 0 or done % self.checkpoint_every == 0 or done >= self.steps
                or bool(self.eval_every and done % self.eval_every == 0)
                or (self.stop_requests.requested is not None and world_size() == 1))

    def train_step(self, step: int, batch: dict, read_back: bool = True) -> StepOutcome:
        """One update from this process's ``batch`` of global step ``step`` (0-based).

        With deferred read-backs (lazy devices), ``read_back=False`` leaves the step's values on the device and
        returns an outcome without scalars; the update is still skipped, in the graph, when not finite.
        """
        if self.defer_read_back:
            return self._deferred_step(step, batch, read_back)
        lr, loss, scalars, grad_norm = self._forward_backward(step, batch)
        _sync(self.device)  # XLA: run forward and backward as one graph before reading anything back
        scalars, finite, stop = self._agree(loss, scalars, grad_norm)
        if finite:
            self.optimizer.step()
            self.bad_steps.good()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_steps.bad()
            scalars = {}  # a skipped step has no loss worth plotting
        _sync(self.device)
        scalars["lr"] = lr
        if self.bad_steps.total:
            scalars["skipped_steps"] = float(self.bad_steps.total)
        return StepOutcome(scalars=scalars, skipped=not finite, stop=stop)

    def _forward_backward(self, step: int, batch: dict):
        """Gradients of this process's ``batch`` of step ``step``: (lr, loss, loss terms, clipped grad norm)."""
        _seed(self.device, step_seed(self.seed, step, rank()))  # DropToken and dropout draws of this step
        lr = self.schedule(step + 1)  # the lr of the update that completes step + 1; never 0 in warm-up
        set_lr(self.optimizer, lr)
        with autocast(self.device, self.precision):
            loss, scalars = self.loss_fn(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return lr, loss, scalars, self._clip_gradients()

    def _deferred_step(self, step: int, batch: dict, read_back: bool) -> StepOutcome:
        lr, loss, scalars, grad_norm = self._forward_backward(step, batch)
        names, summed = self._summed(loss, scalars, grad_norm)
        *sums, bad_count, stop_count = summed.unbind()
        keep = bad_count == 0  # every process keeps or skips the same update
        self._keep_update_if(keep)
        if self._counters is None:
            self._counters = torch.tensor([float(self.bad_steps.total), float(self.bad_steps.in_a_row)],
                                          device=loss.device)
        skipped = (~keep).float()
        total, in_a_row = self._counters.unbind()
        self._counters = torch.stack([total + skipped, (in_a_row + 1) * skipped])
        # what a log step reads, as one output of the step's graph (the same graph whether read or not)
        self._last_values = torch.stack([*sums, stop_count, *self._counters.unbind()])
        _sync(self.device)  # one graph: forward, backward, update, counters
        if not read_back:
            return StepOutcome(scalars={}, skipped=False, stop=None, read_back=False)
        *sums, stop_count, total, in_a_row = self._last_values.tolist()
        self.bad_steps = BadStepCounter(self.max_bad_steps, int(total), int(in_a_row))
        skipped_now = self.bad_steps.in_a_row > 0  # this very step was skipped
        out = {} if skipped_now else {name: value / world_size() for name, value in zip(names, sums)}
        out["lr"] = lr
        if self.bad_steps.total:
            out["skipped_steps"] = float(self.bad_steps.total)
        return StepOutcome(scalars=out, skipped=skipped_now, stop=self._stop_reason(stop_count))

    @torch.no_grad()
    def _keep_update_if(self, keep: torch.Tensor) -> None:
        """``optimizer.step()``, then put back the parameters and optimiser state where ``keep`` is False,
        without reading ``keep`` back. On a lazy device the "before" values are references into the graph, not
        copies; state the step creates is put back to zeros (how Adam and SGD start it)."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        before = [p.detach().clone() for p in params]
        state_before = {id(p): {k: v.detach().clone() for k, v in self.optimizer.state.get(p, {}).items()
                                if torch.is_tensor(v) and v.device == p.device} for p in params}
        self.optimizer.step()
        for p, old in zip(params, before):
            p.copy_(torch.where(keep, p, old))
            for key, value in self.optimizer.state.get(p, {}).items():
                if torch.is_tensor(value) and value.device == p.device:
                    old_value = state_before[id(p)].get(key)
                    value.copy_(torch.where(keep, value, old_value if old_value is not None
                                            else torch.zeros_like(value)))

    def _capture_optimizer(self) -> None:
        """Deferred read-backs: keep the optimiser's step counts on the device (Adam's ``capturable``), so that
        a skipped update can put them back in the graph and ``step()`` reads nothing back."""
        for group in self.optimizer.param_groups:
            if "capturable" not in group or group.get("fused") \
                    or any(p.device.type not in CAPTURABLE_DEVICES for p in group["params"]):
                continue  # (on the CPU the step count is a tensor beside the parameters: restored as it is)
            group["capturable"] = True
            for p in group["params"]:
                state = self.optimizer.state.get(p, {})
                if torch.is_tensor(state.get("step")) and state["step"].device != p.device:
                    state["step"] = state["step"].to(device=p.device, dtype=torch.float32)

    def fit(self) -> None:
        self.model.train()
        if self.defer_read_back:
            self._capture_optimizer()
            self._counters = None  # the device counters restart from bad_steps (as resumed)
        with self.stop_requests if self.handle_signals else contextlib.nullcontext():
            # DataLoader workers start here, under the stop handlers: a Ctrl-C that reaches one before its init
            # makes it ignore stop signals (vatt.data.loader) only sets a flag in its copy of the handlers
            batches = self.batches(self.start_step)
            for step in range(self.start_step, self.steps):
                batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                         for k, v in next(batches).items()}
                done = step + 1
                outcome = self.train_step(step, batch, read_back=self.read_step(done)) if self.defer_read_back \
                    else self.train_step(step, batch)
                if not outcome.read_back:
                    continue  # nothing to log or decide before the next log step: it all stays on the device
                if self.logger is not None:
                    self.logger.log_step(done, outcome.scalars)
                if outcome.stop is not None:
                    saved = self.save(done)  # None on the processes that do not write
                    where = f"; its checkpoint is {saved}" if saved is not None else ""
                    raise TrainingInterrupted(f"stopped by {outcome.stop} after step {done}{where}",
                                              report=saved is not None)
                if self.bad_steps.exhausted:
                    self.save(done)
                    raise self.bad_steps.error(done, self.run_dir)
                if done % self.checkpoint_every == 0 or done == self.steps:
                    self.save(done)
                if self.evaluate is not None and self.eval_every and done % self.eval_every == 0 \
                        and done < self.steps:
                    metrics = self.evaluate(done)
                    if self.logger is not None:
                        self.logger.log_eval(done, metrics)
                    self.model.train()

    def _clip_gradients(self) -> torch.Tensor | None:
        if not self.max_grad_norm:
            return None
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: a sharded norm

    def _agree(self, loss: torch.Tensor, scalars: dict[str, Any],
               grad_norm: torch.Tensor | None) -> tuple[dict[str, float], bool, str | None]:
        """`_summed`, read back: the loss and its terms averaged over processes for the log, whether the update
        is kept (every loss and gradient norm finite), and the stop request of any process."""
        names, summed = self._summed(loss, scalars, grad_norm)
        *sums, bad_count, stop_count = summed.tolist()
        return ({name: value / world_size() for name, value in zip(names, sums)}, bad_count == 0,
                self._stop_reason(stop_count))

    def _summed(self, loss: torch.Tensor, scalars: dict[str, Any],
                grad_norm: torch.Tensor | None) -> tuple[list[str], torch.Tensor]:
        """The step's logged values (loss, its terms, the gradient norm), its non-finite flag and this process's
        stop request, summed over the processes in one collective and left on the device:
        (names, [one sum per name, non-finite count, stop count])."""
        logged = {"loss": loss, **scalars}
        bad = ~torch.isfinite(loss.detach().float())
        if grad_norm is not None:  # computed after the gradient all-reduce: the same on every process
            logged["grad_norm"] = grad_norm
            bad = bad | ~torch.isfinite(grad_norm.detach().float())
        device = loss.device
        values = [torch.as_tensor(v, dtype=torch.float32, device=device).detach().reshape(1) for v in logged.values()]
        stop_flag = torch.tensor([float(self.stop_requests.requested is not None)], device=device)
        return list(logged), all_sum(torch.cat([*values, bad.float().reshape(1), stop_flag]))

    def _stop_reason(self, stop_count: float) -> str | None:
        if stop_count == 0:
            return None
        return self.stop_requests.requested or "a stop request on another process"

def _seed(device: torch.device, seed: int) -> None:
    torch.manual_seed(seed)  # CPU and CUDA generators
    if device.type == "xla":
        import torch_xla
        torch_xla.manual_seed(seed)


def _sync(device: torch.device) -> None:
    """Cut and run the lazily traced graph (XLA); a no-op on eager devices."""
    if device.type == "xla":
        import torch_xla
        torch_xla.sync()
