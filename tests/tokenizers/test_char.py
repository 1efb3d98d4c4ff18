"""Character tokenizer: lossless on its vocabulary, clear errors outside it, atomic specials."""

from __future__ import annotations

import pytest

from dlscratch.tokenizers import CharTokenizer

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


def test_vocabulary_is_sorted_distinct_characters() -> None:
    tok = CharTokenizer.from_text(TEXT)
    assert tok.itos == sorted(set(TEXT))
    assert tok.vocab_size == len(set(TEXT))
    assert all(tok.stoi[c] == i for i, c in enumerate(tok.itos))


@pytest.mark.parametrize("text", ["", TEXT, "speak", "\n\n", TEXT[::-1]])
def test_round_trip(text: str) -> None:
    tok = CharTokenizer.from_text(TEXT)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text


@pytest.mark.parametrize("text", ["東京 🙂 café", "a\u0301e\u0308", "\x00\t\r\n"])
def test_round_trip_on_unicode_vocabulary(text: str) -> None:
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text


def test_unknown_character_is_named() -> None:
    tok = CharTokenizer.from_text(TEXT)
    with pytest.raises(ValueError, match=r"'é' \(U\+00E9\) at position 3"):
        tok.encode("caf" + "é")


def test_special_tokens_are_atomic() -> None:
    tok = CharTokenizer.from_text(TEXT + "<|endoftext|>", special_tokens=["<|endoftext|>", "<pad>"])
    assert "|" not in tok.stoi and "<" not in tok.stoi  # the specials contribute no characters
    eot, pad = tok.special_tokens["<|endoftext|>"], tok.special_tokens["<pad>"]
    assert (eot, pad) == (len(set(TEXT)), len(set(TEXT)) + 1)
    text = "speak<|endoftext|><|endoftext|>hear<pad>"
    ids = tok.encode(text)
    assert ids == tok.encode("speak") + [eot, eot] + tok.encode("hear") + [pad]
    assert tok.decode(ids) == text


def test_unknown_character_position_counts_special_tokens() -> None:
    tok = CharTokenizer.from_text("ab", special_tokens=["<s>"])
    with pytest.raises(ValueError, match="position 4"):
        tok.encode("a<s>z")


@pytest.mark.parametrize(
    ("chars", "specials", "match"),
    [(["a", "a"], (), "'a' appears twice"), (["ab"], (), "single characters"), (["a"], ["", "x"], "special")],
)
def test_bad_vocabulary(chars: list[str], specials: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CharTokenizer(chars, specials)


def test_decode_rejects_unknown_ids() -> None:
    tok = CharTokenizer("ab")
    with pytest.raises(ValueError, match="token id 2"):
        tok.decode([0, 2])
    with pytest.raises(ValueError, match="-1"):
        tok.decode([-1])
