"""The number-words translation task: spelling, split, encoding."""

from __future__ import annotations

import pytest

from dlscratch.data import DIGIT_VOCAB, NUMBER_WORDS, encode_translation, number_split, number_to_words

PAD, BOS, EOS = DIGIT_VOCAB.pad_id, DIGIT_VOCAB.bos_id, DIGIT_VOCAB.eos_id


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (312, "three hundred twelve"),
        (4005, "four thousand five"),
        (1234, "one thousand two hundred thirty four"),
        (9000, "nine thousand"),
        (7777, "seven thousand seven hundred seventy seven"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def _parse(words: str) -> int:  # an independent reading of the words back into a number
    value, total = 0, 0
    small = {w: i for i, w in enumerate(NUMBER_WORDS.words[:20])}
    tens = {w: 10 * (i + 2) for i, w in enumerate(NUMBER_WORDS.words[20:28])}
    for w in words.split():
        if w in small:
            value += small[w]
        elif w in tens:
            value += tens[w]
        elif w == "hundred":
            value *= 100
        else:  # thousand
            total, value = total + value * 1000, 0
    return total + value


def test_every_number_round_trips_and_is_unique() -> None:
    spelled = [number_to_words(n) for n in range(10_000)]
    assert len(set(spelled)) == 10_000
    assert all(_parse(w) == n for n, w in enumerate(spelled))
    assert max(len(w.split()) for w in spelled) == 6


@pytest.mark.parametrize("bad", [-1, 10_000, 3.0, True])
def test_number_to_words_rejects(bad) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        number_to_words(bad)


def test_split_is_disjoint_seeded_and_complete() -> None:
    a, b = number_split(n_test=500, seed=1), number_split(n_test=500, seed=1)
    assert a.test == b.test and a.train == b.train
    assert len(a.test) == 500 and len(a.train) == 9500
    train, test = {t for _, t in a.train}, {t for _, t in a.test}
    assert not train & test and len(train | test) == 10_000
    assert number_split(n_test=500, seed=2).test != a.test
    with pytest.raises(ValueError, match="0"):
        number_split(n_test=0)


def test_encode_translation_pads_and_marks() -> None:
    pairs = [("three hundred twelve", "312"), ("zero", "0")]
    t = encode_translation(pairs)
    assert t.src.shape == (2, 3) and t.tgt_in.shape == (2, 4)
    assert NUMBER_WORDS.decode(t.src[0]) == "three hundred twelve" and t.src[1, 1:].tolist() == [PAD, PAD]
    assert t.tgt_in[0].tolist() == [BOS, *DIGIT_VOCAB.encode("312")]
    assert t.tgt_out[0].tolist() == [*DIGIT_VOCAB.encode("312"), EOS]
    assert t.tgt_out[1].tolist() == [DIGIT_VOCAB.encode("0")[0], EOS, PAD, PAD]
    assert t.src_len.tolist() == [3, 1]
    assert DIGIT_VOCAB.decode(t.tgt_out[1]) == "0"


def test_encode_translation_errors_name_the_word() -> None:
    with pytest.raises(ValueError, match="eleventy"):
        encode_translation([("eleventy one", "111")])
    with pytest.raises(ValueError, match="no pairs"):
        encode_translation([])
