"""The run directory every task writes into, and the device a run asks for."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from vatt import config as cfglib
from vatt.registry import UserError

RESOLVED_CONFIG = "config.yaml"


def default_run_dir(config_path: Path | None) -> Path:
    return Path("runs") / (config_path.stem if config_path else "run")


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
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"run.device: {name!r} is not a device (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"run.device: {name!r} asked for, but this torch sees no CUDA device")
    return device
