r"""Fixed vocabularies: a few special tokens first, then the ordinary tokens in order.

* :class:`CharVocab`: characters after one boundary token ``.`` (id 0) that starts and ends a
  word, the names vocabulary of Part II (chapter 3);
* :class:`SeqVocab` (characters) and :class:`WordVocab` (words) after ``<pad>`` 0, ``<bos>`` 1 and
  ``<eos>`` 2, the vocabularies of the sequence-to-sequence tasks (chapters 10 and 16).

All share :class:`Vocab`: ``itos`` is the special tokens followed by the ordinary ones, ``stoi``
its inverse, and ``encode`` splits a text and names any unknown token. Each satisfies
:class:`~dlscratch.tokenizers.base.Tokenizer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

__all__ = ["Vocab", "CharVocab", "SpecialTokenVocab", "SeqVocab", "WordVocab"]


class Vocab:
    r"""The shared half of every fixed vocabulary: ids ``0 ..`` are ``specials`` then ``tokens``.

    Subclasses give the special tokens, the ordinary ``tokens`` and how a text splits into them
    (into characters unless overridden), and the special ids of the tokenizer protocol.
    """

    kind: ClassVar[str] = "characters"  # what a token is, for messages: "characters", "words"
    sep: ClassVar[str] = ""  # what joins decoded tokens
    pad_id: ClassVar[int | None] = None
    bos_id: ClassVar[int | None] = None
    eos_id: ClassVar[int | None] = None
    boundary_id: ClassVar[int | None] = None

    @property
    def specials(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        r"""The special tokens, ids ``0 .. len(specials) - 1``."""
        raise NotImplementedError

    @property
    def tokens(self) -> Sequence[str]:  # pragma: no cover - abstract
        r"""The ordinary tokens, in index order after the special ones."""
        raise NotImplementedError

    def split(self, text: str) -> list[str]:
        r"""The tokens of ``text``: its characters."""
        return list(text)

    def __post_init__(self) -> None:
        every = [*self.specials, *self.tokens]
        if len(set(every)) != len(every):
            raise ValueError(f"{self.kind} must be distinct and exclude the special tokens {self.specials!r}, "
                             f"got {self.tokens!r}")

    @property
    def vocab_size(self) -> int:
        r"""Number of ids, the special tokens included."""
        return len(self.specials) + len(self.tokens)

    @property
    def itos(self) -> list[str]:
        r"""Index → token."""
        return [*self.specials, *self.tokens]

    @property
    def stoi(self) -> dict[str, int]:
        r"""Token → index (special tokens included)."""
        return {t: i for i, t in enumerate(self.itos)}

    def encode(self, text: str) -> list[int]:
        r"""Indices of the tokens of ``text``; ``ValueError`` naming any unknown token."""
        stoi, parts = self.stoi, self.split(text)
        unknown = sorted({t for t in parts if t not in stoi})
        if unknown:
            raise ValueError(f"{self.kind} {unknown} of {text!r} are not in the vocabulary {self.itos!r}")
        return [stoi[t] for t in parts]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        r"""The tokens of ``ids``, joined by ``sep`` (special tokens included)."""
        itos = self.itos
        return self.sep.join(itos[int(i)] for i in ids)


@dataclass(frozen=True)
class CharVocab(Vocab):
    r"""A character vocabulary with a boundary token at index 0 (the names vocabulary of Part II).

    Attributes:
        chars: the characters after the boundary token, in index order.
        boundary: the token that marks the start and the end of a word.
    """

    chars: str = "abcdefghijklmnopqrstuvwxyz"  # indices 1..len(chars)
    boundary: str = "."  # index 0
    boundary_id: ClassVar[int] = 0

    @classmethod
    def from_words(cls, words: Sequence[str], boundary: str = ".") -> "CharVocab":
        r"""The sorted set of characters used by ``words``."""
        return cls("".join(sorted(set("".join(words)))), boundary)

    @property
    def specials(self) -> tuple[str, ...]:
        return (self.boundary,)

    @property
    def tokens(self) -> str:
        r"""The ordinary characters."""
        return self.chars

    def encode_word(self, word: str) -> list[int]:
        r"""The ids of the word wrapped in boundaries, ``.word.``: what every Part II model learns."""
        return [self.boundary_id, *self.encode(word), self.boundary_id]


class SpecialTokenVocab(Vocab):
    r"""Ordinary tokens after three special ones: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2.

    The shared half of :class:`SeqVocab` (characters) and :class:`WordVocab` (words).
    """

    pad_id: ClassVar[int] = 0
    bos_id: ClassVar[int] = 1
    eos_id: ClassVar[int] = 2

    @property
    def specials(self) -> tuple[str, ...]:
        return ("<pad>", "<bos>", "<eos>")

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        r"""The tokens of ``ids`` up to the first ``<eos>``, skipping ``<pad>`` and ``<bos>``."""
        out = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.eos_id:
                break
            if i >= len(self.specials):
                out.append(self.tokens[i - len(self.specials)])
        return self.sep.join(out)


@dataclass(frozen=True)
class SeqVocab(SpecialTokenVocab):
    r"""Characters with three special tokens in front: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2.

    Attributes:
        chars: the ordinary characters, in index order (indices ``3 .. 3 + len(chars) - 1``).
    """

    chars: str  # ordinary characters, ids 3..

    @property
    def tokens(self) -> str:
        r"""The ordinary characters."""
        return self.chars


@dataclass(frozen=True)
class WordVocab(SpecialTokenVocab):
    r"""Whole words with ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2 in front (words get ids ``3 ..``)."""

    words: tuple[str, ...]  # ordinary words, in index order
    kind: ClassVar[str] = "words"
    sep: ClassVar[str] = " "

    @property
    def tokens(self) -> tuple[str, ...]:
        r"""The ordinary words."""
        return self.words

    def split(self, text: str) -> list[str]:
        r"""The space-separated words of ``text``."""
        return text.split()
