"""Word-level text tokenizer and vocabulary, tokenizing exactly as the authors' release (DMVR's WordTokenizer).

The release's rules, not Python's, decide every id (the reference data of ../shared/tf_reference checks all of
them), because a word table trained on the release's ids is only meaningful with the same ids:

1. the 32 ASCII punctuation characters are deleted and nothing else (so "don't" becomes "dont" and "left,"
   becomes "left", while "it’s" keeps its curly apostrophe);
2. ASCII letters are lower-cased and nothing else ("CAFÉ" becomes "cafÉ", which no lower-case vocabulary
   holds); there is no Unicode normalisation;
3. the rest is split on the Unicode White_Space characters (`WHITESPACE`), never on U+200B or U+001C-U+001F
   as Python's `str.split()` would. The release's splitter (tensorflow-text 2.15) ends a token one byte
   before the end of the whitespace character that follows it, so a token followed by a multi-byte
   whitespace character (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000)
   keeps that character's UTF-8 bytes but the last: "non\\u00a0breaking" gives b"non\\xc2" and "breaking".
   Such a token is not UTF-8 text and so is never a vocabulary word. Here it is a str whose partial bytes
   are surrogate escapes (`token.encode("utf-8", "surrogateescape")` gives the release's bytes);
4. each token is looked up by its exact string; a missing one gets the vocabulary's `<unk>` id;
5. the first `max_words` (16 in VATT) are kept, right-padded with the `<pad>` id 0.

A vocabulary file is UTF-8 text, one entry per line, either `word` or `id word` (one space between), lines
stripped of surrounding whitespace first. The id of an entry is its 0-based line number: an `id word` line
must carry exactly that id, because the word table has one row per entry and a gap or a reordering would
leave rows that no word owns. `<pad>` must be id 0 (the model treats id 0 as padding) and `<unk>` must be
present, at any id: the release's vocabulary has `<pad>`, `<bos>`, `<eos>`, `<unk>` at ids 0-3 (`<bos>` and
`<eos>` are ordinary entries here, VATT uses neither), the vocabularies vatt builds have `<pad>`, `<unk>` at
ids 0 and 1, then the corpus' words.
"""

from __future__ import annotations

import os
import re
import string
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
PAD_ID = 0
UNK_ID = 1  # the unknown id of the vocabularies vatt builds; a loaded one's is `Vocabulary.unk_id`
RESERVED = (PAD_TOKEN, UNK_TOKEN)  # the first entries of the vocabularies vatt builds
DEFAULT_MAX_SIZE = 2**16

# Unicode's White_Space property (ICU's, which the release splits on).
WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                       + "".join(map(chr, range(0x2000, 0x200B))))

_CLEAN = str.maketrans({**{c: None for c in string.punctuation},
                        **{c: c.lower() for c in string.ascii_uppercase}})
_SPACE_CLASS = "".join(sorted(WHITESPACE))
# A token and the whitespace character right after it, if any: that character decides the quirk of rule 3.
_TOKEN = re.compile(f"([^{re.escape(_SPACE_CLASS)}]+)([{re.escape(_SPACE_CLASS)}]?)")


def split_words(text: str) -> list[str]:
    """The release's tokens of `text` (rules 1-3 of the module docstring), all of them."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}: {text!r}")
    return [token + _kept_bytes(after) for token, after in _TOKEN.findall(text.translate(_CLEAN))]


def _kept_bytes(whitespace: str) -> str:
    """What a token keeps of the whitespace character after it: all of its UTF-8 bytes but the last, as
    surrogate escapes (nothing for an ASCII character or the end of the text)."""
    return whitespace.encode("utf-8")[:-1].decode("utf-8", "surrogateescape")


def _is_text(word: str) -> bool:
    """Whether `word` is UTF-8-encodable text: a token holding part of a character's bytes (or a lone
    surrogate) is not, so no vocabulary file can hold it and it is never looked up successfully."""
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _word_problem(word: object) -> str | None:
    """Why `word` cannot be a vocabulary entry, or None when it can."""
    if not isinstance(word, str):
        return f"is a {type(word).__name__}, not a str"
    if not word:
        return "is empty"
    if word != word.strip() or not WHITESPACE.isdisjoint(word):
        return f"{word!r} contains whitespace, so no token can match it"
    if not _is_text(word):
        return f"{word!r} is not valid Unicode text"
    return None


def build_vocabulary(texts: Iterable[str], max_size: int = DEFAULT_MAX_SIZE) -> list[str]:
    """Id-ordered word list: `RESERVED`, then words by descending count.

    Ties are broken alphabetically so the result does not depend on the order of `texts`. At most
    `max_size` entries are returned (reserved tokens included), so every id is below `max_size`. Tokens that
    are not text (rule 3's partial bytes) are left out: the release never finds them in a vocabulary.
    """
    if max_size < len(RESERVED):
        raise ValueError(f"max_size must be at least {len(RESERVED)}, got {max_size}")
    # Punctuation deletion turns "<pad>" in a text into the ordinary word "pad": no clash with the reserved.
    counts = Counter(word for text in texts for word in split_words(text) if _is_text(word))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return list(RESERVED) + [word for word, _ in ranked[: max_size - len(RESERVED)]]


class Vocabulary:
    """An id-ordered list of words with a reverse index and a plain-text file form.

    `words[i]` is the word of id i; `words[0]` must be `<pad>` and `<unk>` must be one of them (`unk_id`).
    """

    def __init__(self, words: Sequence[str]):
        words = list(words)
        for i, word in enumerate(words):
            problem = _word_problem(word)
            if problem is not None:
                raise ValueError(f"word {i} {problem}")
        index = {word: i for i, word in enumerate(words)}
        if len(index) != len(words):
            duplicates = sorted(w for w, c in Counter(words).items() if c > 1)
            raise ValueError(f"words must be unique, got duplicates {duplicates[:5]!r}")
        if words[:1] != [PAD_TOKEN]:
            raise ValueError(f"id 0 must be {PAD_TOKEN!r} (the model treats id 0 as padding), got "
                             f"{words[:1]!r}; build_vocabulary() produces a valid list")
        if UNK_TOKEN not in index:
            raise ValueError(f"words must include {UNK_TOKEN!r}, the id of words outside the vocabulary")
        self.words = words
        self.index = index
        self.unk_id = index[UNK_TOKEN]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def save(self, path: str | os.PathLike) -> None:
        """Write the `word` form atomically: a reader never sees a half-written vocabulary."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write("\n".join(self.words) + "\n")
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a file of `word` or `id word` lines; errors name the file and the (1-based) line."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path must be an existing vocabulary file, got {str(path)!r}")
        lines = path.read_bytes().split(b"\n")
        if lines[-1] == b"":  # the last line's terminator
            lines.pop()
        words = [_entry(path, number, line) for number, line in enumerate(lines, 1)]
        _check_unique(path, words)
        try:
            return cls(words)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _entry(path: Path, number: int, raw: bytes) -> str:
    """The word of line `number` (1-based), whose id must be `number` - 1."""
    where = f"{path}, line {number}"
    try:
        line = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: is not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start} "
                         f"of the line)") from None
    given, space, word = line.partition(" ")
    if not (space and given.isascii() and given.isdigit()):
        given, word = None, line
    problem = _word_problem(word)
    if problem is not None:
        raise ValueError(f"{where}: the word {problem}; a line is `word` or `id word`, got {line!r}")
    if given is not None and int(given) != number - 1:
        raise ValueError(f"{where}: has id {int(given)}, expected {number - 1}: ids must be the 0-based line "
                         f"numbers, since the word table has one row per id (no gaps, no reordering)")
    return word


def _check_unique(path: Path, words: Sequence[str]) -> None:
    first: dict[str, int] = {}
    for number, word in enumerate(words, 1):
        if word in first:
            raise ValueError(f"{path}, line {number}: {word!r} is already on line {first[word]}; words must be unique")
        first[word] = number


class WordTokenizer:
    """Turns sentences into fixed-length id rows: [max_words] int64, padded with 0, unknown words `unk_id`.

    `vocabulary` is an id-ordered word list (see `Vocabulary`), a `Vocabulary`, or a mapping word -> id in
    which id 0 belongs to no ordinary word; a mapping without `<unk>` gives unknown words `UNK_ID`, which
    then belongs to no ordinary word either.
    """

    def __init__(self, vocabulary: Sequence[str] | Mapping[str, int] | Vocabulary, max_words: int = 16):
        if not isinstance(max_words, int) or max_words < 1:
            raise ValueError(f"max_words must be a positive int, got {max_words!r}")
        self.max_words = max_words
        if isinstance(vocabulary, Sequence) and not isinstance(vocabulary, str):
            vocabulary = Vocabulary(vocabulary)
        if isinstance(vocabulary, Vocabulary):
            self._ids = dict(vocabulary.index)
            self.unk_id = vocabulary.unk_id
        elif isinstance(vocabulary, Mapping):
            self.unk_id = vocabulary.get(UNK_TOKEN, UNK_ID)
            self._ids = self._checked_mapping(vocabulary, self.unk_id)
        else:
            raise ValueError(f"vocabulary must be a word list, a Vocabulary or a dict, got {type(vocabulary).__name__}")
        self.vocab_size = max(max(self._ids.values(), default=0), self.unk_id) + 1
        self._words = {i: w for w, i in self._ids.items()}

    @staticmethod
    def _checked_mapping(mapping: Mapping[str, int], unk_id: int) -> dict[str, int]:
        reserved = {PAD_ID: PAD_TOKEN, unk_id: UNK_TOKEN}
        ids = {}
        for word, i in mapping.items():
            problem = _word_problem(word)
            if problem is not None:
                raise ValueError(f"vocabulary word {problem}")
            if isinstance(i, bool) or not isinstance(i, int) or i < 0:
                raise ValueError(f"vocabulary ids must be non-negative ints, got {word!r} -> {i!r}")
            if (word in reserved.values() or i in reserved) and reserved.get(i) != word:
                raise ValueError(f"vocabulary id {PAD_ID} is reserved for {PAD_TOKEN!r} and id {unk_id} for "
                                 f"{UNK_TOKEN!r}, got {word!r} -> {i}")
            ids[word] = i
        return ids

    def word_ids(self, text: str) -> list[int]:
        """Ids of the kept words, without padding."""
        return [self._ids.get(word, self.unk_id) for word in split_words(text)[: self.max_words]]

    def encode(self, text: str) -> torch.Tensor:
        ids = self.word_ids(text)
        row = torch.zeros(self.max_words, dtype=torch.long)  # [max_words], PAD_ID == 0
        row[: len(ids)] = torch.tensor(ids, dtype=torch.long)
        return row

    def encode_batch(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise ValueError(f"texts must be a sequence of strings, got a single str {texts!r}")
        rows = torch.zeros(len(texts), self.max_words, dtype=torch.long)  # [N, max_words]
        for n, text in enumerate(texts):
            ids = self.word_ids(text)
            rows[n, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return rows

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Words of a row, padding dropped; ids no word owns read as "<unk>"."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return " ".join(self._words.get(i, UNK_TOKEN) for i in ids if i != PAD_ID)
