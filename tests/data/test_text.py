"""The word tokenizer's rules (the release's, see vatt.data.text) and the vocabulary file forms."""
import itertools
import string

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vatt.data import synthetic
from vatt.data import text as text_module
from vatt.data.text import PAD_ID, UNK_ID, WHITESPACE, Vocabulary, WordTokenizer, build_vocabulary, split_words

WORDS = ["<pad>", "<unk>", "a", "red", "square", "moves", "left"]
RELEASE_LAYOUT = ["<pad>", "<bos>", "<eos>", "<unk>", "non", "breaking", "café"]


def python_rule(text):
    """vatt's former rule (Python's lower() and split()), which the release's equals on plain ASCII text."""
    return text.lower().translate(str.maketrans("", "", string.punctuation)).split()


def test_split_words_lowercases_deletes_punctuation_and_splits_on_whitespace():
    assert split_words("  A RED,  square!\tmoves\n(left). ") == ["a", "red", "square", "moves", "left"]
    assert split_words("don't stop-it") == ["dont", "stopit"]
    assert split_words("...!?") == []


def test_only_ascii_letters_are_lowered_and_only_ascii_punctuation_deleted():
    assert split_words("CAFÉ École STRASSE") == ["cafÉ", "École", "strasse"]
    assert split_words("it’s “quoted” ¿qué?") == ["it’s", "“quoted”", "¿qué"]


def test_splits_on_unicode_white_space_only():
    assert len(WHITESPACE) == 25
    assert split_words("a\x1fb zero\u200bwidth") == ["a\x1fb", "zero\u200bwidth"]  # Python would split a\x1fb
    assert split_words("a\x0bb\x0cc\r\nd") == ["a", "b", "c", "d"]


@pytest.mark.parametrize("text, tokens", [
    ("non\xa0breaking", [b"non\xc2", b"breaking"]),  # U+00A0 is C2 A0: the token keeps C2
    ("ideographic\u3000space", [b"ideographic\xe3\x80", b"space"]),  # U+3000 is E3 80 80
    ("a\u3000\u3000b", [b"a\xe3\x80", b"b"]),  # only the character right after a token counts
    ("a \xa0b", [b"a", b"b"]),  # an ASCII separator came first
    ("\u2028lead and trail\u2028", [b"lead", b"and", b"trail\xe2\x80"]),
    ("x\x85y", [b"x\xc2", b"y"]),
])
def test_a_token_before_a_multi_byte_space_keeps_all_but_its_last_byte(text, tokens):
    assert [t.encode("utf-8", "surrogateescape") for t in split_words(text)] == tokens


def test_such_a_token_is_unknown_and_never_enters_a_vocabulary():
    vocabulary = Vocabulary(build_vocabulary(["non\xa0breaking space", "non space"]))
    assert vocabulary.words == ["<pad>", "<unk>", "space", "breaking", "non"]  # "non" counted once
    assert WordTokenizer(vocabulary).word_ids("non\xa0breaking non") == [UNK_ID, 3, 4]


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(max_codepoint=127, exclude_characters="\x1c\x1d\x1e\x1f")))
def test_plain_ascii_text_splits_as_python_would(text):
    assert split_words(text) == python_rule(text)


def all_synthetic_captions():
    motions = [p for *_, phrases in synthetic.DIRECTIONS.values() for p in phrases]
    shapes = [name for names in synthetic.SHAPES.values() for name in names]
    for sentence, subject, colour, shape, motion in itertools.product(
            synthetic.SENTENCES, synthetic.SUBJECTS, synthetic.COLOURS, shapes, motions):
        yield sentence.format(subject=subject.format(colour=colour, shape=shape), motion=motion)


def test_the_synthetic_captions_and_vocabulary_keep_their_ids(monkeypatch):
    """The quickstart's data is plain ASCII: the release's rules give the ids vatt's former rule gave."""
    vocabulary = synthetic.caption_vocabulary()
    tokenizer = WordTokenizer(vocabulary)
    captions = list(all_synthetic_captions())
    assert all(split_words(c) == python_rule(c) for c in captions)
    assert all(UNK_ID not in tokenizer.word_ids(c) for c in captions[::97])
    monkeypatch.setattr(text_module, "split_words", python_rule)
    assert synthetic.caption_vocabulary() == vocabulary


def test_encode_maps_words_pads_with_zero_and_marks_unknown_words():
    tokenizer = WordTokenizer(WORDS, max_words=8)
    ids = tokenizer.encode("A red, purple square!")
    assert ids.dtype == torch.long and ids.shape == (8,)
    assert ids.tolist() == [2, 3, UNK_ID, 4, PAD_ID, PAD_ID, PAD_ID, PAD_ID]
    assert tokenizer.vocab_size == len(WORDS) and tokenizer.unk_id == UNK_ID


def test_the_unknown_id_is_the_vocabularys_own():
    tokenizer = WordTokenizer(RELEASE_LAYOUT, max_words=4)
    assert tokenizer.unk_id == 3 and Vocabulary(RELEASE_LAYOUT).unk_id == 3
    assert tokenizer.encode("non breaking CAFÉ").tolist() == [4, 5, 3, PAD_ID]
    assert tokenizer.decode([4, 3, 99, 0]) == "non <unk> <unk>"


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
    assert WordTokenizer({"<unk>": 3, "red": 1}).word_ids("red blue") == [1, 3]
    with pytest.raises(ValueError, match="reserved"):
        WordTokenizer({"red": 0})
    with pytest.raises(ValueError, match="reserved"):
        WordTokenizer({"<unk>": 3, "red": 3})
    with pytest.raises(ValueError, match="non-negative"):
        WordTokenizer({"red": -2})


@pytest.mark.parametrize("words, match", [
    (["red", "left"], "id 0 must be '<pad>'"),
    (["<unk>", "<pad>", "red"], "id 0 must be '<pad>'"),
    (["<pad>", "red"], "must include '<unk>'"),
    (["<pad>", "<unk>", "red", "red"], "unique"),
    (["<pad>", "<unk>", "two words"], "whitespace"),
    (["<pad>", "<unk>", "no\u3000break"], "whitespace"),
    (["<pad>", "<unk>", ""], "empty"),
    (["<pad>", "<unk>", "non\udcc2"], "not valid Unicode"),
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


def test_a_word_python_would_split_survives_the_round_trip(tmp_path):
    vocabulary = Vocabulary(["<pad>", "<unk>", "a\x1fb", "zero\u200bwidth"])
    vocabulary.save(tmp_path / "vocab.txt")
    assert Vocabulary.load(tmp_path / "vocab.txt") == vocabulary


def test_vocabulary_file_accepts_the_id_word_form_stripped_lines_and_crlf(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes("0 <pad>\r\n  1 <bos>\n2 <eos>\n<unk>\t\n4 café\n5 2021\n314\n".encode())
    vocabulary = Vocabulary.load(path)
    assert vocabulary.words == ["<pad>", "<bos>", "<eos>", "<unk>", "café", "2021", "314"]
    assert vocabulary.unk_id == 3


@pytest.mark.parametrize("content, match", [
    (b"<pad>\n<unk>\ncaf\xe9\n", r"vocab\.txt, line 3: is not valid UTF-8 \(byte 0xe9"),
    (b"<pad>\n<unk>\nred\nblue\nred\n", r"vocab\.txt, line 5: 'red' is already on line 3"),
    (b"<pad>\n<unk>\n\nred\n", r"vocab\.txt, line 3: the word is empty"),
    (b"<pad>\n<unk>\nnew york\n", r"vocab\.txt, line 3: the word 'new york' contains whitespace"),
    (b"0 <pad>\n1 <unk>\n2  red\n", r"vocab\.txt, line 3: the word ' red' contains whitespace"),
    (b"0 <pad>\n1 <unk>\n3 red\n", r"vocab\.txt, line 3: has id 3, expected 2: .*no gaps"),
    (b"1 <unk>\n0 <pad>\n", r"vocab\.txt, line 1: has id 1, expected 0"),
    (b"<unk>\n<pad>\n", r"vocab\.txt: id 0 must be '<pad>'"),
    (b"<pad>\nred\n", r"vocab\.txt: words must include '<unk>'"),
    (b"", r"vocab\.txt: id 0 must be '<pad>'"),
])
def test_malformed_vocabulary_files_name_the_file_and_line(tmp_path, content, match):
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        Vocabulary.load(path)


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
@given(st.lists(st.text(alphabet="abcdeÉ ,.!\xa0\u3000", max_size=20), max_size=15),
       st.randoms(use_true_random=False))
def test_build_vocabulary_does_not_depend_on_text_order(texts, rnd):
    shuffled = list(texts)
    rnd.shuffle(shuffled)
    vocabulary = build_vocabulary(texts)
    assert vocabulary == build_vocabulary(shuffled)
    Vocabulary(vocabulary)  # always a valid vocabulary
    tokenizer = WordTokenizer(vocabulary)
    for sentence in texts:  # every word is known but those ending at a multi-byte space (the release's quirk)
        for i, word in zip(tokenizer.word_ids(sentence), split_words(sentence)):
            assert (i == UNK_ID) == (not is_text(word))


def is_text(word):
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
