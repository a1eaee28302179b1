"""The run directory every task writes into, and the device a run asks for."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from vatt import config as cfglib
from vatt.engine import distributed
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
