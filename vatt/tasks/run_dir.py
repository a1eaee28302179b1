"""The run directory every task writes into, the device a run asks for, and a training task's run of its Loop."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator

import torch

from vatt import config as cfglib
from vatt.engine import distributed
from vatt.engine.logging import RunLogger
from vatt.engine.trainer import Loop
from vatt.registry import ConfigError, UserError

RESOLVED_CONFIG = "config.yaml"


def default_run_dir(config_path: Path | None) -> Path:
    return Path("runs") / (config_path.stem if config_path else "run")


def training_run_dir(directory: str | None, batch_size: int, config_path: Path | None, cfg: dict) -> Path:
    """A training task's run directory on this process, once the global batch is known to split over the
    processes: the main process prepares it (folders, resolved config), the others only need its path."""
    try:
        distributed.local_batch_size(batch_size)
    except ValueError as exc:
        raise ConfigError([f"run.batch_size: {exc}"]) from None
    if distributed.is_main_process():
        return prepare_run_dir(directory, config_path, cfg)
    return Path(directory) if directory else default_run_dir(config_path)


def prepare_run_dir(directory: str | None, config_path: Path | None, cfg: dict) -> Path:
    """Create the run directory and save the resolved config in it (warning when a resumed run differs)."""
    run_dir = Path(directory) if directory else default_run_dir(config_path)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"run.dir: cannot create {run_dir}: {exc.strerror}") from None
    saved = run_dir / RESOLVED_CONFIG
    if saved.is_file():
        previous = cfglib.parse_yaml(saved.read_text()) or {}
        changed = sorted(_changed_keys(previous, cfg))
        if changed:
            print(f"warning: {saved} differs from this run's config at {', '.join(changed[:8])}"
                  f"{' ...' if len(changed) > 8 else ''}; the new config is saved", file=sys.stderr)
    cfglib.save_resolved(cfg, saved)
    return run_dir


def _changed_keys(a, b, where: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = set()
        for key in set(a) | set(b):
            out |= _changed_keys(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
        return out
    return set() if a == b else {where or "<root>"}


def resolve_device(name: str) -> torch.device:
    """The torch device ``run.device`` names: cpu, cuda, cuda:N, xla, xla:N, or auto (cuda if any, else cpu).

    ``xla`` imports torch_xla, which registers the device with torch (nothing can move to an XLA device before
    that); plain ``xla`` is torch_xla's default device for this process (PJRT picks the accelerator, or the CPU
    client under ``PJRT_DEVICE=CPU``).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"run.device: {name!r} is not a device (use cpu, cuda, cuda:N, xla or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"run.device: {name!r} asked for, but this torch sees no CUDA device")
    if device.type == "xla":
        return _xla_device(name, device)
    return device


def _xla_device(name: str, device: torch.device) -> torch.device:
    try:
        import torch_xla
    except ImportError as exc:
        raise UserError(f"run.device: {name!r} needs torch_xla, which this Python cannot import ({exc}); "
                        f"install the torch_xla release matching torch {torch.__version__.split('+')[0]} "
                        f"(pip install torch_xla), or pick another device") from None
    try:
        return torch_xla.device() if device.index is None else torch_xla.device(device.index)
    except Exception as exc:  # PJRT found no usable client: no TPU and no PJRT_DEVICE, say
        raise UserError(f"run.device: {name!r}: torch_xla could not open the device ({type(exc).__name__}: "
                        f"{exc}); set PJRT_DEVICE (TPU, CUDA or CPU)") from None


def evaluation_setup(run, config_path: Path | None, cfg: dict) -> tuple[torch.device, Path]:
    """An evaluation task's device and run directory, on one process (its run section has device, threads and
    dir)."""
    device = resolve_device(run.device)
    if run.threads:
        torch.set_num_threads(run.threads)
    return device, prepare_run_dir(run.dir, config_path, cfg)


@contextlib.contextmanager
def training_session(run) -> Iterator[torch.device]:
    """A training run's threads and process group (torchrun); yields this process's device."""
    if run.threads:
        torch.set_num_threads(run.threads)
    with distributed.process_group(resolve_device(run.device), run.collective_timeout) as device:
        yield device


def loop_settings(run) -> dict:
    """The Loop's keyword arguments that a run section (`RunSettings`) sets."""
    return dict(steps=run.steps, seed=run.seed, checkpoint_every=run.checkpoint_every,
                keep_checkpoints=run.keep_checkpoints, max_grad_norm=run.max_grad_norm, eval_every=run.eval_every,
                precision=run.precision, max_bad_steps=run.max_bad_steps)


def fit_and_report(loop: Loop, run) -> dict:
    """Run a training task's Loop: resume from its run directory, train with progress and metrics on the main
    process, evaluate at the end (``loop.evaluate``, on every process) and write results.json. Returns the
    results on the main process, {} on the others."""
    main_process = distributed.is_main_process()
    start = loop.resume()
    if main_process:
        if start:
            print(f"resuming {loop.run_dir} from step {start}", file=sys.stderr)
        loop.logger = RunLogger(loop.run_dir, total_steps=run.steps, batch_size=run.batch_size,
                                tensorboard=run.tensorboard, print_every=run.log_every, start_step=start)
    try:
        loop.fit()
        results = loop.evaluate(run.steps) if loop.evaluate is not None else {}
        if main_process:
            if results:
                loop.logger.log_eval(run.steps, results)
            loop.logger.write_results(results)
    finally:
        if loop.logger is not None:
            loop.logger.close()
    return results if main_process else {}
