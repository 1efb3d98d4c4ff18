"""The fixed vocabularies: layout of the special tokens, round trips, errors naming the bad token."""

from __future__ import annotations

import pytest

from dlscratch.tokenizers import CharVocab, SeqVocab, WordVocab


def test_char_vocab_layout_round_trip_and_errors() -> None:
    v = CharVocab()
    assert v.vocab_size == 27 and v.itos[0] == "." and v.stoi["z"] == 26 and v.boundary_id == 0
    assert (v.pad_id, v.bos_id, v.eos_id) == (None, None, None)
    assert v.decode(v.encode("emma")) == "emma"
    assert v.encode_word("ab") == [0, 1, 2, 0]  # .ab.
    with pytest.raises(ValueError, match=r"\['3', 'É'\]"):
        v.encode("É3a")
    assert CharVocab.from_words(["ba", "ab"]).chars == "ab"
    with pytest.raises(ValueError, match="distinct"):
        CharVocab("aa")
    with pytest.raises(ValueError, match="distinct"):
        CharVocab("a.")  # the boundary cannot also be an ordinary character


def test_special_token_vocabs_layout_round_trip_and_errors() -> None:
    v = SeqVocab(" ,-0123456789abc")
    assert v.itos[:3] == ["<pad>", "<bos>", "<eos>"] and (v.pad_id, v.bos_id, v.eos_id) == (0, 1, 2)
    assert v.vocab_size == len(v.chars) + 3 and v.boundary_id is None
    for text in ("a 30, 2041", "1997-03-04"):
        assert v.decode(v.encode(text)) == text
    assert v.decode([v.bos_id, *v.encode("12"), v.eos_id, *v.encode("3"), v.pad_id]) == "12"  # stops at <eos>
    with pytest.raises(ValueError, match=r"\['x'\]"):
        v.encode("x ab 1997")
    with pytest.raises(ValueError, match="distinct"):
        SeqVocab("aa")
    w = WordVocab(("one", "two"))
    assert w.encode("two one") == [4, 3] and w.decode([1, 4, 3, 2, 3]) == "two one"
    with pytest.raises(ValueError, match="eleventy"):
        w.encode("one eleventy")
