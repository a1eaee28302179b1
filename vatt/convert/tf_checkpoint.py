"""Reading TensorFlow 2 checkpoints (tensor bundles) without TensorFlow.

The authors released their weights as ``tf.train.Checkpoint`` files; converting them should not need a
TensorFlow install. A checkpoint ``<prefix>`` (``ckpt-500000``) is two kinds of file:

* ``<prefix>.index``: a LevelDB-format SSTable (uncompressed blocks of prefix-compressed keys, each block
  followed by a type byte and a masked crc32c, then a 48-byte footer ending in a magic number) mapping each key,
  in byte order, to a serialized protobuf. The empty key holds the ``BundleHeaderProto`` (number of shards,
  byte order); every other key a ``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c).
* ``<prefix>.data-SSSSS-of-NNNNN``: the shards; a tensor is ``size`` raw bytes at ``offset``, little-endian,
  C order. A string tensor is the varint64 length of each element, a 4-byte checksum of those lengths, then
  the bytes of the elements.

Only the protobuf fields needed here are decoded, by a hand-written reader of the wire format. Everything cheap
is checked on open (magic, block checksums, data files present, every tensor inside its file), so a damaged
download is reported before anything is converted; a tensor's own checksum is verified when it is read.

dtypes: bfloat16 tensors are widened to float32, which is exact (a bfloat16 is the upper half of a float32) and
avoids a numpy extension type; string tensors are object arrays of ``bytes`` (numpy's fixed-width ``S`` type
would drop trailing NUL bytes of serialized protos such as ``_CHECKPOINTABLE_OBJECT_GRAPH``).
"""
from __future__ import annotations

import codecs
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import google_crc32c
import numpy as np

from vatt.errors import UserError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_CHUNK = 16 << 20                      # bytes read (and checksummed) at a time
_DT_STRING, _DT_BFLOAT16 = 7, 14
# TensorFlow's DataType enum → the numpy dtype that `TFCheckpoint.read` returns.
_DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", _DT_STRING: "object",
           8: "complex64", 9: "int64", 10: "bool", _DT_BFLOAT16: "float32", 17: "uint16", 18: "complex128",
           19: "float16", 22: "uint32", 23: "uint64"}
_DATA_FILE = re.compile(r"^(.*)\.data-\d{5}-of-\d{5}$")
_STATE_LINE = re.compile(r'^\s*model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)


class CheckpointFormatError(UserError):
    """A path that is not a readable TensorFlow checkpoint; the message names the file and what is wrong."""


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint prefix meant by ``path``: a prefix, its ``.index`` or data file, or a checkpoint folder."""
    path = Path(path)
    if path.is_dir():
        return _latest_in(path)
    if path.name == "checkpoint" and path.is_file():
        return _latest_in(path.parent)
    if path.suffix == ".index" and path.is_file():
        return path.with_name(path.name[:-len(".index")])
    data_file = _DATA_FILE.match(path.name)
    if data_file and path.is_file():
        path = path.with_name(data_file[1])
    if _index_of(path).is_file():
        return path
    if not path.exists():
        missing = "" if path.suffix == ".index" else f" (nor does {_index_of(path)})"
        raise CheckpointFormatError(f"{path}: does not exist{missing}")
    raise CheckpointFormatError(f"{path}: not a TensorFlow checkpoint (expected a folder, a prefix such as "
                                f"ckpt-0 or its .index file)")


def _index_of(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def _latest_in(folder: Path) -> Path:
    """The prefix named by the folder's ``checkpoint`` state file, else the folder's only ``*.index``.

    A prefix that the state file names but that is gone is looked for in the folder itself, because released
    checkpoints are often copied elsewhere with the absolute paths of the machine that wrote them.
    """
    state = folder / "checkpoint"
    if state.is_file():
        line = _STATE_LINE.search(state.read_text(encoding="utf-8", errors="replace"))
        if line is None:
            raise CheckpointFormatError(f"{state}: no model_checkpoint_path line; not a TensorFlow checkpoint "
                                        f"state file")
        named = codecs.escape_decode(line[1].encode("utf-8"))[0].decode("utf-8", errors="replace")
        for prefix in (folder / named, folder / Path(named).name):
            if _index_of(prefix).is_file():
                return prefix
        raise CheckpointFormatError(f"{state}: names checkpoint {named!r}, but {_index_of(folder / named)} does "
                                    f"not exist")
    indexes = sorted(folder.glob("*.index"))
    if not indexes:
        raise CheckpointFormatError(f"{folder}: not a TensorFlow checkpoint (no ckpt-*.index, no 'checkpoint' "
                                    f"file)")
    if len(indexes) > 1:
        raise CheckpointFormatError(f"{folder}: holds {len(indexes)} checkpoints but no 'checkpoint' file naming "
                                    f"the latest; pass one prefix, e.g. {indexes[-1].with_suffix('')}")
    return indexes[0].with_suffix("")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``buf[pos:]`` and the position after it."""
    value = shift = 0
    while shift < 70:
        if pos >= len(buf):
            raise ValueError("a varint runs past the end of its record")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("a varint is longer than 10 bytes")


def _fields(message: bytes) -> dict[int, list[int | bytes]]:
    """A serialized protobuf message as field number → values: varint and fixed fields as ints, others bytes."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        wire = tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = int.from_bytes(message[pos:pos + width], "little"), pos + width
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = message[pos:pos + length], pos + length
        else:
            raise ValueError(f"protobuf wire type {wire} is not used by tensor bundles")
        if pos > len(message):
            raise ValueError("a protobuf field runs past the end of its message")
        fields.setdefault(tag >> 3, []).append(value)
    return fields


def _int(fields: dict[int, list[int | bytes]], number: int) -> int:
    """A scalar integer field (0 when absent; protobuf lets the last occurrence win)."""
    value = fields.get(number, [0])[-1]
    if not isinstance(value, int):
        raise ValueError(f"protobuf field {number} should be an integer")
    return value


def _messages(fields: dict[int, list[int | bytes]], number: int) -> list[dict[int, list[int | bytes]]]:
    """The embedded messages of a (repeated) message field."""
    values = fields.get(number, [])
    if not all(isinstance(value, bytes) for value in values):
        raise ValueError(f"protobuf field {number} should be a message")
    return [_fields(value) for value in values]


def _masked(crc: int) -> int:
    """The masked form in which LevelDB tables and tensor bundles store a crc32c."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _block(table: bytes, handle: bytes, pos: int) -> tuple[bytes, int]:
    """The contents of the block whose handle (offset, size varints) is at ``handle[pos:]``, checked."""
    offset, pos = _varint(handle, pos)
    size, pos = _varint(handle, pos)
    if offset + size + 5 > len(table) - _FOOTER_SIZE:
        raise ValueError(f"a block at bytes {offset}..{offset + size} lies outside the table")
    contents, kind = table[offset:offset + size], table[offset + size]
    if kind != 0:
        raise ValueError(f"a block is compressed (type {kind}); TensorFlow writes bundles uncompressed and this "
                         f"reader supports only that")
    stored_crc, = struct.unpack_from("<I", table, offset + size + 1)
    if _masked(google_crc32c.value(table[offset:offset + size + 1])) != stored_crc:     # contents and type byte
        raise ValueError(f"the block at byte {offset} fails its checksum")
    return contents, pos


def _block_records(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) records of a block; each key shares a stated prefix with the one before it."""
    if len(block) < 4:
        raise ValueError("a block is too short")
    end = len(block) - 4 - 4 * struct.unpack_from("<I", block, len(block) - 4)[0]   # restart points follow
    if end < 0:
        raise ValueError("a block's restart array is larger than the block")
    key, pos = b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + length > end:
            raise ValueError("a record runs past the end of its block")
        key = key[:shared] + block[pos:pos + unshared]
        yield key, block[pos + unshared:pos + unshared + length]
        pos += unshared + length


def _read_table(path: Path) -> dict[bytes, bytes]:
    """Every record of the SSTable at ``path``, in key order."""
    table = path.read_bytes()
    if len(table) < _FOOTER_SIZE or int.from_bytes(table[-8:], "little") != _TABLE_MAGIC:
        raise CheckpointFormatError(f"{path}: not an SSTable: bad magic (not the .index of a TensorFlow "
                                    f"checkpoint)")
    footer = table[-_FOOTER_SIZE:]
    try:
        _, pos = _block(table, footer, 0)                 # the metaindex block, empty in tensor bundles
        index, _ = _block(table, footer, pos)
        return {key: value for _, handle in _block_records(index)
                for key, value in _block_records(_block(table, handle, 0)[0])}
    except ValueError as exc:
        raise CheckpointFormatError(f"{path}: corrupt index: {exc}") from None


@dataclass(frozen=True)
class _Entry:
    """Where one tensor is, from its ``BundleEntryProto``."""
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int
    sliced: bool                                  # a partitioned variable: its data is under other keys

    @classmethod
    def parse(cls, message: bytes) -> _Entry:
        fields = _fields(message)
        dims = [dim for shape in _messages(fields, 2) for dim in _messages(shape, 2)]   # TensorShapeProto.dim
        return cls(dtype=_int(fields, 1), shape=tuple(_int(dim, 1) for dim in dims), shard=_int(fields, 3),
                   offset=_int(fields, 4), size=_int(fields, 5), crc32c=_int(fields, 6), sliced=7 in fields)


class TFCheckpoint:
    """The tensors of one checkpoint, read on demand; like ``tf.train.load_checkpoint``."""

    def __init__(self, prefix: Path, entries: dict[str, _Entry], shards: list[Path]):
        self.prefix = prefix
        self._entries = entries
        self._shards = shards

    @classmethod
    def open(cls, path: str | os.PathLike) -> TFCheckpoint:
        """Open the checkpoint meant by ``path`` (see `resolve_checkpoint`), checking its files' structure."""
        prefix = resolve_checkpoint(path)
        index = _index_of(prefix)
        records = _read_table(index)
        if b"" not in records:
            raise CheckpointFormatError(f"{index}: no bundle header (the record under the empty key)")
        try:
            header = _fields(records.pop(b""))
            count, big_endian = _int(header, 1), _int(header, 2)
            # Keys of a partitioned variable's slices start with a NUL byte; the variable is listed by its name.
            entries = {key.decode("utf-8"): _Entry.parse(value) for key, value in records.items()
                       if not key.startswith(b"\0")}
        except ValueError as exc:
            raise CheckpointFormatError(f"{index}: corrupt index: {exc}") from None
        if big_endian:
            raise CheckpointFormatError(f"{index}: a big-endian checkpoint; only little-endian ones are supported")
        shards = [Path(f"{prefix}.data-{i:05d}-of-{count:05d}") for i in range(count)]
        for shard in shards:
            if not shard.is_file():
                raise CheckpointFormatError(f"{index}: its data file {shard} is missing")
        sizes = [shard.stat().st_size for shard in shards]
        for name, entry in entries.items():
            if entry.sliced:
                continue
            if entry.shard >= count:
                raise CheckpointFormatError(f"{index}: tensor {name!r} is in shard {entry.shard}, but the "
                                            f"checkpoint has {count}")
            end = entry.offset + entry.size
            if end > sizes[entry.shard]:
                raise CheckpointFormatError(f"{shards[entry.shard]}: truncated: tensor {name!r} needs bytes "
                                            f"{entry.offset}..{end} but the file has {sizes[entry.shard]}")
        return cls(prefix, entries, shards)

    def variables(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Name → (numpy dtype of `read`'s result, shape), in key order; an unsupported dtype is 'tf_dtype_N'."""
        return {name: (_DTYPES.get(e.dtype, f"tf_dtype_{e.dtype}"), e.shape) for name, e in self._entries.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def read(self, name: str) -> np.ndarray:
        """A fresh array holding tensor ``name``, its checksum verified; KeyError when there is no such tensor."""
        entry = self._entries[name]
        where = f"{_index_of(self.prefix)}: tensor {name!r}"
        if entry.sliced:
            raise CheckpointFormatError(f"{where} is a partitioned variable (stored in slices), not supported")
        if entry.dtype not in _DTYPES:
            raise CheckpointFormatError(f"{where} has TensorFlow dtype {entry.dtype}, not supported")
        shard, span = self._shards[entry.shard], f"(bytes {entry.offset}..{entry.offset + entry.size})"
        with open(shard, "rb") as file:
            file.seek(entry.offset)
            try:
                array, crc = (_read_strings if entry.dtype == _DT_STRING else _read_numbers)(file, entry)
            except ValueError as exc:
                raise CheckpointFormatError(f"{shard}: tensor {name!r} {span} is corrupt: {exc}") from None
        if _masked(crc) != entry.crc32c:
            raise CheckpointFormatError(f"{shard}: tensor {name!r} {span} fails its crc32c check; the file is "
                                        f"corrupt")
        return array


def _read_exactly(file: BinaryIO, size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise ValueError("the file ends inside the tensor (was it truncated after opening?)")
    return data


def _read_numbers(file: BinaryIO, entry: _Entry) -> tuple[np.ndarray, int]:
    """A numeric tensor and the crc32c of its bytes, streamed in chunks into the array (no second copy)."""
    stored = np.dtype("uint16" if entry.dtype == _DT_BFLOAT16 else _DTYPES[entry.dtype])
    expected = math.prod(entry.shape) * stored.itemsize
    if entry.size != expected:
        raise ValueError(f"its entry says {entry.size} bytes; {stored} of shape {entry.shape} takes {expected}")
    array = np.empty(entry.shape, stored)
    flat = array.reshape(-1).view(np.uint8)
    checksum = google_crc32c.Checksum()
    for start in range(0, entry.size, _CHUNK):
        chunk = _read_exactly(file, min(_CHUNK, entry.size - start))
        checksum.update(chunk)
        flat[start:start + len(chunk)] = np.frombuffer(chunk, np.uint8)
    if entry.dtype == _DT_BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array, int.from_bytes(checksum.digest(), "big")


def _read_strings(file: BinaryIO, entry: _Entry) -> tuple[np.ndarray, int]:
    """A string tensor and its crc32c, which TensorFlow takes over each length as a little-endian uint32 (uint64
    beyond 4 GiB), not over the varints, followed by the stored length checksum and the elements' bytes."""
    data = _read_exactly(file, entry.size)
    lengths, pos = [], 0
    for _ in range(math.prod(entry.shape)):
        length, pos = _varint(data, pos)
        lengths.append(length)
    if pos + 4 + sum(lengths) != entry.size:
        raise ValueError(f"its element lengths add up to {pos + 4 + sum(lengths)} bytes, not {entry.size}")
    checksum = google_crc32c.Checksum(b"".join(struct.pack("<I" if n < 1 << 32 else "<Q", n) for n in lengths))
    checksum.update(data[pos:])
    array = np.empty(len(lengths), dtype=object)
    pos += 4
    for i, length in enumerate(lengths):
        array[i], pos = data[pos:pos + length], pos + length
    return array.reshape(entry.shape), int.from_bytes(checksum.digest(), "big")
