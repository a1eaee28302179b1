"""Files written so that a crash at any moment leaves either the old content or the complete new one, and text
files read so that one that is not UTF-8 is an error naming the line.

The content goes to a hidden temporary file in the same folder (``.NAME.XXXX.tmp``), is flushed and fsync'ed,
then renamed over the final name (``os.replace`` is atomic within one filesystem), and the folder is fsync'ed so
that the rename itself is durable. A write that fails, or is interrupted, removes its temporary file.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

TMP_SUFFIX = ".tmp"  # of the temporary files, which a reader of the folder may clear up after a crash
OUT_OF_ROOM = (errno.ENOSPC, errno.EDQUOT)  # the refusals that freeing space cures: a full disk, a full quota


def refusal(exc: OSError) -> str:
    """What the filesystem said when it refused a write, to go mid-sentence ("no space left on device")."""
    what = exc.strerror or str(exc) or type(exc).__name__
    return what[:1].lower() + what[1:]


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Create or replace ``path`` so that readers only ever see the old or the complete new content.

    ``write`` receives a binary file object; streaming into it (rather than handing over bytes) keeps a large
    checkpoint from being held twice in memory.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # Also on KeyboardInterrupt: a half-written temporary file is never worth keeping.
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Without this the rename may still be only in the page cache when the machine loses power.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # platforms that cannot open directories (Windows) have no directory fsync to do
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (certain network mounts) refuse fsync on directories; the rename stands
    finally:
        os.close(fd)


def utf8_lines(path: Path) -> Iterator[str]:
    """The lines of a text file, line endings kept (what `csv` reads); a line that is not UTF-8 is a
    ValueError naming the file, the line and the column."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{number}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                                 f"{exc.start + 1}); save the file as UTF-8") from None
