"""Word-level text tokenizer and vocabulary, following the VATT text input rules.

A sentence is lower-cased, ASCII punctuation is deleted (so "don't" becomes "dont" and "left," becomes
"left"), the rest is split on whitespace and the first `max_words` words are kept. Id 0 is padding and
id 1 stands for any word outside the vocabulary; real words start at id 2.

The vocabulary file is plain UTF-8 text, one word per line, the line index being the word's id, so line 0 is
"<pad>" and line 1 is "<unk>".
"""

from __future__ import annotations

import os
import string
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
PAD_ID = 0
UNK_ID = 1
RESERVED = (PAD_TOKEN, UNK_TOKEN)
DEFAULT_MAX_SIZE = 2**16

_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


def split_words(text: str) -> list[str]:
    """Lower-case, delete ASCII punctuation and split on whitespace."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}: {text!r}")
    return text.lower().translate(_DELETE_PUNCTUATION).split()


def build_vocabulary(texts: Iterable[str], max_size: int = DEFAULT_MAX_SIZE) -> list[str]:
    """Id-ordered word list: the two reserved tokens, then words by descending count.

    Ties are broken alphabetically so the result does not depend on the order of `texts`. At most
    `max_size` entries are returned (reserved tokens included), so every id is below `max_size`.
    """
    if max_size < len(RESERVED):
        raise ValueError(f"max_size must be at least {len(RESERVED)}, got {max_size}")
    # Punctuation deletion turns "<pad>" in a text into the ordinary word "pad": no clash with the reserved.
    counts = Counter(word for text in texts for word in split_words(text))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return list(RESERVED) + [word for word, _ in ranked[: max_size - len(RESERVED)]]


class Vocabulary:
    """An id-ordered list of words with a reverse index and a plain-text file form."""

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if tuple(words[: len(RESERVED)]) != RESERVED:
            raise ValueError(
                f"words must start with {list(RESERVED)} (ids 0 and 1 are reserved), got {words[:2]!r}; "
                "build_vocabulary() produces such a list"
            )
        for word in words:
            if not isinstance(word, str) or not word or word != word.strip() or len(word.split()) != 1:
                raise ValueError(f"words must be non-empty strings without whitespace, got {word!r}")
        index = {word: i for i, word in enumerate(words)}
        if len(index) != len(words):
            duplicates = sorted(w for w, c in Counter(words).items() if c > 1)
            raise ValueError(f"words must be unique, got duplicates {duplicates[:5]!r}")
        self.words = words
        self.index = index

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def save(self, path: str | os.PathLike) -> None:
        """Write the file atomically: a reader never sees a half-written vocabulary."""
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
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path must be an existing vocabulary file, got {str(path)!r}")
        return cls(path.read_text(encoding="utf-8").splitlines())


class WordTokenizer:
    """Turns sentences into fixed-length id rows: [max_words] int64, padded with 0, unknown words 1.

    `vocabulary` is an id-ordered word list (starting with "<pad>", "<unk>"), a `Vocabulary`, or a mapping
    word -> id in which ids 0 and 1 belong to no ordinary word.
    """

    def __init__(self, vocabulary: Sequence[str] | Mapping[str, int] | Vocabulary, max_words: int = 16):
        if not isinstance(max_words, int) or max_words < 1:
            raise ValueError(f"max_words must be a positive int, got {max_words!r}")
        self.max_words = max_words
        if isinstance(vocabulary, Vocabulary):
            self._ids = dict(vocabulary.index)
        elif isinstance(vocabulary, Mapping):
            self._ids = self._checked_mapping(vocabulary)
        elif isinstance(vocabulary, Sequence) and not isinstance(vocabulary, str):
            self._ids = dict(Vocabulary(vocabulary).index)
        else:
            raise ValueError(f"vocabulary must be a word list, a Vocabulary or a dict, got {type(vocabulary).__name__}")
        self.vocab_size = max(max(self._ids.values(), default=UNK_ID), UNK_ID) + 1
        self._words = {i: w for w, i in self._ids.items()}

    @staticmethod
    def _checked_mapping(mapping: Mapping[str, int]) -> dict[str, int]:
        ids = {}
        for word, i in mapping.items():
            if not isinstance(i, int) or i < 0:
                raise ValueError(f"vocabulary ids must be non-negative ints, got {word!r} -> {i!r}")
            if i in (PAD_ID, UNK_ID) and word != RESERVED[i]:
                raise ValueError(f"vocabulary id {i} is reserved for {RESERVED[i]!r}, got {word!r} -> {i}")
            ids[word] = i
        return ids

    def word_ids(self, text: str) -> list[int]:
        """Ids of the kept words, without padding."""
        return [self._ids.get(word, UNK_ID) for word in split_words(text)[: self.max_words]]

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
        """Words of a row, padding dropped; unknown ids read as "<unk>"."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return " ".join(self._words.get(i, UNK_TOKEN) for i in ids if i != PAD_ID)
