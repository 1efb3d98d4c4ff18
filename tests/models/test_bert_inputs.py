"""BERT's input packing: [CLS] a [SEP] (b [SEP]), token types, longest-first truncation, padding."""

from __future__ import annotations

import pytest
import torch

from dlscratch.models.bert_inputs import batch_inputs, pack_pair

CLS, SEP = 101, 102


def test_single_and_pair() -> None:
    assert pack_pair([5, 6], cls_id=CLS, sep_id=SEP, max_len=10) == ([CLS, 5, 6, SEP], [0, 0, 0, 0])
    ids, types = pack_pair([5, 6], [7], cls_id=CLS, sep_id=SEP, max_len=10)
    assert ids == [CLS, 5, 6, SEP, 7, SEP] and types == [0, 0, 0, 0, 1, 1]


def test_longest_first_truncation() -> None:
    ids, types = pack_pair(list(range(10)), [50, 51, 52], cls_id=CLS, sep_id=SEP, max_len=9)
    assert ids == [CLS, 0, 1, 2, SEP, 50, 51, 52, SEP] and len(types) == 9
    ids, _ = pack_pair([1, 2, 3, 4], [5, 6, 7, 8], cls_id=CLS, sep_id=SEP, max_len=7)
    assert ids == [CLS, 1, 2, SEP, 5, 6, SEP]  # ties drop from b first, then alternate
    ids, _ = pack_pair(list(range(10)), cls_id=CLS, sep_id=SEP, max_len=5)
    assert ids == [CLS, 0, 1, 2, SEP]


def test_too_small_max_len_is_refused() -> None:
    with pytest.raises(ValueError, match="max_len=4 is too small"):
        pack_pair([1], [2], cls_id=CLS, sep_id=SEP, max_len=4)
    with pytest.raises(ValueError, match="max_len must be a positive integer, got 0"):
        pack_pair([1], cls_id=CLS, sep_id=SEP, max_len=0)


def test_batch_inputs_pads_and_masks() -> None:
    ids, pad = batch_inputs([[5, 6, 7], [8]], cls_id=CLS, sep_id=SEP, pad_id=0, max_len=4)
    assert ids.tolist() == [[CLS, 5, 6, SEP], [CLS, 8, SEP, 0]]
    assert pad.tolist() == [[False] * 4, [False, False, False, True]]
    with pytest.raises(ValueError, match="at least one sequence"):
        batch_inputs([], cls_id=CLS, sep_id=SEP, pad_id=0, max_len=4)
    assert torch.equal(ids == 0, pad)
