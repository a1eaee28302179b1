"""What a run reports while it trains: metrics.jsonl, TensorBoard scalars, a progress line, results.json.

``metrics.jsonl`` is the record scripts read: one JSON object per line, ``"kind": "train"`` or ``"eval"``,
flushed after every line so a crash loses nothing already logged. When a run resumes from the checkpoint of
step S, lines after S (written by the attempt that died before its next checkpoint) are removed, so the file
of a resumed run matches an uninterrupted one apart from time and throughput. TensorBoard gets the same
cut through ``purge_step``. A fresh start (start_step 0) begins both records empty.

Only one process of a distributed run (rank 0) should hold a RunLogger.
"""
from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from vatt.errors import UserError
from vatt.files import OUT_OF_ROOM, atomic_write, refusal
from vatt.ranges import require

METRICS_NAME = "metrics.jsonl"
RESULTS_NAME = "results.json"
TENSORBOARD_DIR = "tensorboard"
_TRAIN_RESERVED = ("step", "kind", "clips_per_s", "time")
_EVAL_RESERVED = ("step", "kind", "time")


class LogWriteError(UserError):
    """The filesystem refused metrics.jsonl or results.json (no space, a quota, no permission)."""


@contextlib.contextmanager
def _writing(path: Path):
    try:
        yield
    except OSError as exc:
        fix = "free some space" if exc.errno in OUT_OF_ROOM else f"make {path.parent} writable"
        raise LogWriteError(f"{refusal(exc)} while writing {path}. To continue, {fix} and run the same command: it "
                            f"resumes from the last checkpoint, and {METRICS_NAME} keeps its lines up to it") from None


def _plain(value: Any) -> Any:
    """JSON fallback for tensors and numpy values, which metric code hands over unconverted."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")


def _to_json(record: dict, **kwargs) -> str:
    return json.dumps(record, default=_plain, **kwargs)


def format_duration(seconds: float) -> str:
    """Compact duration for progress lines: ``45s``, ``1m40s``, ``2h05m``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _train_tag(key: str) -> str:
    """TensorBoard tag of a training scalar: ``lr`` as is, losses under ``loss/``, other names under ``train/``."""
    if "/" in key or key == "lr":
        return key
    if key == "loss":
        return "loss/total"
    if key.startswith("loss_"):
        return "loss/" + key[len("loss_"):]
    return "train/" + key


def _keep_lines_until(path: Path, last_step: int) -> None:
    """Rewrite ``path`` keeping only well-formed lines with step <= ``last_step``."""
    kept = []
    # errors="replace": a crash mid-write can cut a multi-byte character; that line is dropped below anyway.
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                keep = json.loads(line)["step"] <= last_step
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the crash that ended the previous attempt
            if keep:
                kept.append(line if line.endswith("\n") else line + "\n")
    atomic_write(path, lambda f: f.write("".join(kept).encode("utf-8")))


class RunLogger:
    """Writes a run's metrics to ``run_dir``; see the module docstring for the files.

    ``print_every``: a progress line is printed once at least this many steps have passed since the last one
    (and at the final step). ``throughput_window``: clips/s and ETA come from the wall time of the last this
    many ``log_step`` calls, so they follow the current speed rather than the run's average. ``start_step``:
    the step the run resumes from (0 for a fresh run, whose metrics.jsonl is started empty). ``clock`` is the
    monotonic time source for throughput, replaceable in tests.
    """

    def __init__(self, run_dir: str | os.PathLike, total_steps: int, batch_size: int, tensorboard: bool = True,
                 print_every: int = 50, stream: TextIO | None = None, start_step: int = 0,
                 throughput_window: int = 20, clock: Callable[[], float] = time.monotonic):
        require(1, whole=True, total_steps=total_steps, batch_size=batch_size, print_every=print_every)
        require(0, whole=True, start_step=start_step)
        require(2, whole=True, throughput_window=throughput_window)
        if start_step > total_steps:
            raise ValueError(f"start_step ({start_step}) is beyond total_steps ({total_steps})")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.print_every = print_every
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        # (step, time) of recent log_step calls; seeded with the start so the first call has a rate.
        self._window = collections.deque([(start_step, clock())], maxlen=throughput_window)
        self._last_printed = start_step

        self._metrics_path = self.run_dir / METRICS_NAME
        with _writing(self._metrics_path):
            if start_step > 0 and self._metrics_path.exists():
                _keep_lines_until(self._metrics_path, start_step)
            self._metrics = open(self._metrics_path, "a" if start_step > 0 else "w", encoding="utf-8")

        self._tb = self._tensorboard_writer(start_step) if tensorboard else None

    def _tensorboard_writer(self, start_step: int):
        try:
            from torch.utils.tensorboard import SummaryWriter  # tensorboard is optional
        except ImportError:
            print("warning: tensorboard is not installed, so this run writes no TensorBoard events (metrics.jsonl "
                  "has the same numbers); pip install tensorboard, or set run.tensorboard=false to silence this",
                  file=self.stream, flush=True)
            return None
        # Hides what an earlier attempt plotted after start_step (everything on a fresh start), as for the jsonl.
        return SummaryWriter(str(self.run_dir / TENSORBOARD_DIR), purge_step=start_step + 1 if start_step > 0 else 0)

    # writing ----------------------------------------------------------------------------------------
    def _write_line(self, record: dict) -> None:
        with _writing(self._metrics_path):
            self._metrics.write(_to_json(record) + "\n")
            self._metrics.flush()

    def _add_scalars(self, step: int, tagged: dict[str, Any]) -> None:
        if self._tb is None:
            return
        for tag, value in tagged.items():
            self._tb.add_scalar(tag, float(value), step)

    @staticmethod
    def _check_keys(what: str, values: dict, reserved: tuple[str, ...]) -> None:
        if not isinstance(values, dict):
            raise ValueError(f"{what} must be a dict, got {type(values).__name__}")
        clash = [k for k in values if k in reserved]
        if clash:
            raise ValueError(f"{what} uses reserved key(s) {clash}; the logger itself writes {', '.join(reserved)}")

    def throughput(self) -> tuple[float, float]:
        """(clips per second, steps per second) over the recent window; NaN until time has passed."""
        (first_step, first_time), (last_step, last_time) = self._window[0], self._window[-1]
        elapsed = last_time - first_time
        if elapsed <= 0 or last_step <= first_step:
            return math.nan, math.nan
        steps_per_s = (last_step - first_step) / elapsed
        return steps_per_s * self.batch_size, steps_per_s

    def log_step(self, step: int, scalars: dict) -> None:
        """Record the training scalars of ``step``: losses (``loss``, ``loss_<term>``), ``lr``, anything else."""
        self._check_keys("scalars", scalars, _TRAIN_RESERVED)
        self._window.append((step, self._clock()))
        clips_per_s, steps_per_s = self.throughput()
        scalars = {k: float(v) for k, v in scalars.items()}
        record = {"step": step, "kind": "train", **scalars}
        record["clips_per_s"] = None if math.isnan(clips_per_s) else round(clips_per_s, 3)
        record["time"] = round(time.time(), 3)
        self._write_line(record)

        tagged = {_train_tag(k): v for k, v in scalars.items()}
        if not math.isnan(clips_per_s):
            tagged["throughput/clips_per_s"] = clips_per_s
        self._add_scalars(step, tagged)

        if step - self._last_printed >= self.print_every or step == self.total_steps:
            self._last_printed = step
            eta = (self.total_steps - step) / steps_per_s if steps_per_s > 0 else math.nan
            parts = [f"step {step}/{self.total_steps}"]
            parts += [f"{k} {v:.3g}" for k, v in scalars.items()]
            parts.append("? clips/s" if math.isnan(clips_per_s) else f"{clips_per_s:.1f} clips/s")
            parts.append(f"ETA {format_duration(eta)}")
            print(" | ".join(parts), file=self.stream, flush=True)

    def log_eval(self, step: int, metrics: dict) -> None:
        """Record evaluation metrics measured at ``step`` (TensorBoard tags ``eval/<name>``) and print them."""
        self._check_keys("metrics", metrics, _EVAL_RESERVED)
        self._write_line({"step": step, "kind": "eval", **metrics, "time": round(time.time(), 3)})
        numbers = {k: v for k, v in metrics.items() if _is_number(v)}
        self._add_scalars(step, {f"eval/{k}": v for k, v in numbers.items()})
        shown = " | ".join(f"{k} {float(v):.4g}" for k, v in numbers.items())
        print(f"eval step {step}" + (f" | {shown}" if shown else ""), file=self.stream, flush=True)

    def write_results(self, metrics: dict) -> Path:
        """Write the run's final metrics to results.json (atomically, so readers never see half a file)."""
        if not isinstance(metrics, dict):
            raise ValueError(f"metrics must be a dict, got {type(metrics).__name__}")
        path = self.run_dir / RESULTS_NAME
        text = _to_json(metrics, indent=2) + "\n"
        with _writing(path):
            atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        return path

    def close(self) -> None:
        if not self._metrics.closed:
            try:
                self._metrics.close()
            except OSError:  # the flush of a line the disk refused, already reported by _write_line
                pass
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _is_number(value: Any) -> bool:
    """True for scalars TensorBoard can plot: Python/numpy numbers and one-element tensors, not bools."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return getattr(value, "ndim", None) == 0 or (hasattr(value, "numel") and value.numel() == 1)
