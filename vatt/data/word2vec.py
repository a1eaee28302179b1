"""Loading word2vec vectors into a vocabulary's embedding table, without gensim.

Both standard formats are read. Binary (GoogleNews-vectors-negative300.bin): a text header "N D\\n", then
per word its UTF-8 bytes, a space, D little-endian float32 and usually a newline. Text: an optional "N D"
header line, then "word v1 ... vD" per line. The file is streamed once and only the vocabulary's words are
kept, so a 3.6 GB file needs no more memory than the table. A vocabulary word absent from the file matches a
differently-cased file word if there is one (the first seen); the rest keep a seeded random initialisation,
with the spread of the loaded vectors, and their number is logged. Row 0 (padding) is all zeros.

The release's own `word2vec.pkl` is a third form: a pickle of a dict whose "word_embeddings" is the whole
[vocabulary size, 300] table, row i the vector of id i of the release's vocabulary file. A pickle can run any
code while it loads, so it is read by an unpickler that can build nothing but numpy arrays of plain
(non-object) dtypes and Python's containers, strings and numbers; anything else is refused before it is built.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Sequence

import numpy as np
import torch

try:  # numpy >= 2 names its core numpy._core; pickles written with numpy 1 still say numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

from vatt.data.text import PAD_ID, Vocabulary

log = logging.getLogger("vatt.data")


def _header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _binary_vectors(handle: BinaryIO, count: int, dim: int, path: Path) -> Iterator[tuple[str, np.ndarray]]:
    width = 4 * dim
    for n in range(count):
        word = bytearray()
        while True:
            byte = handle.read(1)
            if not byte:
                raise ValueError(f"{path}: ends after {n} of the {count} vectors its header announces")
            if byte == b" ":
                break
            if byte != b"\n" or word:  # the newline ending the previous vector
                word += byte
        data = handle.read(width)
        if len(data) != width:
            raise ValueError(f"{path}: vector {n} ({word.decode('utf-8', 'replace')!r}) is cut short")
        yield word.decode("utf-8", "replace"), np.frombuffer(data, dtype="<f4")


def _text_vectors(handle: BinaryIO, dim: int | None, path: Path, first: bytes | None) -> Iterator[tuple[str, np.ndarray]]:
    lines = handle if first is None else _chain(first, handle)
    for number, line in enumerate(lines, 1):
        parts = line.rstrip().split(b" ")
        if len(parts) < 2:
            continue
        if dim is None:
            dim = len(parts) - 1
        if len(parts) != dim + 1:
            raise ValueError(f"{path}: line {number} has {len(parts) - 1} values, expected {dim}")
        yield parts[0].decode("utf-8", "replace"), np.asarray(parts[1:], dtype=np.float32)


def _chain(first: bytes, rest: BinaryIO) -> Iterator[bytes]:
    yield first
    yield from rest


def _is_binary(handle: BinaryIO, dim: int) -> bool:
    """After a header: the text format continues with printable numbers, the binary one with raw floats."""
    position = handle.tell()
    sample = handle.read(min(4 * dim + 64, 4096))
    handle.seek(position)
    try:
        fields = sample.split(b"\n", 1)[0].decode("ascii").split()
    except UnicodeDecodeError:
        return True
    try:
        [float(x) for x in fields[1:]]
    except ValueError:
        return True
    return len(fields) != dim + 1


class _Refused(ValueError):
    """A pickle asked for something the safe unpickler does not build."""


def _plain_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """numpy.dtype, refusing object dtypes: an object array's items would be arbitrary pickled objects."""
    dtype = np.dtype(spec, align, copy)
    if dtype.hasobject:
        raise _Refused(f"an array of object dtype ({dtype})")
    return dtype


def _plain_frombuffer(buffer: Any, dtype: Any, shape: tuple[int, ...], order: str) -> np.ndarray:
    """numpy's protocol-5 array constructor, refusing object dtypes."""
    return _numeric._frombuffer(buffer, _plain_dtype(dtype), shape, order)


# Everything a pickle of numpy arrays names, under numpy 1's and numpy 2's module names.
_ARRAY_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    **{(core + ".multiarray", "_reconstruct"): _multiarray._reconstruct for core in ("numpy.core", "numpy._core")},
    **{(core + ".multiarray", "scalar"): _multiarray.scalar for core in ("numpy.core", "numpy._core")},
    **{(core + ".numeric", "_frombuffer"): _plain_frombuffer for core in ("numpy.core", "numpy._core")},
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler whose only globals are numpy's array constructors (containers need none)."""

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        found = _ARRAY_GLOBALS.get((module, name))
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found


def load_word2vec_pickle(path: str | Path) -> np.ndarray:
    """The "word_embeddings" table of the release's word2vec.pkl, as a [V, D] float32 array, without running
    any code from the file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"word2vec file {str(path)!r} does not exist")
    with path.open("rb") as handle:
        try:
            content = _ArrayUnpickler(handle).load()
        except _Refused as exc:
            raise ValueError(f"{path}: refuses to load: the pickle would build {exc}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                OverflowError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: is not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(content, dict) or "word_embeddings" not in content:
        raise ValueError(f"{path}: holds {_described(content)}, expected a dict with the key 'word_embeddings'")
    table = content["word_embeddings"]
    if not isinstance(table, np.ndarray) or table.ndim != 2 or table.dtype.kind != "f":
        raise ValueError(f"{path}: 'word_embeddings' is {_described(table)}, expected a 2-d float array")
    return np.require(table, dtype=np.float32, requirements=["C", "W"])  # a writable copy if it was read-only


def _described(value: Any) -> str:
    """What a pickle held, for an error message."""
    if isinstance(value, dict):
        return f"a dict with keys {list(value)[:8]!r}"
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-d {value.dtype} array"
    return f"a {type(value).__name__}"


def _pickled_table(path: Path, words: Sequence[str], dim: int) -> torch.Tensor:
    """The release's table as it is: its rows are already the vocabulary's ids, row 0 included."""
    table = load_word2vec_pickle(path)
    if table.shape != (len(words), dim):
        raise ValueError(f"{path}: 'word_embeddings' is {list(table.shape)}, expected [{len(words)}, {dim}] "
                         f"(one row per vocabulary id); is it the table of this vocabulary?")
    return torch.from_numpy(table)


def load_word2vec(path: str | Path, vocabulary: Vocabulary | Sequence[str], *, dim: int = 300,
                  seed: int = 0) -> torch.Tensor:
    """The [len(vocabulary), dim] float32 table of `vocabulary`'s words, read from a word2vec file (binary,
    text, or the release's .pkl, whose rows must be the vocabulary's ids)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"word2vec file {str(path)!r} does not exist")
    words = vocabulary.words if isinstance(vocabulary, Vocabulary) else list(vocabulary)
    if path.suffix.lower() in (".pkl", ".pickle"):
        return _pickled_table(path, words, dim)
    index = {word: i for i, word in enumerate(words)}
    lowered = {word.lower(): i for i, word in enumerate(words)}
    table = np.zeros((len(words), dim), dtype=np.float32)
    exact = np.zeros(len(words), dtype=bool)
    found = np.zeros(len(words), dtype=bool)
    with path.open("rb") as handle:
        first = handle.readline()
        header = _header(first)
        if header is not None and header[1] != dim:
            raise ValueError(f"{path}: holds {header[1]}-d vectors, expected {dim}")
        if header is not None and _is_binary(handle, dim):
            vectors = _binary_vectors(handle, header[0], dim, path)
        else:
            vectors = _text_vectors(handle, dim, path, None if header is not None else first)
        for word, vector in vectors:
            if len(vector) != dim:
                raise ValueError(f"{path}: {word!r} has {len(vector)} values, expected {dim}")
            i = index.get(word)
            if i is not None:
                table[i], exact[i], found[i] = vector, True, True
                continue
            i = lowered.get(word.lower())
            if i is not None and not found[i]:  # a cased match until an exact one turns up
                table[i], found[i] = vector, True
    spread = float(table[found].std()) if found.any() else 1.0
    found[PAD_ID] = True  # padding stays zero
    missing = ~found
    rng = np.random.default_rng(seed)
    table[missing] = rng.normal(0.0, spread, (int(missing.sum()), dim))
    table[PAD_ID] = 0.0
    log.warning("word2vec %s: %d of %d vocabulary words are not in the file and keep a random initialisation "
                "(seed %d)", path, int(missing.sum()), len(words), seed)
    return torch.from_numpy(table)
