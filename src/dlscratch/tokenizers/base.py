r"""The one interface every tokenizer and vocabulary of the book satisfies.

A tokenizer maps text to a list of integer ids and back. The special ids a model needs (the
padding it ignores, the token that starts decoding, the token that ends a sequence, the boundary
that both starts and ends a word) are attributes, ``None`` when the tokenizer has no such token,
so a model reads them from the tokenizer (or from its config) instead of hard-coding them.
Introduced in chapter 14, *Tokenization*; the vocabularies of chapters 3, 10 and 16 satisfy it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Tokenizer", "END_OF_TEXT", "EndOfTextSpecials"]

END_OF_TEXT = "<|endoftext|>"  # GPT-2's document separator, the end-of-sequence token of open vocabularies


@runtime_checkable
class Tokenizer(Protocol):
    r"""Text :math:`\leftrightarrow` ids, with the special ids as attributes.

    ``decode(encode(text)) == text`` for every text the tokenizer can encode, up to what the
    tokenizer normalises (a word vocabulary joins words with one space).

    Attributes:
        vocab_size: the number of ids, ``0 .. vocab_size - 1``, special tokens included.
        pad_id: the padding id, or ``None``.
        bos_id: the beginning-of-sequence id (the decoder's first input), or ``None``.
        eos_id: the end-of-sequence id, or ``None``.
        boundary_id: the one id that both starts and ends a word (chapter 3's ``.``), or ``None``.
    """

    @property
    def vocab_size(self) -> int: ...

    @property
    def pad_id(self) -> int | None: ...

    @property
    def bos_id(self) -> int | None: ...

    @property
    def eos_id(self) -> int | None: ...

    @property
    def boundary_id(self) -> int | None: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class EndOfTextSpecials:
    r"""The special ids of an open-vocabulary tokenizer (characters, BPE) with named special tokens.

    Only ``"<|endoftext|>"`` has a role: it is the end-of-sequence id when the tokenizer has it.
    There is no padding, start or boundary token (``None``).
    """

    special_tokens: dict[str, int]  # special token -> id, set by the tokenizer
    pad_id: int | None = None
    bos_id: int | None = None
    boundary_id: int | None = None

    @property
    def eos_id(self) -> int | None:
        r"""The id of ``"<|endoftext|>"``, or ``None`` if it is not a special token."""
        return self.special_tokens.get(END_OF_TEXT)
