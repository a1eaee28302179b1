"""Reading the index files of a dataset layout (CSV lists, line lists, JSON annotations) so that a malformed
one is a ValueError naming the file and the line: bytes that are not UTF-8, a header without a needed column,
a row with the wrong number of fields, a value that is not a number, JSON that does not parse or lacks a key.
The registry turns that ValueError into the one-screen error of the config node that named the dataset.
"""

from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from vatt.files import utf8_lines


def require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    return path


def text_lines(path: str | Path, what: str) -> Iterator[tuple[str, str]]:
    """("file:line", the line stripped) for each line of a text file that is not blank."""
    path = require_file(path, what)
    for number, line in enumerate(utf8_lines(path), 1):
        if line.strip():
            yield f"{path}:{number}", line.strip()


def csv_rows(path: str | Path, what: str, *, comment: str | None = None, **dialect: Any
             ) -> Iterator[tuple[str, list[str]]]:
    """("file:line", fields) for each CSV row that is not blank; lines starting with `comment` are skipped."""
    path = require_file(path, what)
    # a comment line becomes a blank one, so the reader's line count stays the file's
    lines = ("\n" if comment and line.startswith(comment) else line for line in utf8_lines(path))
    reader = csv.reader(lines, **dialect)
    try:
        for fields in reader:
            if any(field.strip() for field in fields):
                yield f"{path}:{reader.line_num}", fields
    except csv.Error as exc:
        raise ValueError(f"{path}:{reader.line_num}: not a CSV row ({exc})") from None


def csv_records(path: str | Path, what: str, columns: Sequence[str] = (), **dialect: Any
                ) -> Iterator[tuple[str, dict[str, str]]]:
    """("file:line", {column: value}) for each row under a header that names at least `columns`."""
    rows = csv_rows(path, what, **dialect)
    where, header = next(rows, (f"{path}:1", None))
    if header is None:
        raise ValueError(f"{where}: the file is empty; its header must name {', '.join(columns)}")
    header = [name.strip() for name in header]
    missing = [name for name in columns if name not in header]
    if missing:
        raise ValueError(f"{where}: the header must name {', '.join(columns)}; {', '.join(missing)} missing "
                         f"from {header}")
    for where, fields in rows:
        if len(fields) != len(header):
            raise ValueError(f"{where}: {len(fields)} fields where the header has {len(header)} "
                             f"({', '.join(header)}); quote a value that holds a comma")
        yield where, dict(zip(header, fields))


def json_document(path: str | Path, what: str) -> Any:
    path = require_file(path, what)
    text = "".join(utf8_lines(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def json_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON file whose top level is an object."""
    document = json_document(path, what)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: the top level must be a JSON object, got a {type(document).__name__}")
    return document


@contextmanager
def reading(where: str):
    """Whatever a malformed entry breaks while it is read (a key or field it lacks, a number that is not one,
    a list where a mapping belongs) becomes a ValueError that names where the entry is."""
    try:
        yield
    except KeyError as exc:
        raise ValueError(f"{where}: no {exc.args[0]!r} here") from None
    except IndexError:
        raise ValueError(f"{where}: too few fields") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
