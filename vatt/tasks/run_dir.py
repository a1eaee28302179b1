"""The run directory every task writes into, the device a run asks for, and a training task's run of its Loop."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import torch

from vatt import config as cfglib
from vatt.engine import distributed, run_lock
from vatt.engine.checkpoint import CHECKPOINT_DIR, CheckpointError, CheckpointMismatch
from vatt.engine.logging import RunLogger
from vatt.engine.trainer import Loop, LoopSettings
from vatt.errors import ConfigError, UserError
from vatt.messages import listed

RESOLVED_CONFIG = "config.yaml"
# run directory → the config keys at which its saved config differed from this run's (see prepare_run_dir),
# for the error of a resume whose checkpoint no longer fits the model
_CONFIG_CHANGES: dict[Path, list[str]] = {}
# run directory → this training run's config, which differs from the saved one: saved once the directory's
# checkpoint has resumed (fit_and_report), so that a run that cannot resume leaves the config of the run whose
# checkpoints are there
_UNSAVED_CONFIGS: dict[Path, dict] = {}


def default_run_dir(config_path: Path | None) -> Path:
    return Path("runs") / (config_path.stem if config_path else "run")


def training_run_dir(directory: str | None, batch_size: int, config_path: Path | None, cfg: dict) -> Path:
    """A training task's run directory on this process, once the global batch is known to split over the
    processes: the main process prepares it (folders, resolved config) and holds its lock (`run_lock`) until
    `fit_and_report` ends; the others only need its path, and raise the main process's error if it could
    not (rather than wait for it in their next collective)."""
    try:
        distributed.local_batch_size(batch_size)
    except ValueError as exc:
        raise ConfigError([f"run.batch_size: {exc}"]) from None
    run_dir, problem = (Path(directory) if directory else default_run_dir(config_path)), None
    if distributed.is_main_process():
        try:
            run_dir = prepare_run_dir(directory, config_path, cfg, exclusive=True, resumes=True)
        except UserError as exc:
            problem = exc
    distributed.raise_on_every_process(problem)
    return run_dir


def prepare_run_dir(directory: str | None, config_path: Path | None, cfg: dict, exclusive: bool = False,
                    resumes: bool = False) -> Path:
    """Create the run directory, check that it can be written, take its lock when ``exclusive`` (a second run
    on it stops here), and save the resolved config in it (warning when it differs from the saved one; a run
    that ``resumes`` from the directory's checkpoints saves a differing config only once they resumed)."""
    run_dir = Path(directory) if directory else default_run_dir(config_path)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"run.dir: cannot create {run_dir}: {exc.strerror}") from None
    _check_writable(run_dir)
    if exclusive:
        run_lock.hold(run_dir)
    saved = run_dir / RESOLVED_CONFIG
    _CONFIG_CHANGES.pop(run_dir, None)
    _UNSAVED_CONFIGS.pop(run_dir, None)
    if saved.is_file():
        previous = cfglib.parse_yaml(saved.read_text()) or {}
        changed = sorted(_changed_keys(previous, cfg))
        if changed:
            _CONFIG_CHANGES[run_dir] = changed
            print(f"warning: {saved} differs from this run's config at {', '.join(changed[:8])}"
                  f"{' ...' if len(changed) > 8 else ''}; the new config is saved"
                  f"{' once the run has resumed' if resumes else ''}", file=sys.stderr)
            if resumes:
                _UNSAVED_CONFIGS[run_dir] = cfg
                return run_dir
    _save_config(cfg, saved)
    return run_dir


def _save_config(cfg: dict, saved: Path) -> None:
    try:
        cfglib.save_resolved(cfg, saved)
    except OSError as exc:  # a disk that is full: the write check before it writes nothing
        raise UserError(f"run.dir: cannot write {saved} ({exc.strerror}); make room, or choose another "
                        f"run.dir") from None


def _check_writable(run_dir: Path) -> None:
    """Create and remove a file where a run writes (the directory, its checkpoints), so that a directory the
    run cannot write stops it before anything is built. Trying is the one check that covers every cause: the
    mode bits, ACLs, a read-only mount, a network filesystem's own rules."""
    for folder in (run_dir, run_dir / CHECKPOINT_DIR):
        if not folder.is_dir():
            continue
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check-")
        except OSError as exc:
            raise UserError(f"run.dir: cannot write in {folder} ({exc.strerror}); make it writable, or choose "
                            f"another run.dir") from None
        os.close(fd)
        os.unlink(probe)


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


def loop_settings(run) -> LoopSettings:
    """The Loop's settings that a run section (`RunSettings`) sets."""
    return LoopSettings(steps=run.steps, seed=run.seed, checkpoint_every=run.checkpoint_every,
                        keep_checkpoints=run.keep_checkpoints, max_grad_norm=run.max_grad_norm,
                        eval_every=run.eval_every, precision=run.precision, max_bad_steps=run.max_bad_steps)


def fit_and_report(loop: Loop, run) -> dict:
    """Run a training task's Loop: resume from its run directory, train with progress and metrics on the main
    process, evaluate at the end (``loop.evaluate``, on every process) and write results.json; the run
    directory's lock (taken by `training_run_dir`) is released at the end. Returns the results on the main
    process, {} on the others."""
    main_process = distributed.is_main_process()
    run_dir = Path(loop.run_dir)
    try:
        start = _resume(loop, run_dir)
        if start > run.steps:  # on every process alike: the step is the main process's, broadcast
            raise ConfigError([f"run.steps: {run.steps} is below step {start} of the run directory's latest "
                               f"checkpoint ({run_dir / CHECKPOINT_DIR}); set run.steps to at least {start} to go "
                               f"on training, or choose another run.dir to start afresh"])
        problem = None
        if main_process and run_dir in _UNSAVED_CONFIGS:
            try:
                _save_config(_UNSAVED_CONFIGS.pop(run_dir), run_dir / RESOLVED_CONFIG)
            except UserError as exc:
                problem = exc
        distributed.raise_on_every_process(problem)
        if main_process:
            if start:
                print(f"resuming {run_dir} from step {start}", file=sys.stderr)
            loop.logger = RunLogger(run_dir, total_steps=run.steps, batch_size=run.batch_size,
                                    tensorboard=run.tensorboard, print_every=run.log_every, start_step=start)
        loop.fit()
        results = loop.evaluate(run.steps) if loop.evaluate is not None else {}
        if main_process:
            if results:
                loop.logger.log_eval(run.steps, results)
            loop.logger.write_results(results)
    finally:
        if loop.logger is not None:
            loop.logger.close()
        run_lock.release(run_dir)
    return results if main_process else {}


def _resume(loop: Loop, run_dir: Path) -> int:
    """`Loop.resume`, its errors saying what to do; a checkpoint that does not fit the model also names the
    config keys that changed."""
    try:
        return loop.resume()
    except (CheckpointError, CheckpointMismatch) as exc:
        if not distributed.is_main_process():
            raise  # the main process, which read the saved config, reports it
        if isinstance(exc, CheckpointError):
            raise CheckpointError(f"{exc}\nThe run cannot resume: move them out of {run_dir / CHECKPOINT_DIR} "
                                  f"to start it afresh, or choose another run.dir.") from None
        changed = _CONFIG_CHANGES.get(run_dir)
        cause = (f"The config changed since that run at {listed(changed)}: undo what changed the model to resume"
                 if changed else f"{run_dir / RESOLVED_CONFIG} did not change: the code that builds the model did")
        raise CheckpointMismatch(f"{exc}.\n{cause}, or choose a new run.dir to start afresh.") from None
