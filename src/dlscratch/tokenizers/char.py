r"""Character-level tokenizer (chapter 14, "Tokenization").

One token per Unicode character, the vocabulary being the characters of a training text. Simple
and lossless on that text, but closed: a character it has never seen cannot be encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .base import EndOfTextSpecials

__all__ = ["CharTokenizer"]


class CharTokenizer(EndOfTextSpecials):
    r"""Map each character to an id: the characters first (in the given order), then the specials.

    Args:
        chars: the distinct characters of the vocabulary.
        special_tokens: strings that are one token each (e.g. ``"<|endoftext|>"``), matched in the
            text before characters are looked up.

    Raises:
        ValueError: if ``chars`` repeats a character or holds a string that is not one character,
            or the special tokens are not distinct non-empty strings.
    """

    def __init__(self, chars: Iterable[str], special_tokens: Sequence[str] = ()) -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            dup = next(c for c in chars if chars.count(c) > 1)
            raise ValueError(f"character {dup!r} appears twice in the vocabulary")
        specials = list(special_tokens)
        if len(set(specials)) != len(specials) or any(not isinstance(s, str) or not s for s in specials):
            raise ValueError(f"special tokens must be distinct non-empty strings, got {specials!r}")
        self.itos: list[str] = chars + specials  # id -> character or special token
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}  # character -> id
        self.special_tokens: dict[str, int] = {s: len(chars) + i for i, s in enumerate(specials)}
        longest_first = sorted(specials, key=len, reverse=True)
        self._special_re = re.compile("(" + "|".join(map(re.escape, longest_first)) + ")") if specials else None

    @classmethod
    def from_text(cls, text: str, special_tokens: Sequence[str] = ()) -> CharTokenizer:
        r"""The tokenizer whose vocabulary is the sorted distinct characters of ``text``.

        Occurrences of the special tokens in ``text`` do not contribute characters.
        """
        for s in special_tokens:
            text = text.replace(s, "")
        return cls(sorted(set(text)), special_tokens)

    @property
    def vocab_size(self) -> int:
        r"""The number of token ids (characters + special tokens)."""
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        r"""Token ids of ``text``; each special token becomes one id.

        Raises:
            ValueError: naming the first character that is not in the vocabulary, and its position.
        """
        if self._special_re is None:
            parts = [text]
        else:
            parts = self._special_re.split(text)  # odd positions hold the special tokens
        out: list[int] = []
        pos = 0
        for k, part in enumerate(parts):
            if k % 2:
                out.append(self.special_tokens[part])
            else:
                for j, c in enumerate(part):
                    i = self.stoi.get(c)
                    if i is None:
                        raise ValueError(
                            f"character {c!r} (U+{ord(c):04X}) at position {pos + j} is not in the "
                            f"vocabulary of {len(self.stoi)} characters"
                        )
                    out.append(i)
            pos += len(part)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        r"""The text of ``ids``.

        Raises:
            ValueError: naming an id outside ``0..vocab_size - 1``.
        """
        n = len(self.itos)
        out = []
        for i in ids:
            if not 0 <= i < n:
                raise ValueError(f"token id {i!r} is outside the vocabulary (0..{n - 1})")
            out.append(self.itos[i])
        return "".join(out)
