import pytest
import torch

from dlscratch.data.captions import (
    HELD_OUT_TEMPLATE,
    TRAIN_TEMPLATES,
    caption,
    caption_tokenizer,
    encode_captions,
    random_captions,
)


def test_caption_words_and_numerals():
    assert caption(7) == "a handwritten seven"
    assert caption(3, "the digit {digit}") == "the digit 3"
    assert HELD_OUT_TEMPLATE not in TRAIN_TEMPLATES


def test_random_captions_use_every_template_and_the_right_digit():
    labels = torch.arange(10).repeat(20)
    caps = random_captions(labels, generator=torch.Generator().manual_seed(0))
    assert len(caps) == 200
    assert {c for c in caps if c.endswith("seven") or "7" in c} >= {caption(7, t) for t in TRAIN_TEMPLATES}
    for y, c in zip(labels.tolist(), caps):
        assert c in {caption(y, t) for t in TRAIN_TEMPLATES}


def test_encode_captions_pads_after_eot_and_round_trips():
    tok = caption_tokenizer()
    texts = [caption(1), caption(8, HELD_OUT_TEMPLATE)]
    ids, lengths = encode_captions(texts, tok)
    eot, pad = tok.special_tokens["<eot>"], tok.special_tokens["<pad>"]
    for n, text in enumerate(texts):
        L = int(lengths[n])
        assert L == len(text) + 1 and ids[n, L - 1] == eot
        assert tok.decode(ids[n, : L - 1].tolist()) == text
        assert (ids[n, L:] == pad).all()


def test_bad_input_names_the_offender():
    with pytest.raises(ValueError, match="label must be a digit 0..9, got 10"):
        caption(10)
    with pytest.raises(ValueError, match=r"caption 1 \('a handwritten Z'\).*'Z'"):
        encode_captions(["the digit 1", "a handwritten Z"], caption_tokenizer())
    with pytest.raises(ValueError, match="at least one template"):
        random_captions([1], templates=())


def test_drop_words_keeps_the_digit_word():
    from dlscratch.data.captions import drop_words

    t = "the number {digit}, written by hand"
    assert drop_words(t, torch.zeros(6, dtype=torch.bool)) == "{digit},"
    assert drop_words(t, torch.tensor([1, 0, 1, 0, 1, 1], dtype=torch.bool)) == "the {digit}, by hand"
    assert drop_words(t, torch.ones(6, dtype=torch.bool)) == t
    with pytest.raises(ValueError, match="6 words"):
        drop_words(t, torch.ones(5, dtype=torch.bool))


def test_random_captions_with_word_dropout():
    labels = torch.arange(10).repeat(30)
    caps = random_captions(labels, generator=torch.Generator().manual_seed(0), word_dropout=0.5)
    full = {caption(y, t) for y in range(10) for t in TRAIN_TEMPLATES}
    assert any(c not in full for c in caps) and any(c in full for c in caps)
    for y, c in zip(labels.tolist(), caps):
        from dlscratch.data.captions import DIGIT_NAMES

        assert DIGIT_NAMES[y] in c.split(" ") or f"{y}," in c.split(" ") or str(y) in c.split(" ")
    assert random_captions(labels, generator=torch.Generator().manual_seed(0)) == random_captions(
        labels, generator=torch.Generator().manual_seed(0), word_dropout=0.0)
    with pytest.raises(ValueError, match="word_dropout must be in"):
        random_captions(labels, word_dropout=1.0)
