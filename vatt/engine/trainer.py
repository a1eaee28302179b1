"""The training loop shared by the tasks: step, log, checkpoint, evaluate, resume.

Exact resumption without saving RNG state: the global torch RNG is re-seeded from (seed, step) before every
step, and the data order is a pure function of (seed, step) (vatt.data.sampler), so a run resumed from the
checkpoint of step N replays steps N+1... bit for bit on the same machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from vatt.engine.checkpoint import load_latest, save_checkpoint
from vatt.engine.logging import RunLogger
from vatt.engine.optim import set_lr


def step_seed(seed: int, step: int) -> int:
    # a large odd multiplier keeps (seed, step) pairs from colliding across nearby seeds
    return (seed * 1_000_003 + step) % (2**63 - 1)


@dataclass
class Loop:
    """What one training run needs; tasks build it and call :meth:`fit`."""
    model: torch.nn.Module
    loss_fn: Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict]]  # → (loss, scalars to log)
    optimizer: torch.optim.Optimizer
    schedule: Callable[[int], float]
    batches: Callable[[int], Iterator[dict]]  # start step → batches from that step on
    run_dir: str
    steps: int
    logger: RunLogger | None = None  # made after resume(), so it knows where the run continues
    seed: int = 0
    device: torch.device = torch.device("cpu")
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    max_grad_norm: float | None = None
    evaluate: Callable[[int], dict] | None = None  # step → metrics
    eval_every: int = 0
    start_step: int = 0

    def resume(self) -> int:
        """Load the run directory's latest checkpoint, if any; returns the step to continue from."""
        found = load_latest(self.run_dir)
        if found is None:
            return 0
        step, state = found
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_step = step
        return step

    def save(self, step: int) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": step}
        save_checkpoint(self.run_dir, step, state, keep=self.keep_checkpoints)

    def fit(self) -> None:
        self.model.train()
        batches = self.batches(self.start_step)
        for step in range(self.start_step, self.steps):
            batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                     for k, v in next(batches).items()}
            torch.manual_seed(step_seed(self.seed, step))  # DropToken and dropout draws of this step
            lr = self.schedule(step + 1)  # the lr of the update that completes step + 1; never 0 in warm-up
            set_lr(self.optimizer, lr)
            loss, scalars = self.loss_fn(self.model, batch)
            if not torch.isfinite(loss):
                self.save(step)
                raise FloatingPointError(f"loss is {float(loss)} at step {step + 1}; the checkpoint of step "
                                         f"{step} was kept in {self.run_dir}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.max_grad_norm:
                scalars["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                                            self.max_grad_norm))
            self.optimizer.step()
            done = step + 1
            self.logger.log_step(done, {"loss": float(loss.detach()), "lr": lr, **scalars})
            if done % self.checkpoint_every == 0 or done == self.steps:
                self.save(done)
            if self.evaluate is not None and self.eval_every and done % self.eval_every == 0 and done < self.steps:
                self.logger.log_eval(done, self.evaluate(done))
                self.model.train()

