"""vatt.convert.tf_checkpoint: the real TF 2.15 checkpoints of ../shared/tf_reference read bit for bit, damaged
copies of them refused with a message naming the file, and small hand-built bundles for what those checkpoints
lack (other dtypes, string vectors, an index of several blocks, compressed blocks)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.convert.tf_bundles import DATA, numeric, string_bytes, write_bundle
from tests.tf_reference import load_npz, reference_path
from vatt.convert.tf_checkpoint import CheckpointFormatError, TFCheckpoint, resolve_checkpoint
from vatt.errors import UserError

ENTRIES = {"tx_fac_small": 364, "ut_fac_small": 244, "vit_cls_small": 93, "wat_cls_small": 89}


def listed_variables(name: str) -> dict[str, tuple[int, ...]]:
    """``*_variables.txt``: what ``tf.train.list_variables`` gave for the checkpoint."""
    lines = reference_path(f"{name}_variables.txt").read_text().splitlines()
    rows = (line.split("\t") for line in lines if line and not line.startswith("#"))
    return {key: tuple(int(size) for size in shape.split(",") if size) for key, shape in rows}


@pytest.mark.parametrize("name", ENTRIES)
def test_variables_equal_tf_list_variables(name):
    checkpoint = TFCheckpoint.open(reference_path(f"{name}_ckpt"))
    expected = listed_variables(name)
    assert len(expected) == ENTRIES[name] == len(checkpoint)
    assert {key: shape for key, (_, shape) in checkpoint.variables().items()} == expected
    assert list(checkpoint) == sorted(expected)
    assert "_CHECKPOINTABLE_OBJECT_GRAPH" in checkpoint and "model" not in checkpoint


@pytest.mark.parametrize("name", ENTRIES)
def test_every_tensor_reads_bit_for_bit(name):
    checkpoint = TFCheckpoint.open(reference_path(f"{name}_ckpt"))
    weights = load_npz(f"{name}_weights.npz")
    variables = checkpoint.variables()
    for key, expected in weights.items():
        actual = checkpoint.read(key)
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), key
        assert actual.tobytes() == expected.tobytes(), key
        assert variables[key] == (expected.dtype.name, expected.shape)
    for key in checkpoint:                      # the optimizer's variables and slots verify too
        assert checkpoint.read(key).shape == variables[key][1]
    step = checkpoint.read("optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE")
    assert (step.dtype, step.shape, int(step)) == (np.int64, (), 0)
    graph = checkpoint.read("_CHECKPOINTABLE_OBJECT_GRAPH")
    assert graph.dtype == object and graph.shape == () and isinstance(graph.item(), bytes)
    assert b"optimizer" in graph.item()


def test_folder_prefix_index_and_data_paths_resolve_alike():
    folder = reference_path("vit_cls_small_ckpt")
    prefix = folder / "ckpt-0"
    paths = (folder, str(folder), folder / "checkpoint", prefix, folder / "ckpt-0.index", folder / f"ckpt-0{DATA}")
    for path in paths:
        assert resolve_checkpoint(path) == prefix
    assert TFCheckpoint.open(folder / "ckpt-0.index").prefix == prefix


@pytest.fixture
def copy(tmp_path) -> Path:
    """A writable copy of the smallest reference checkpoint, in tmp_path."""
    folder = tmp_path / "ckpt"
    shutil.copytree(reference_path("wat_cls_small_ckpt"), folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def refused(path, *fragments: str) -> str:
    """The message with which opening ``path`` fails; it must name every fragment (a file, the problem)."""
    with pytest.raises(CheckpointFormatError) as caught:
        TFCheckpoint.open(path)
    message = str(caught.value)
    assert isinstance(caught.value, UserError)
    for fragment in fragments:
        assert str(fragment) in message, message
    return message


def test_not_a_checkpoint(tmp_path):
    refused(tmp_path, tmp_path, "no ckpt-*.index, no 'checkpoint' file")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    refused(text, text, "not a TensorFlow checkpoint")
    refused(tmp_path / "ckpt-9", tmp_path / "ckpt-9", "does not exist")
    (tmp_path / "checkpoint").write_text("nothing here\n")
    refused(tmp_path, tmp_path / "checkpoint", "model_checkpoint_path")


def test_index_without_its_data_file(copy):
    (copy / f"ckpt-0{DATA}").unlink()
    refused(copy, copy / "ckpt-0.index", f"its data file {copy / f'ckpt-0{DATA}'} is missing")


def test_truncated_data_file_is_reported_on_open(copy):
    data = copy / f"ckpt-0{DATA}"
    size = data.stat().st_size
    with open(data, "r+b") as file:
        file.truncate(size - 100)
    message = refused(copy, data, "truncated: tensor '", f"but the file has {size - 100}")
    assert message.count("\n") <= 1


def test_flipped_byte_fails_the_tensor_crc(copy):
    key = "model/layer_with_weights-0/_base/pos_embedding_lookup/temporal_position_embeddings/embeddings/" \
          ".ATTRIBUTES/VARIABLE_VALUE"
    expected = load_npz("wat_cls_small_weights.npz")[key]
    data = copy / f"ckpt-0{DATA}"
    content = bytearray(data.read_bytes())
    start = content.find(expected.tobytes())
    assert start >= 0 and content.find(expected.tobytes(), start + 1) < 0
    content[start + expected.nbytes // 2] ^= 0x10
    data.write_bytes(bytes(content))
    checkpoint = TFCheckpoint.open(copy)
    with pytest.raises(CheckpointFormatError, match="crc32c") as caught:
        checkpoint.read(key)
    assert str(data) in str(caught.value) and repr(key) in str(caught.value)
    other = next(name for name in load_npz("wat_cls_small_weights.npz") if name != key)
    checkpoint.read(other)                      # the rest of the file still reads


def test_garbage_or_damaged_index(copy):
    index = copy / "ckpt-0.index"
    content = index.read_bytes()
    index.write_bytes(bytes(range(256)) * 8)
    refused(copy, index, "not an SSTable: bad magic")
    index.write_bytes(b"")
    refused(copy, index, "bad magic")
    damaged = bytearray(content)
    damaged[100] ^= 0x01                        # inside a key of the only data block: its checksum fails
    index.write_bytes(bytes(damaged))
    refused(copy, index, "corrupt index", "checksum")


def test_state_file_naming_a_missing_prefix(copy):
    (copy / "checkpoint").write_text('model_checkpoint_path: "ckpt-7"\nall_model_checkpoint_paths: "ckpt-7"\n')
    refused(copy, copy / "checkpoint", "'ckpt-7'", copy / "ckpt-7.index")


def test_state_file_paths_absolute_or_from_another_machine(copy, tmp_path):
    (copy / "checkpoint").write_text(f'model_checkpoint_path: "{copy / "ckpt-0"}"\n')
    assert resolve_checkpoint(copy) == copy / "ckpt-0"
    (copy / "checkpoint").write_text('model_checkpoint_path: "/gone/run/ckpt-0"\n')   # the folder was copied
    assert resolve_checkpoint(copy) == copy / "ckpt-0"


def test_several_checkpoints_without_state_file(copy):
    (copy / "checkpoint").unlink()
    assert resolve_checkpoint(copy) == copy / "ckpt-0"
    shutil.copy(copy / "ckpt-0.index", copy / "ckpt-1.index")
    refused(copy, copy, "2 checkpoints", "pass one prefix")


def test_dtypes_strings_and_a_multi_block_index(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"f16": (19, rng.normal(size=(3, 2)).astype(np.float16)), "f64": (2, rng.normal(size=5)),
              "i8": (6, np.arange(-4, 4, dtype=np.int8)), "i16": (5, np.arange(6, dtype=np.int16).reshape(2, 3)),
              "i32": (3, np.int32(-7).reshape(())), "u8": (4, np.arange(250, 256, dtype=np.uint8)),
              "bool": (10, np.array([True, False, True])), "empty": (1, np.zeros((0, 4), np.float32))}
    tensors = {f"layer/{name}/.ATTRIBUTES/VARIABLE_VALUE": numeric(dtype, array)
               for name, (dtype, array) in arrays.items()}
    widened = rng.normal(size=(4, 3)).astype(np.float32)
    widened = (widened.view(np.uint32) & 0xFFFF0000).view(np.float32)          # exactly a bfloat16
    tensors["layer/bf16"] = numeric(14, (widened.view(np.uint32) >> 16).astype("<u2"))
    strings = [b"proto\0", b"", b"\xff" * 300]
    tensors["words"] = (7, (3,), *string_bytes(strings))
    write_bundle(tmp_path / "ckpt-3", tensors, per_block=2)
    checkpoint = TFCheckpoint.open(tmp_path)
    assert list(checkpoint) == sorted(tensors)
    for name, (dtype, array) in arrays.items():
        key = f"layer/{name}/.ATTRIBUTES/VARIABLE_VALUE"
        read = checkpoint.read(key)
        assert read.dtype == array.dtype and read.shape == array.shape and read.tobytes() == array.tobytes()
        assert checkpoint.variables()[key] == (array.dtype.name, array.shape)
    bf16 = checkpoint.read("layer/bf16")
    assert bf16.dtype == np.float32 and np.array_equal(bf16, widened)
    words = checkpoint.read("words")
    assert words.dtype == object and words.shape == (3,) and list(words) == strings
    assert checkpoint.variables()["words"] == ("object", (3,))


def test_compressed_blocks_are_refused(tmp_path):
    write_bundle(tmp_path / "ckpt-0", {"w": numeric(1, np.ones(3, np.float32))}, block_type=1)
    refused(tmp_path, tmp_path / "ckpt-0.index", "compressed")


def test_entry_size_disagreeing_with_its_shape(tmp_path):
    dtype, _, raw, crc = numeric(1, np.ones(3, np.float32))
    write_bundle(tmp_path / "ckpt-0", {"w": (dtype, (4,), raw, crc)})
    with pytest.raises(CheckpointFormatError, match=r"ckpt-0\.data-00000-of-00001: tensor 'w' .* takes 16"):
        TFCheckpoint.open(tmp_path).read("w")
