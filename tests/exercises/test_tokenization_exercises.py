"""Checkers of the chapter 14 exercises: a correct answer passes, wrong ones fail with a specific hint, ``...`` is open."""

from __future__ import annotations

import codecs

import pytest

from dlscratch.data import load_shakespeare
from dlscratch.exercises import core, grade
from dlscratch.exercises.tokenization import APPLY_MERGES, APPLY_TEXT, BYTES_TEXT, SHOUT_VOCAB
from dlscratch.tokenizers import ByteBPETokenizer

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_tokenization(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("tokenization",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- tok.apply_merges
def test_apply_merges() -> None:
    tokens = list(APPLY_TEXT)  # each merge once, in the learned order
    for a, b in APPLY_MERGES:
        out, i = [], 0
        while i < len(tokens):
            if tokens[i : i + 2] == [a, b]:
                out.append(a + b)
                i += 2
            else:
                out.append(tokens[i])
                i += 1
        tokens = out
    assert tokens == [" ", "t", "her", "e"]
    assert_grades("tok.apply_merges", lambda: tokens, [lambda: [" ", "the", "re"], lambda: " there"])
    assert grade("tok.apply_merges", tuple(tokens)).correct
    _wrong("tok.apply_merges", [" the", "r", "e"], "order")
    _wrong("tok.apply_merges", [" ", "the", "re"], "result of one of the merges")
    _wrong("tok.apply_merges", [" ", "t", "her"], "concatenate back")
    _wrong("tok.apply_merges", " there", "list of strings")


# ---- tok.byte_tokens
def test_byte_tokens() -> None:
    n = len(BYTES_TEXT.encode("utf-8"))
    assert_grades("tok.byte_tokens", lambda: n, [lambda: len(BYTES_TEXT), lambda: n + 1, lambda: "25"])
    _wrong("tok.byte_tokens", len(BYTES_TEXT), "number of characters")
    _wrong("tok.byte_tokens", n + 1, "4 for emoji")


# ---- tok.stream_decode
def stream_decode(tok, ids):
    pending, pieces = b"", []
    for i in ids:
        pending += tok.token_bytes(i)
        cut = len(pending)  # drop the bytes of an incomplete last character, at most 3
        while cut > 0:
            try:
                text = pending[:cut].decode("utf-8")
                break
            except UnicodeDecodeError:
                cut -= 1
        else:
            text = ""
        pieces.append(text)
        pending = pending[cut:]
    return pieces


def stream_incremental(tok, ids):
    dec = codecs.getincrementaldecoder("utf-8")()
    return [dec.decode(tok.token_bytes(i)) for i in ids]


def each_token_alone(tok, ids):
    return [tok.decode([i]) for i in ids]


def whole_buffer_or_wait(tok, ids):  # waits while the buffer ends inside a character, then emits it all
    pending, pieces = b"", []
    for i in ids:
        pending += tok.token_bytes(i)
        try:
            pieces.append(pending.decode("utf-8"))
            pending = b""
        except UnicodeDecodeError:
            pieces.append("")
    return pieces


def all_at_the_end(tok, ids):
    return [""] * (len(ids) - 1) + [tok.decode(ids)] if ids else []


def drops_incomplete(tok, ids):
    return [tok.token_bytes(i).decode("utf-8", errors="ignore") for i in ids]


def test_stream_decode() -> None:
    wrongs = [each_token_alone, whole_buffer_or_wait, all_at_the_end, drops_incomplete, lambda t, ids: [t.decode(ids)]]
    assert_grades("tok.stream_decode", lambda: stream_decode, [(lambda f=f: f) for f in wrongs] + [lambda: 3])
    assert grade("tok.stream_decode", stream_incremental).correct
    _wrong("tok.stream_decode", each_token_alone, "Keep the incomplete bytes")
    _wrong("tok.stream_decode", whole_buffer_or_wait, "emitted late")
    _wrong("tok.stream_decode", all_at_the_end, "emitted late")
    _wrong("tok.stream_decode", drops_incomplete, "lost or repeated")
    _wrong("tok.stream_decode", lambda t, ids: [t.decode(ids)], "one piece per id")
    _wrong("tok.stream_decode", lambda t, ids: t.decode(ids), "list of strings")


# ---- tok.shouting: the reader's measurement with the chapter's tokenizer
def test_shouting() -> None:
    text = load_shakespeare()
    n = int(0.9 * len(text))
    tok = ByteBPETokenizer.train(text[:n], SHOUT_VOCAB)
    s = text[n:].upper()
    beta = len(s.encode()) / len(tok.encode(s))
    assert_grades("tok.shouting", lambda: beta, [lambda: 1.0, lambda: "1.1"])
    normal = len(text[n:].encode()) / len(tok.encode(text[n:]))
    _wrong("tok.shouting", normal, "as written")
    _wrong("tok.shouting", 1 / beta, "not tokens / bytes")
    _wrong("tok.shouting", 1.0, "speaker names")
    _wrong("tok.shouting", 1.5, "measure it")
