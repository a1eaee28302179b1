import pytest
import torch
from hypothesis import given, settings, strategies as st

from vatt.data.text import PAD_ID, UNK_ID, Vocabulary, WordTokenizer, build_vocabulary, split_words

WORDS = ["<pad>", "<unk>", "a", "red", "square", "moves", "left"]


def test_split_words_lowercases_deletes_punctuation_and_splits_on_whitespace():
    assert split_words("  A RED,  square!\tmoves\n(left). ") == ["a", "red", "square", "moves", "left"]
    assert split_words("don't stop-it") == ["dont", "stopit"]
    assert split_words("...!?") == []


def test_encode_maps_words_pads_with_zero_and_marks_unknown_words():
    tokenizer = WordTokenizer(WORDS, max_words=8)
    ids = tokenizer.encode("A red, purple square!")
    assert ids.dtype == torch.long and ids.shape == (8,)
    assert ids.tolist() == [2, 3, UNK_ID, 4, PAD_ID, PAD_ID, PAD_ID, PAD_ID]
    assert tokenizer.vocab_size == len(WORDS)


def test_encode_keeps_only_the_first_max_words():
    tokenizer = WordTokenizer(WORDS, max_words=3)
    assert tokenizer.encode("a red square moves left").tolist() == [2, 3, 4]
    assert tokenizer.encode("").tolist() == [0, 0, 0]


def test_encode_batch_matches_encode_row_by_row():
    tokenizer = WordTokenizer(WORDS, max_words=5)
    texts = ["a red square", "moves left quickly", ""]
    batch = tokenizer.encode_batch(texts)
    assert batch.shape == (3, 5) and batch.dtype == torch.long
    for row, text in zip(batch, texts):
        assert torch.equal(row, tokenizer.encode(text))
    assert tokenizer.encode_batch([]).shape == (0, 5)


def test_decode_inverts_encode_for_known_words():
    tokenizer = WordTokenizer(WORDS)
    assert tokenizer.decode(tokenizer.encode("A red square, moves LEFT")) == "a red square moves left"
    assert tokenizer.decode([2, 99, 0]) == "a <unk>"


def test_mapping_vocabulary_uses_given_ids_and_protects_reserved_ids():
    tokenizer = WordTokenizer({"red": 7, "left": 3}, max_words=4)
    assert tokenizer.encode("red blue left").tolist() == [7, UNK_ID, 3, PAD_ID]
    assert tokenizer.vocab_size == 8
    with pytest.raises(ValueError, match="reserved"):
        WordTokenizer({"red": 0})
    with pytest.raises(ValueError, match="non-negative"):
        WordTokenizer({"red": -2})


@pytest.mark.parametrize("words, match", [
    (["red", "left"], "must start with"),
    (["<pad>", "<unk>", "red", "red"], "unique"),
    (["<pad>", "<unk>", "two words"], "whitespace"),
    (["<pad>", "<unk>", ""], "non-empty"),
])
def test_vocabulary_rejects_malformed_word_lists(words, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary(words)


def test_tokenizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_words"):
        WordTokenizer(WORDS, max_words=0)
    with pytest.raises(ValueError, match="vocabulary"):
        WordTokenizer("red left")
    with pytest.raises(ValueError, match="texts"):
        WordTokenizer(WORDS).encode_batch("a red square")
    with pytest.raises(ValueError, match="text"):
        WordTokenizer(WORDS).encode(None)


def test_vocabulary_file_round_trip_is_one_word_per_line(tmp_path):
    vocabulary = Vocabulary(WORDS)
    path = tmp_path / "nested" / "vocab.txt"
    vocabulary.save(path)
    assert path.read_text(encoding="utf-8").splitlines() == WORDS
    loaded = Vocabulary.load(path)
    assert loaded == vocabulary and loaded.index["square"] == 4
    assert [p.name for p in path.parent.iterdir()] == ["vocab.txt"]  # no temporary left behind


def test_vocabulary_load_rejects_a_missing_file(tmp_path):
    with pytest.raises(ValueError, match="path"):
        Vocabulary.load(tmp_path / "missing.txt")


def test_build_vocabulary_orders_by_count_then_alphabetically():
    texts = ["b a c", "c b", "C, d!", "<pad> <unk>"]
    assert build_vocabulary(texts) == ["<pad>", "<unk>", "c", "b", "a", "d", "pad", "unk"]
    assert build_vocabulary(texts, max_size=4) == ["<pad>", "<unk>", "c", "b"]
    with pytest.raises(ValueError, match="max_size"):
        build_vocabulary(texts, max_size=1)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet="abcde ,.!", max_size=20), max_size=15), st.randoms(use_true_random=False))
def test_build_vocabulary_does_not_depend_on_text_order(texts, rnd):
    shuffled = list(texts)
    rnd.shuffle(shuffled)
    vocabulary = build_vocabulary(texts)
    assert vocabulary == build_vocabulary(shuffled)
    Vocabulary(vocabulary)  # always a valid vocabulary
    tokenizer = WordTokenizer(vocabulary)
    for text in texts:
        assert UNK_ID not in tokenizer.encode(text).tolist()
