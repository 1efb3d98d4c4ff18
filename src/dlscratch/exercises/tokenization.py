r"""Exercise checkers for chapter 14, "Tokenization" (topic prefix ``tok.``).

Every checker recomputes the answer (plain Python on bytes and strings, or the package's tested
:class:`~dlscratch.tokenizers.bpe.ByteBPETokenizer`) and raises :class:`AssertionError` with a hint when the reader's answer
differs. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import codecs
import functools
import random
from typing import Any

from ..tokenizers.bpe import ByteBPETokenizer
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "APPLY_MERGES",
    "APPLY_TEXT",
    "BYTES_TEXT",
    "check_apply_merges",
    "check_byte_tokens",
    "SHOUT_VOCAB",
    "check_stream_decode",
    "check_shouting",
]

# tok.apply_merges: these merges, learned in this order, applied to one pre-tokenized chunk
APPLY_MERGES = (("h", "e"), ("t", "h"), ("th", "e"), ("e", "r"), (" ", "the"), ("he", "r"))
APPLY_TEXT = " there"

# tok.byte_tokens: how many tokens the byte-level tokenizer without merges makes of this string
BYTES_TEXT = "naïve café: 東京 🙂"

# tok.shouting: bytes per token of ByteBPETokenizer.train(first 90 % of TinyShakespeare, SHOUT_VOCAB)
# on the held-out 10 % written in capitals
SHOUT_VOCAB = 512


def _apply_in_order(text: str, merges: tuple[tuple[str, str], ...]) -> list[str]:
    tokens = list(text)
    for a, b in merges:  # each merge once, in the learned order, left to right
        out, i = [], 0
        while i < len(tokens):
            if i + 1 < len(tokens) and tokens[i] == a and tokens[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(tokens[i])
                i += 1
        tokens = out
    return tokens


@exercise("tok.apply_merges")
def check_apply_merges(answer: Any) -> None:
    r"""The tokens of ``APPLY_TEXT`` after applying ``APPLY_MERGES`` in order, as a list of strings."""
    if not isinstance(answer, (list, tuple)) or not all(isinstance(t, str) for t in answer):
        raise AssertionError(f"give the tokens as a list of strings, e.g. [' ', 'th', 'ere'], got {answer!r}.")
    got = list(answer)
    want = _apply_in_order(APPLY_TEXT, APPLY_MERGES)
    if got == want:
        return
    if "".join(got) != APPLY_TEXT:
        raise AssertionError(f"the tokens must concatenate back to {APPLY_TEXT!r}; yours give {''.join(got)!r}.")
    if any(t not in {c for c in APPLY_TEXT} | {a + b for a, b in APPLY_MERGES} for t in got):
        raise AssertionError("every token must be a single character or the result of one of the merges.")
    reordered = _apply_in_order(APPLY_TEXT, APPLY_MERGES[1:] + APPLY_MERGES[:1])
    if got == reordered or "th" in got:
        raise AssertionError(
            "apply the merges in the order they were learned: ('h', 'e') comes first and uses up the 'h', "
            "so ('t', 'h') no longer finds a pair."
        )
    raise AssertionError("not quite: go through the merge list once, top to bottom, merging every adjacent occurrence.")


@exercise("tok.byte_tokens")
def check_byte_tokens(answer: Any) -> None:
    r"""The number of tokens of ``BYTES_TEXT`` with the 256 byte tokens and no merges."""
    answer = require_number(answer, "the number of tokens")
    want = len(BYTES_TEXT.encode("utf-8"))
    if answer == want:
        return
    if answer == len(BYTES_TEXT):
        raise AssertionError("that is the number of characters; a byte-level tokenizer sees UTF-8 bytes.")
    raise AssertionError(
        "count the UTF-8 bytes per character: 1 for ASCII (spaces and ':' included), 2 for 'ï' and 'é', "
        "3 for most CJK characters, 4 for emoji."
    )


def _stream_reference(tok: ByteBPETokenizer, ids: list[int]) -> list[str]:
    r"""After each id, the characters completed by its bytes: an incremental UTF-8 decoder."""
    dec = codecs.getincrementaldecoder("utf-8")()
    return [dec.decode(tok.token_bytes(i)) for i in ids]


def _stream_cases() -> list[tuple[ByteBPETokenizer, list[int]]]:
    rng = random.Random(14)
    sample = "naïve café, déjà vu. 東京は日本の首都です。 Ünïcödé 🙂👍🏽 " * 8
    merged = ByteBPETokenizer.train(sample, 256 + 60)  # merges inside multi-byte characters: tokens that cut them
    plain = ByteBPETokenizer([], merged.pattern)  # bytes only
    blocks = [(0x20, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0x10000, 0x10FFFF)]
    texts = ["", "a", "é", "東京 is Tokyo", "🙂👍🏽", sample[:60]]
    texts += ["".join(chr(rng.randint(*rng.choice(blocks))) for _ in range(rng.randint(1, 20))) for _ in range(20)]
    return [(tok, tok.encode(t)) for t in texts for tok in (merged, plain)]


@exercise("tok.stream_decode")
def check_stream_decode(answer: Any) -> None:
    r"""``answer(tok, ids)`` returns one text piece per id: the characters completed by that id's bytes.

    Checked on the package's :class:`~dlscratch.tokenizers.bpe.ByteBPETokenizer` (with and without
    merges that cut characters) against an incremental UTF-8 decoder, for the ids of ``encode``.
    """
    fn = require_callable(answer, "stream_decode(tok, ids)")
    for tok, ids in _stream_cases():
        got = fn(tok, list(ids))
        if not isinstance(got, (list, tuple)) or not all(isinstance(p, str) for p in got):
            raise AssertionError(f"return a list of strings, one per id; got {type(got).__name__}.")
        got = list(got)
        want = _stream_reference(tok, ids)
        if got == want:
            continue
        if len(got) != len(ids):
            raise AssertionError(
                f"return one piece per id ({len(ids)} ids, {len(got)} pieces); a piece is '' while a character is incomplete."
            )
        if any("\ufffd" in p for p in got):
            raise AssertionError(
                "a piece holds '\ufffd': you decoded a token that ends (or starts) inside a multi-byte character. "
                "Keep the incomplete bytes until the rest of the character arrives."
            )
        if "".join(got) != tok.decode(ids):
            raise AssertionError("the pieces joined must give tok.decode(ids): some bytes were lost or repeated.")
        raise AssertionError(
            "the text is right but emitted late (or early): after each id, emit every character whose last byte has "
            "arrived, and nothing else."
        )


@functools.cache
def _shout_bytes_per_token() -> tuple[float, float]:
    from ..data import load_shakespeare  # only this checker needs the corpus

    text = load_shakespeare()
    n = int(0.9 * len(text))
    tok = ByteBPETokenizer.train(text[:n], SHOUT_VOCAB)
    val = text[n:]
    return (len(val.upper().encode()) / len(tok.encode(val.upper())), len(val.encode()) / len(tok.encode(val)))


@exercise("tok.shouting")
def check_shouting(answer: Any) -> None:
    r"""Bytes per token of the 512-id BPE of the chapter on the held-out text in capitals (``val_text.upper()``)."""
    got = require_number(answer, "bytes per token")
    shout, normal = _shout_bytes_per_token()
    if abs(got - shout) <= 0.01:
        return
    if abs(got - normal) <= 0.01:
        raise AssertionError("that is the held-out text as written; measure val_text.upper().")
    if abs(got - 1 / shout) <= 0.01:
        raise AssertionError("bytes per token is bytes / tokens, not tokens / bytes.")
    if abs(got - 1.0) <= 0.01:
        raise AssertionError(
            "not quite one token per byte: the speaker names are written in capitals, so a few capital merges exist. "
            "Measure it."
        )
    raise AssertionError(
        f"measure it: tok = bpe.truncate({SHOUT_VOCAB}) (or bpe512), then len(s.encode()) / len(tok.encode(s)) "
        "with s = val_text.upper()."
    )
