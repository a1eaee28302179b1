"""word2vec vectors from the binary and the text format into a vocabulary's table."""
import logging

import numpy as np
import pytest
import torch

from vatt.data.text import Vocabulary
from vatt.data.word2vec import load_word2vec

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
