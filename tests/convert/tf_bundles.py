"""Hand-built TensorFlow tensor bundles, written from the format description (no TensorFlow): small
checkpoints of the cases the reference checkpoints lack, for the reader's and the converter's tests."""
from __future__ import annotations

import struct
from pathlib import Path

import google_crc32c
import numpy as np

DATA = ".data-00000-of-00001"

def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def block(records: list[tuple[bytes, bytes]]) -> bytes:
    """Prefix-compressed records with a restart point (a full key) every second record."""
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(records):
        shared = 0
        if i % 2:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    return bytes(out) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))


def table(records: list[tuple[bytes, bytes]], per_block: int, block_type: int = 0) -> bytes:
    out = bytearray()

    def add(contents: bytes) -> bytes:
        handle = varint(len(out)) + varint(len(contents))
        trailer = bytes([block_type])
        out.extend(contents + trailer + struct.pack("<I", masked_crc(contents + trailer)))
        return handle

    index = [(chunk[-1][0], add(block(chunk)))
             for chunk in (records[i:i + per_block] for i in range(0, len(records), per_block))]
    handles = add(block([])) + add(block(index))
    return bytes(out) + handles.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)


def string_bytes(values: list[bytes]) -> tuple[bytes, int]:
    """A string tensor's stored bytes and the crc32c TensorFlow records for them."""
    lengths = b"".join(varint(len(v)) for v in values)
    as_uint32 = b"".join(struct.pack("<I", len(v)) for v in values)
    stored = lengths + struct.pack("<I", masked_crc(as_uint32)) + b"".join(values)
    return stored, masked_crc(as_uint32 + stored[len(lengths):])


def write_bundle(prefix: Path, tensors: dict[str, tuple[int, tuple[int, ...], bytes, int]], per_block: int = 2,
                 block_type: int = 0) -> None:
    """``tensors``: name → (TF dtype enum, shape, stored bytes, masked crc32c), in one shard."""
    data, records = bytearray(), [(b"", field(1, 1) + field(3, field(1, 1)))]
    for name in sorted(tensors):
        dtype, shape, stored, crc = tensors[name]
        dims = b"".join(field(2, field(1, size)) for size in shape)
        entry = (field(1, dtype) + field(2, dims) + field(4, len(data)) + field(5, len(stored))
                 + varint(6 << 3 | 5) + struct.pack("<I", crc))
        records.append((name.encode(), entry))
        data += stored
    Path(f"{prefix}{DATA}").write_bytes(bytes(data))
    Path(f"{prefix}.index").write_bytes(table(records, per_block, block_type))


def numeric(dtype: int, array: np.ndarray) -> tuple[int, tuple[int, ...], bytes, int]:
    raw = array.tobytes()
    return dtype, array.shape, raw, masked_crc(raw)
