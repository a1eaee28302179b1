"""The text pipeline against the authors' release (../shared/tf_reference, README §1.6 and §6): every token
and id of DMVR's WordTokenizer on 48 tricky strings, the evaluation path of three clips' captions, and the
release's vocabulary and word2vec.pkl formats."""
import json
import pickle

import numpy as np
import pytest
import torch

from tests.tf_reference import load_npz, reference_path
from vatt.data.captions import Caption
from vatt.data.clips import ClipSettings
from vatt.data.datasets.base import ClipEntry, SampleMaker
from vatt.data.text import PAD_ID, Vocabulary, WordTokenizer, split_words
from vatt.data.word2vec import load_word2vec, load_word2vec_pickle


@pytest.fixture(scope="module")
def cases():
    return load_npz("tokenizer_cases.npz")


@pytest.fixture(scope="module")
def vocabulary():
    return Vocabulary.load(reference_path("tokenizer_vocab.txt"))


def as_reference_writes_it(token):
    """The release's token bytes, with bytes that are not UTF-8 as \\xNN, as in `words_json`."""
    return token.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def test_the_release_vocabulary_loads_with_its_special_ids(cases, vocabulary):
    assert len(vocabulary) == int(cases["meta/vocab_size"]) == 111
    assert vocabulary.words[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert vocabulary.index["<pad>"] == int(cases["meta/pad_id"]) == PAD_ID
    assert vocabulary.unk_id == int(cases["meta/unk_id"]) == 3
    assert {"café", "école", "straße", "pad"} <= set(vocabulary.words)


def test_every_string_splits_into_the_release_tokens(cases):
    strings, words = json.loads(str(cases["strings_json"])), json.loads(str(cases["words_json"]))
    assert len(strings) == 48
    for text, expected in zip(strings, words):
        assert [as_reference_writes_it(t) for t in split_words(text)] == expected, repr(text)


def test_every_string_gets_the_release_ids(cases, vocabulary):
    strings = json.loads(str(cases["strings_json"]))
    tokenizer = WordTokenizer(vocabulary, max_words=int(cases["meta/max_num_tokens"]))
    ids = tokenizer.encode_batch(strings)  # [48, 16]
    expected = torch.from_numpy(cases["ids"].astype(np.int64))
    for text, row, want in zip(strings, ids, expected):
        assert row.tolist() == want.tolist(), repr(text)
    assert torch.equal(torch.stack([tokenizer.encode(s) for s in strings]), expected)


@pytest.mark.parametrize("clip", [0, 1, 2])
def test_a_clips_captions_at_evaluation_are_the_release_rows(cases, vocabulary, clip):
    """The datasets' evaluation path: untimed captions in file order, the first 5, missing ones all padding."""
    captions = json.loads(str(cases[f"pipeline/clip_{clip}/captions_json"]))
    count = int(cases["meta/max_num_sentences"])
    maker = SampleMaker(ClipSettings(train=False), name="reference", candidates=count,
                        tokenizer=WordTokenizer(vocabulary, max_words=int(cases["meta/max_num_tokens"])))
    entry = ClipEntry(path="unused.mp4", captions=tuple(Caption(text) for text in captions))
    text = maker._text(entry, (0.0, 3.2))["text"]  # [5, 16]
    assert text.tolist() == cases[f"pipeline/clip_{clip}/ids"].tolist()


def test_the_release_word2vec_pickle_loads_as_its_table(vocabulary):
    path = reference_path("word2vec_small.pkl")
    with path.open("rb") as handle:  # trusted reference data: a plain pickle.load is fine here
        expected = pickle.load(handle)["word_embeddings"]
    table = load_word2vec_pickle(path)
    assert table.shape == (111, 300) and table.dtype == np.float32
    assert np.array_equal(table, expected)
    assert torch.equal(load_word2vec(path, vocabulary), torch.from_numpy(expected))
