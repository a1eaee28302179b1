"""Checkpoints that survive a crash at any moment: atomic writes, a ``latest`` pointer, keep-N pruning.

Layout under a run directory::

    checkpoints/step_00001000.pt   one torch.save'd state dict per saved step
    checkpoints/latest             text file naming the newest complete checkpoint

Every file is first written to a hidden temporary file in the same directory, flushed and fsync'ed, then
renamed over its final name (``os.replace`` is atomic within one filesystem), and the directory is fsync'ed
so the rename itself is durable. A crash therefore leaves either the old file or the new one, never half of
one; ``load_latest`` falls back to scanning the step files when ``latest`` is missing or damaged.

A save that the filesystem refuses (a full disk, a quota, a directory made read-only) removes its temporary
file and ends in `CheckpointWriteError`, naming the step, the file and the checkpoint still intact. A run that
cannot resume ends in one-screen errors too: `CheckpointError` when no checkpoint loads, `CheckpointMismatch`
when the newest does not fit the model (`check_fits`).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from vatt.errors import UserError
from vatt.files import OUT_OF_ROOM, TMP_SUFFIX, atomic_write, refusal
from vatt.messages import listed, reason
from vatt.ranges import require

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LATEST_NAME = "latest"
_STEP_FILE = re.compile(r"^step_(\d{8,})\.pt$")
SHOWN_FAILURES = 5  # unloadable checkpoints a CheckpointError names


class CheckpointError(UserError):
    """Checkpoints exist in a run directory but none of them can be loaded."""


class CheckpointWriteError(UserError):
    """The filesystem refused a checkpoint (no space, a quota, no permission); the earlier ones are intact."""


class CheckpointMismatch(UserError):
    """The checkpoint a run would resume from holds other parameters, or other shapes, than its model."""


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint of ``step`` lives inside run directory ``directory``."""
    return Path(directory) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def save_checkpoint(directory: str | os.PathLike, step: int, state: dict, keep: int = 3) -> Path:
    """Save ``state`` as the checkpoint of ``step``, point ``latest`` at it, keep the newest ``keep``.

    Returns the path of the written checkpoint.
    """
    require(0, whole=True, step=step)
    require(1, whole=True, keep=keep)
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict, got {type(state).__name__}")
    target = checkpoint_path(directory, step)
    pointer = target.parent / LATEST_NAME
    for path, write in ((target, lambda f: torch.save(state, f)),
                        (pointer, lambda f: f.write(f"{target.name}\n".encode()))):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, write)
        except Exception as exc:
            refused = _os_error(exc)
            if refused is None:
                raise
            raise _write_error(refused, step, path) from None
    _prune(target.parent, keep, protected=target.name)
    return target


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: torch.save reports a failed write as a RuntimeError of its zip writer,
    raised while handling the OSError of the file."""
    while exc is not None and not isinstance(exc, OSError):
        exc = exc.__cause__ or exc.__context__
    return exc


def _write_error(exc: OSError, step: int, path: Path) -> CheckpointWriteError:
    ckpt_dir = path.parent
    candidates = [_read_latest(ckpt_dir), *(p for _, p in _step_files(ckpt_dir))]  # what a rerun resumes from
    intact = next((p for p in candidates if p is not None and p != path and p.is_file()), None)
    kept = (f"the checkpoint of step {int(_STEP_FILE.match(intact.name).group(1))} ({intact}) is intact"
            if intact is not None else "no earlier checkpoint was saved")
    fix = ("free some space (or lower run.keep_checkpoints)" if exc.errno in OUT_OF_ROOM
           else f"make {ckpt_dir} writable")
    return CheckpointWriteError(f"{refusal(exc)} while writing step {step} to {path}; {kept}. "
                                f"To continue, {fix} and run the same command: it resumes from there.")


def _step_files(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file, newest first."""
    found = []
    for path in ckpt_dir.iterdir():
        match = _STEP_FILE.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def _prune(ckpt_dir: Path, keep: int, protected: str) -> None:
    for _, path in _step_files(ckpt_dir)[keep:]:
        if path.name != protected:
            path.unlink(missing_ok=True)
    # Temporary files still here belong to saves that were killed before their rename.
    for path in ckpt_dir.glob(f".*{TMP_SUFFIX}"):
        path.unlink(missing_ok=True)


def _read_latest(ckpt_dir: Path) -> Path | None:
    """The checkpoint ``latest`` names, or None (with a warning) when it is missing or damaged."""
    pointer = ckpt_dir / LATEST_NAME
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read checkpoint pointer %s (%s); scanning for checkpoints instead", pointer, exc)
        return None
    if not _STEP_FILE.match(name):
        log.warning("checkpoint pointer %s holds %r, not a checkpoint name; scanning for checkpoints instead",
                    pointer, name[:80])
        return None
    return ckpt_dir / name


def load_latest(directory: str | os.PathLike, map_location: Any = "cpu", *,
                weights_only: bool = True) -> tuple[int, dict] | None:
    """Load the newest complete checkpoint of a run: ``(step, state)``, or None when there is none yet.

    ``latest`` is trusted first; when it is missing, unreadable or names a file that does not load, the step
    files are tried newest first, each failure logged as a warning. ``weights_only`` is passed to
    ``torch.load``: with True the state may hold tensors, numbers, strings and containers of them (what
    model and optimizer state dicts are); pass False only for checkpoints from a trusted source that
    pickled other objects.

    Raises CheckpointError when checkpoint files exist but none of them loads.
    """
    ckpt_dir = Path(directory) / CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        return None
    candidates = [path for _, path in _step_files(ckpt_dir)]
    named = _read_latest(ckpt_dir)
    if named is not None:
        if named in candidates:
            candidates.remove(named)
            candidates.insert(0, named)
        else:
            log.warning("checkpoint pointer %s names %s, which does not exist; scanning for checkpoints instead",
                        ckpt_dir / LATEST_NAME, named)
    failures = []
    for path in candidates:
        try:
            state = torch.load(path, map_location=map_location, weights_only=weights_only)
        except Exception as exc:  # a damaged file can fail in zip, pickle or storage code, each differently
            log.warning("checkpoint %s does not load (%s); trying an older one", path, reason(exc))
            failures.append(f"{path.name}: {reason(exc)}")
            continue
        if not isinstance(state, dict):
            log.warning("checkpoint %s holds a %s, not a state dict; trying an older one", path,
                        type(state).__name__)
            failures.append(f"{path.name}: holds a {type(state).__name__}, not a dict")
            continue
        return int(_STEP_FILE.match(path.name).group(1)), state
    if failures:
        shown = "\n  ".join(failures[:SHOWN_FAILURES])
        more = f"\n  ... and {len(failures) - SHOWN_FAILURES} more" if len(failures) > SHOWN_FAILURES else ""
        raise CheckpointError(f"no checkpoint in {ckpt_dir} loads:\n  {shown}{more}")
    return None


def model_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The shape of every entry of ``model``'s state dict, named as its checkpoints name them (DDP's wrapper
    left out; FSDP's sharded parameters give their full shapes)."""
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return {name: tuple(value.shape) for name, value in inner.state_dict().items() if torch.is_tensor(value)}


def check_fits(shapes: dict[str, tuple[int, ...]], state: dict, directory: str | os.PathLike, step: int) -> None:
    """Raise `CheckpointMismatch` unless the checkpoint ``state`` of ``step`` holds exactly the model entries
    of ``shapes`` (`model_shapes`) with the same shapes, naming those that differ."""
    saved = {name: tuple(value.shape) for name, value in state.get("model", {}).items() if torch.is_tensor(value)}
    differ = [f"{name} {list(saved[name])} -> {list(shape)}" for name, shape in shapes.items()
              if name in saved and saved[name] != shape]
    problems = [f"{len(names)} {what}: {listed(names)}" for what, names in (
        ("parameters have other shapes (checkpoint -> model)", differ),
        ("parameters of the model are missing from the checkpoint", [n for n in shapes if n not in saved]),
        ("parameters of the checkpoint are not in the model", [n for n in saved if n not in shapes])) if names]
    if problems:
        raise CheckpointMismatch(f"the checkpoint of step {step} ({checkpoint_path(directory, step)}) does not fit "
                                 f"this model, so the run cannot resume: " + ". ".join(problems))
