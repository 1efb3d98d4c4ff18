"""Every tokenizer and vocabulary of the package satisfies the one ``Tokenizer`` protocol."""

from __future__ import annotations

import pytest

from dlscratch.data import DATE_VOCAB, DIGIT_VOCAB, NUMBER_WORDS
from dlscratch.tokenizers import END_OF_TEXT, ByteBPETokenizer, CharTokenizer, CharVocab, Tokenizer

TEXT = "the cat sat on the mat; the dog ate the hat."
TOKENIZERS = {
    "names": (CharVocab(), ["emma", "olivia", ""]),
    "dates": (DATE_VOCAB, ["4 mar 1997", "2041-09-30"]),
    "number words": (NUMBER_WORDS, ["three hundred twelve", "zero"]),
    "digits": (DIGIT_VOCAB, ["312", "0"]),
    "characters": (CharTokenizer.from_text(TEXT, special_tokens=[END_OF_TEXT]), [TEXT, f"the hat{END_OF_TEXT}cat"]),
    "characters, no specials": (CharTokenizer.from_text(TEXT), [TEXT]),
    "byte BPE": (ByteBPETokenizer.train(TEXT * 3, 280, special_tokens=[END_OF_TEXT]), [TEXT, "ünïcode 🙂" + END_OF_TEXT]),
}
SPECIALS = ("pad_id", "bos_id", "eos_id", "boundary_id")


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_satisfies_the_protocol_and_round_trips(name: str) -> None:
    tok, texts = TOKENIZERS[name]
    assert isinstance(tok, Tokenizer)
    assert isinstance(tok.vocab_size, int) and tok.vocab_size > 0
    for text in texts:
        ids = tok.encode(text)
        assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
    ids = [getattr(tok, a) for a in SPECIALS if getattr(tok, a) is not None]
    assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids) and len(set(ids)) == len(ids)


def test_special_ids_are_the_tokens_they_name() -> None:
    assert CharVocab().itos[CharVocab().boundary_id] == "."
    for v in (DATE_VOCAB, NUMBER_WORDS, DIGIT_VOCAB):
        assert [v.itos[i] for i in (v.pad_id, v.bos_id, v.eos_id)] == ["<pad>", "<bos>", "<eos>"]
    for tok in (TOKENIZERS["characters"][0], TOKENIZERS["byte BPE"][0]):
        assert tok.encode(END_OF_TEXT) == [tok.eos_id] and (tok.pad_id, tok.bos_id, tok.boundary_id) == (None,) * 3
    assert TOKENIZERS["characters, no specials"][0].eos_id is None


def test_an_object_without_the_special_ids_is_not_a_tokenizer() -> None:
    class Half:
        vocab_size = 3

        def encode(self, text: str) -> list[int]:
            return []

        def decode(self, ids: list[int]) -> str:
            return ""

    assert not isinstance(Half(), Tokenizer)
