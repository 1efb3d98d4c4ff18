"""The date-rewriting task: answers are right (parsed independently), the split is seeded and held
out by date, and the padded tensors have the teacher-forcing layout."""

from __future__ import annotations

import datetime

import pytest
import torch

from dlscratch.data.toy_seq import (
    DATE_VOCAB,
    MONTHS,
    date_split,
    encode_pairs,
    format_date,
)

PAD, BOS, EOS = DATE_VOCAB.pad_id, DATE_VOCAB.bos_id, DATE_VOCAB.eos_id


def _parse(src: str) -> datetime.date:
    # an independent reading of the two source formats
    for fmt in ("%d %b %Y", "%b %d, %Y"):
        try:
            return datetime.datetime.strptime(src, fmt).date()
        except ValueError:
            pass
    raise AssertionError(f"unparseable source {src!r}")


def test_targets_are_the_iso_form_of_the_sources() -> None:
    split = date_split(2000, 300, seed=3)
    for src, tgt in split.train + split.test:
        assert tgt == _parse(src).isoformat()
        assert len(src) <= 12 and len(tgt) == 10
        assert not src.split()[0 if src[0].isdigit() else 1].startswith("0")  # no leading zero on the day
    formats = {src[0].isdigit() for src, _ in split.train}
    assert formats == {True, False}  # both formats occur


def test_split_is_seeded_and_held_out_by_date() -> None:
    a, b = date_split(500, 100, seed=1), date_split(500, 100, seed=1)
    assert a == b and date_split(500, 100, seed=2).train != a.train
    assert (len(a.train), len(a.test)) == (500, 100)
    train_days = {t for _, t in a.train}
    test_days = {t for _, t in a.test}
    assert len(train_days) == 500 and len(test_days) == 100 and not train_days & test_days


def test_format_date_examples() -> None:
    assert format_date(datetime.date(1997, 3, 4), 0) == ("4 mar 1997", "1997-03-04")
    assert format_date(datetime.date(2041, 9, 30), 1) == ("sep 30, 2041", "2041-09-30")
    assert [m[:3] for m in (datetime.date(2000, k, 1).strftime("%b").lower() for k in range(1, 13))] == list(MONTHS)


def test_encode_pairs_layout() -> None:
    pairs = [("4 mar 1997", "1997-03-04"), ("sep 30, 2041", "2041-09-30"), ("1", "2")]
    t = encode_pairs(pairs, DATE_VOCAB)
    assert t.src.shape == (3, 12) and t.tgt_in.shape == t.tgt_out.shape == (3, 11)
    assert t.src_len.tolist() == [10, 12, 1]
    for n, (src, tgt) in enumerate(pairs):
        assert DATE_VOCAB.decode(t.src[n]) == src
        assert (t.src[n, len(src) :] == PAD).all()
        assert t.tgt_in[n, 0] == BOS and t.tgt_out[n, len(tgt)] == EOS
        torch.testing.assert_close(t.tgt_in[n, 1 : len(tgt) + 1], t.tgt_out[n, : len(tgt)])  # shifted by one
        assert (t.tgt_out[n, len(tgt) + 1 :] == PAD).all() and (t.tgt_in[n, len(tgt) + 1 :] == PAD).all()
    assert len(t[torch.tensor([0, 2])]) == 2 and t[1:].src_len.tolist() == [12, 1]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="got 0 and 5"):
        date_split(0, 5)
    with pytest.raises(ValueError, match="36525"):
        date_split(36_000, 1_000)
    with pytest.raises(ValueError, match="no pairs"):
        encode_pairs([], DATE_VOCAB)
