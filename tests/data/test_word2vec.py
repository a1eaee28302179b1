"""word2vec vectors from the binary and the text format into a vocabulary's table, and the release's pickle."""
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vatt.data.text import Vocabulary
from vatt.data.word2vec import load_word2vec, load_word2vec_pickle

VOCAB = Vocabulary(["<pad>", "<unk>", "apple", "pie", "zebra", "new"])
FILE_WORDS = {"apple": 1.0, "pie": 2.0, "New": 3.0, "new": 4.0, "York": 5.0}  # "zebra" is absent


def vectors(dim):
    return {word: np.full(dim, value, dtype=np.float32) + np.arange(dim, dtype=np.float32) / 100
            for word, value in FILE_WORDS.items()}


def write_binary(path, dim):
    with open(path, "wb") as handle:
        handle.write(f"{len(FILE_WORDS)} {dim}\n".encode())
        for word, vector in vectors(dim).items():
            handle.write(word.encode() + b" " + vector.astype("<f4").tobytes() + b"\n")


def write_text(path, dim, header=True):
    lines = [f"{len(FILE_WORDS)} {dim}"] if header else []
    lines += [word + " " + " ".join(f"{v:.6f}" for v in vector) for word, vector in vectors(dim).items()]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("form", ["binary", "text", "text without header"])
def test_vectors_land_on_their_words_and_missing_ones_are_counted(tmp_path, caplog, form):
    dim, path = 8, tmp_path / "vectors"
    if form == "binary":
        write_binary(path, dim)
    else:
        write_text(path, dim, header=form == "text")
    caplog.set_level(logging.WARNING, logger="vatt.data")
    table = load_word2vec(path, VOCAB, dim=dim, seed=3)
    expected = vectors(dim)
    assert table.shape == (6, dim) and table.dtype == torch.float32
    torch.testing.assert_close(table[2], torch.from_numpy(expected["apple"]))
    torch.testing.assert_close(table[3], torch.from_numpy(expected["pie"]))
    torch.testing.assert_close(table[5], torch.from_numpy(expected["new"]))  # the exact case beats "New"
    assert torch.equal(table[0], torch.zeros(dim))  # padding
    assert "2 of 6 vocabulary words are not in the file" in caplog.text  # <unk> and zebra
    again = load_word2vec(path, VOCAB, dim=dim, seed=3)
    assert torch.equal(table, again) and not torch.equal(table[4], load_word2vec(path, VOCAB, dim=dim, seed=4)[4])


def test_a_cased_word_fills_in_for_a_missing_lower_case_one(tmp_path):
    path = tmp_path / "vectors.bin"
    write_binary(path, 4)
    table = load_word2vec(path, Vocabulary(["<pad>", "<unk>", "york"]), dim=4)
    torch.testing.assert_close(table[2], torch.from_numpy(vectors(4)["York"]))


def test_wrong_dimension_and_cut_files_are_errors(tmp_path):
    path = tmp_path / "vectors.bin"
    write_binary(path, 4)
    with pytest.raises(ValueError, match="4-d vectors, expected 300"):
        load_word2vec(path, VOCAB)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="cut short"):
        load_word2vec(path, VOCAB, dim=4)
    with pytest.raises(ValueError, match="does not exist"):
        load_word2vec(tmp_path / "absent.bin", VOCAB)


class Build:
    """Unpickles to `callable(*args)`: what a malicious pickle does."""

    def __init__(self, callable_, *args):
        self.callable, self.args = callable_, args

    def __reduce__(self):
        return self.callable, self.args


def pickled(path, content, protocol=4):
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_the_release_pickle_form_loads_as_a_float32_table(tmp_path, protocol):
    table = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    path = pickled(tmp_path / "word2vec.pkl", {"word_embeddings": table, "note": ["kept", 1, 2.5, b"x", (None,)],
                                               "count": np.int64(4)}, protocol)
    loaded = load_word2vec_pickle(path)
    assert loaded.dtype == np.float32 and loaded.flags.writeable and np.array_equal(loaded, table)
    words = ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert torch.equal(load_word2vec(path, words, dim=3), torch.from_numpy(table))  # row 0 as it is
    with pytest.raises(ValueError, match=r"is \[4, 3\], expected \[5, 3\]"):
        load_word2vec(path, words + ["red"], dim=3)


def test_a_float64_table_is_cast_to_float32(tmp_path):
    path = pickled(tmp_path / "word2vec.pkl", {"word_embeddings": np.eye(3)})
    assert load_word2vec_pickle(path).dtype == np.float32


@pytest.mark.parametrize("make", [
    lambda marker: Build(os.system, f"touch {marker}"),
    lambda marker: Build(exec, f"open({str(marker)!r}, 'w').close()"),
    lambda marker: {"word_embeddings": np.zeros((2, 2), np.float32), "x": Build(Path.touch, marker)},
])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, make):
    marker = tmp_path / "MARKER"
    path = pickled(tmp_path / "word2vec.pkl", make(marker))
    with pytest.raises(ValueError, match=r"word2vec\.pkl: refuses to load: the pickle would build "
                                         r"(posix\.system|builtins\.exec|pathlib\.\w*\.?touch)"):
        load_word2vec_pickle(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the same file, loaded as the release does, does run the code
    assert marker.exists()


@pytest.mark.parametrize("content, match", [
    ({"word_embeddings": np.array([[1.0, "x"]], dtype=object)}, "refuses to load: the pickle would build an array "
                                                                  "of object dtype"),
    ({"word_embeddings": np.zeros(2, np.dtype([("a", object), ("b", np.float32)]))}, "object dtype"),
    ([np.zeros((2, 2), np.float32)], "holds a list, expected a dict with the key 'word_embeddings'"),
    ({"embeddings": np.zeros((2, 2))}, r"holds a dict with keys \['embeddings'\], expected a dict"),
    ({"word_embeddings": np.zeros(4, np.float32)}, "'word_embeddings' is a 1-d float32 array, expected a 2-d float"),
    ({"word_embeddings": np.zeros((2, 2), np.int32)}, "is a 2-d int32 array"),
    ({"word_embeddings": [[0.0, 1.0]]}, "is a list"),
])
def test_pickles_of_another_structure_are_errors_that_say_what_was_found(tmp_path, content, match):
    path = pickled(tmp_path / "word2vec.pkl", content)
    with pytest.raises(ValueError, match=match) as error:
        load_word2vec_pickle(path)
    assert str(path) in str(error.value)


def test_a_truncated_or_missing_pickle_is_a_clear_error(tmp_path):
    path = pickled(tmp_path / "word2vec.pkl", {"word_embeddings": np.ones((50, 8), np.float32)})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"word2vec\.pkl: is not a readable pickle"):
        load_word2vec_pickle(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="is not a readable pickle"):
        load_word2vec_pickle(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_word2vec_pickle(tmp_path / "absent.pkl")
