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
