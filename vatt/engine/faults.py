"""What ends a run early, and how: a stop request (SIGTERM, Ctrl-C) or a loss that stays NaN/Inf.

A stop request only sets a flag; the trainer finishes the step it is in, agrees with the other processes that
the run stops, saves a checkpoint and raises `TrainingInterrupted`. A second Ctrl-C stops at once. Either way
`python -m vatt.run` ends with one line and exit code 130, whichever signal asked.

Ctrl-C in a terminal signals the whole process group, DataLoader workers included, and torchrun forwards the
signals it gets to each rank's group: the workers ignore them (vatt.data.workers), so only the main process
decides when the data stops.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType

from vatt.errors import UserError
from vatt.ranges import require

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """The run stopped on request after saving a checkpoint (a KeyboardInterrupt, so anything that stops on
    Ctrl-C stops on it). Its message is the one line the command line prints, naming the step and its
    checkpoint; ``report`` is False on the processes of a distributed run other than the main one, which
    print nothing."""

    def __init__(self, message: str, *, report: bool = True):
        super().__init__(message)
        self.report = report


class NonFiniteLoss(UserError):
    """The loss was NaN or infinite in too many steps in a row."""


class StopRequests:
    """While active (a ``with`` block), SIGINT and SIGTERM set ``requested`` instead of killing the process.

    The first signal is remembered; a second SIGINT restores the previous handler and raises KeyboardInterrupt
    at once, so a stuck run can still be stopped by hand. A signal the process ignores when the block starts
    stays ignored: a shell starts background jobs (and ``nohup`` its command) with SIGINT ignored so that a
    Ctrl-C in the terminal does not reach them. Signals can only be caught in the main thread; elsewhere the
    block changes nothing.
    """

    def __init__(self):
        self.requested: str | None = None  # name of the first signal received
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequests":
        self.requested = None
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, self._previous.get(signal.SIGINT, signal.default_int_handler))
            raise KeyboardInterrupt
        self.requested = self.requested or signal.Signals(signum).name


class BadStepCounter:
    """Counts steps skipped for a non-finite loss; raises NonFiniteLoss after ``limit`` in a row."""

    def __init__(self, limit: int, total: int = 0, in_a_row: int = 0):
        require(1, whole=True, max_bad_steps=limit)
        self.limit = limit
        self.total = total
        self.in_a_row = in_a_row

    def good(self) -> None:
        self.in_a_row = 0

    def bad(self) -> None:
        self.total += 1
        self.in_a_row += 1

    @property
    def exhausted(self) -> bool:
        return self.in_a_row >= self.limit

    def error(self, step: int, run_dir: str) -> NonFiniteLoss:
        first = step - self.in_a_row + 1
        return NonFiniteLoss(
            f"the loss was NaN or infinite in {self.in_a_row} steps in a row (steps {first}-{step}; "
            f"run.max_bad_steps={self.limit}), so the run stopped. The skipped steps changed no weight; the "
            f"checkpoint of step {step} is in {run_dir}/checkpoints. Lower the learning rate, set "
            f"run.max_grad_norm, or use run.precision=fp32, then run the same command to resume.")
