"""One training run per run directory at a time: an exclusive ``flock`` on ``RUN_DIR/run.lock``.

Two runs sharing a directory would resume each other's checkpoints and prune each other's files, so the
process that writes the directory (the main process; under torchrun rank 0, the only one that touches it)
holds the lock from before it writes any of the run's files until its run ends, and a second run stops at
once with `RunDirectoryBusy`, naming the directory and the process that holds it.

The kernel drops a ``flock`` when the last descriptor of its open file goes, so a run killed outright (``kill
-9``, a crash) leaves no stale lock: the file stays, naming a process that is gone, and the next run takes it
over. Forked children (DataLoader workers) close their copy of the descriptor at once, so workers orphaned by
a killed run cannot keep the lock. The lock file sits beside ``checkpoints/``, outside of what checkpoint
discovery and pruning look at.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from vatt.errors import UserError

LOCK_NAME = "run.lock"

_HELD: dict[Path, int] = {}  # run directory (resolved) → the descriptor holding its lock, in this process


class RunDirectoryBusy(UserError):
    """Another run holds the run directory."""


def _close_in_child() -> None:
    for fd in _HELD.values():
        os.close(fd)  # the parent's lock stands: its own descriptor keeps the open file
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def hold(run_dir: str | os.PathLike) -> None:
    """Take the lock of ``run_dir`` for this process (again, if it holds it already); raises
    `RunDirectoryBusy` at once when another process holds it."""
    key = Path(run_dir).resolve()
    if key in _HELD:
        return
    fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunDirectoryBusy(f"run.dir: {run_dir} is in use by another run ({holder}); wait for it to finish "
                               f"or stop it, or choose another run.dir") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                              "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode() + b"\n", 0)
    _HELD[key] = fd


def release(run_dir: str | os.PathLike) -> None:
    """Give the lock of ``run_dir`` up, if this process holds it (the file stays, naming the last holder)."""
    fd = _HELD.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says: "pid 123 on host h since ..."."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {record['pid']} on host {record['host']}, since {record['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its pid yet"
