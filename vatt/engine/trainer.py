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

`Loop.train_step` is the step on CPU and CUDA, its values read back every step. A lazy device (XLA) takes the
deferred step of vatt.engine.deferred instead, which reads values back only at log steps.
"""
from __future__ import annotations

import contextlib
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

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

if TYPE_CHECKING:
    from vatt.engine.deferred import DeferredStep


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


@dataclass(frozen=True)
class LoopSettings:
    """What a run section (`RunSettings`) sets for the Loop."""
    steps: int
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    eval_every: int = 0
    max_grad_norm: float | None = None
    precision: str = "fp32"  # or "bf16": the forward runs under autocast
    max_bad_steps: int = 10  # non-finite losses in a row before the run stops


@dataclass
class Loop:
    """What one training run needs; tasks build it and call :meth:`fit`."""
    model: torch.nn.Module
    loss_fn: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict]]  # → (loss, scalars to log)
    optimizer: torch.optim.Optimizer
    schedule: Callable[[int], float]
    batches: Callable[[int], Iterator[dict]]  # start step → this process's batches from that step on
    run_dir: str
    settings: LoopSettings
    device: torch.device = torch.device("cpu")
    evaluate: Callable[[int], dict] | None = None  # step → metrics; runs on every process
    logger: RunLogger | None = None  # made after resume(), so it knows where the run continues; main process only
    handle_signals: bool = True  # SIGTERM / Ctrl-C: finish the step, save, stop
    # The deferred step (vatt.engine.deferred): None takes it on lazy devices (XLA), True anywhere. It reads values
    # back every log_every steps (None: the logger's print_every, else 1), at checkpoints, evaluations and the end.
    defer_read_back: InitVar[bool | None] = None
    log_every: InitVar[int | None] = None
    start_step: int = field(default=0, init=False)  # where fit() starts: resume() sets it
    bad_steps: BadStepCounter = field(init=False)
    stop_requests: StopRequests = field(init=False)  # listening for SIGTERM / Ctrl-C while fit() runs
    deferred: DeferredStep | None = field(init=False)  # the step on lazy devices, else None

    def __post_init__(self, defer_read_back: bool | None, log_every: int | None):
        self.bad_steps = BadStepCounter(self.settings.max_bad_steps)
        self.stop_requests = StopRequests()
        self.deferred = None
        if defer_read_back or (defer_read_back is None and self.device.type == "xla"):
            from vatt.engine.deferred import DeferredStep  # which builds on this module
            self.deferred = DeferredStep(self, log_every)

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
        self.bad_steps = BadStepCounter(self.settings.max_bad_steps, bad_total, bad_in_a_row)
        self.start_step = step
        return step

    def save(self, step: int) -> Path | None:
        """Write the checkpoint of ``step``; every process must call it, the main process writes (and gets the
        checkpoint's path back; the others get None)."""
        state = full_state(self.model, self.optimizer)
        if self.deferred is not None:
            self.deferred.uncapture(state)
        if is_main_process():
            state.update(step=step, bad_steps=[self.bad_steps.total, self.bad_steps.in_a_row])
            return save_checkpoint(self.run_dir, step, state, keep=self.settings.keep_checkpoints)
        return None

    def fit(self) -> None:
        run = self.settings
        self.model.train()
        if self.deferred is not None:
            self.deferred.start()
        with self.stop_requests if self.handle_signals else contextlib.nullcontext():
            # DataLoader workers start here, under the stop handlers: a Ctrl-C that reaches one before its init
            # makes it ignore stop signals (vatt.data.workers) only sets a flag in its copy of the handlers
            batches = self.batches(self.start_step)
            for step in range(self.start_step, run.steps):
                batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                         for k, v in next(batches).items()}
                done = step + 1
                outcome = self.train_step(step, batch) if self.deferred is None else self.deferred.step(step, batch)
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
                if done % run.checkpoint_every == 0 or done == run.steps:
                    self.save(done)
                if self.evaluate is not None and run.eval_every and done % run.eval_every == 0 and done < run.steps:
                    metrics = self.evaluate(done)
                    if self.logger is not None:
                        self.logger.log_eval(done, metrics)
                    self.model.train()

    def train_step(self, step: int, batch: dict) -> StepOutcome:
        """One update from this process's ``batch`` of global step ``step`` (0-based), read back at once."""
        lr, loss, scalars, grad_norm = self._forward_backward(step, batch)
        sync(self.device)  # XLA without deferred read-backs: forward and backward as one graph, then read
        names, summed = self.summed(loss, scalars, grad_norm)
        *sums, bad_count, stop_count = summed.tolist()  # the one read-back of the step
        stop = self.stop_reason(stop_count)
        finite = bad_count == 0  # on every process alike: the sums hold every process's loss and norm
        if finite:
            self.optimizer.step()
            self.bad_steps.good()
            scalars = {name: value / world_size() for name, value in zip(names, sums)}  # global-batch means
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_steps.bad()
            scalars = {}  # a skipped step has no loss worth plotting
        sync(self.device)
        return self.outcome(scalars, lr, skipped=not finite, stop=stop)

    def _forward_backward(self, step: int, batch: dict):
        """Gradients of this process's ``batch`` of step ``step``: (lr, loss, loss terms, clipped grad norm)."""
        _seed(self.device, step_seed(self.settings.seed, step, rank()))  # DropToken and dropout draws of this step
        lr = self.schedule(step + 1)  # the lr of the update that completes step + 1; never 0 in warm-up
        set_lr(self.optimizer, lr)
        with autocast(self.device, self.settings.precision):
            loss, scalars = self.loss_fn(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not self.settings.max_grad_norm:
            return lr, loss, scalars, None
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.max_grad_norm)
        return lr, loss, scalars, norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: sharded

    def summed(self, loss: torch.Tensor, scalars: dict[str, Any],
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

    def stop_reason(self, stop_count: float) -> str | None:
        if stop_count == 0:
            return None
        return self.stop_requests.requested or "a stop request on another process"

    def outcome(self, scalars: dict[str, float], lr: float, *, skipped: bool, stop: str | None) -> StepOutcome:
        """A read-back step's outcome: its scalars with the lr and, once any step was skipped, their count."""
        scalars["lr"] = lr
        if self.bad_steps.total:
            scalars["skipped_steps"] = float(self.bad_steps.total)
        return StepOutcome(scalars=scalars, skipped=skipped, stop=stop)


def _seed(device: torch.device, seed: int) -> None:
    torch.manual_seed(seed)  # CPU and CUDA generators
    if device.type == "xla":
        import torch_xla
        torch_xla.manual_seed(seed)


def sync(device: torch.device) -> None:
    """Cut and run the lazily traced graph (XLA); a no-op on eager devices."""
    if device.type == "xla":
        import torch_xla
        torch_xla.sync()
