"""The generated tasks: their answers are right (checked example by example), they are seeded,
and the generators reject impossible settings with messages that name the values."""

from __future__ import annotations

import pytest
import torch

from dlscratch.data import IGNORE_INDEX, RetrievalData, key_value_retrieval, previous_token_task


@pytest.mark.parametrize("min_pairs", [None, 1, 3])
def test_retrieval_answers_are_correct(min_pairs: int | None) -> None:
    n, P, NK, NV = 300, 6, 10, 5
    d = key_value_retrieval(n, P, NK, NV, min_pairs=min_pairs, pad_id=0, seed=3)
    assert len(d) == n and d.keys.shape == d.values.shape == d.padding_mask.shape == (n, P)
    assert d.padding_mask.dtype == torch.bool and d.keys.dtype == torch.int64
    lo = P if min_pairs is None else min_pairs
    for r in range(n):
        real = (~d.padding_mask[r]).nonzero().flatten().tolist()
        assert real == list(range(len(real))) and lo <= len(real) <= P  # padding at the end
        keys = d.keys[r, real].tolist()
        assert len(set(keys)) == len(keys) and all(0 <= k < NK for k in keys)  # distinct keys
        assert all(0 <= v < NV for v in d.values[r, real].tolist())
        assert (d.keys[r, len(real) :] == 0).all() and (d.values[r, len(real) :] == 0).all()
        lookup = dict(zip(keys, d.values[r, real].tolist()))  # the dictionary the example encodes
        assert d.query[r].item() in lookup and d.target[r].item() == lookup[d.query[r].item()]
        assert d.match[r].item() in real and d.keys[r, d.match[r]] == d.query[r]
    if min_pairs is not None:  # lengths vary
        assert len(set((~d.padding_mask).sum(-1).tolist())) > 1


def test_retrieval_is_seeded_and_roughly_uniform() -> None:
    a = key_value_retrieval(2000, 8, 16, 4, seed=1)
    b = key_value_retrieval(2000, 8, 16, 4, seed=1)
    c = key_value_retrieval(2000, 8, 16, 4, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(b).values()))
    assert not torch.equal(a.keys, c.keys)
    counts = torch.bincount(a.target, minlength=4).float() / 2000
    assert (counts - 0.25).abs().max() < 0.05  # chance accuracy is 1 / n_values
    match_counts = torch.bincount(a.match, minlength=8).float() / 2000
    assert (match_counts - 1 / 8).abs().max() < 0.04  # the asked pair is anywhere


def test_retrieval_indexing_and_to() -> None:
    d = key_value_retrieval(10, 4, 8, 8, seed=0)
    sub = d[torch.tensor([3, 1])]
    assert isinstance(sub, RetrievalData) and len(sub) == 2
    assert torch.equal(sub.keys[0], d.keys[3]) and torch.equal(sub.target, d.target[[3, 1]])
    assert len(d[2:5]) == 3 and len(d[4]) == 1
    assert d.to("cpu").keys.device.type == "cpu"


def test_retrieval_errors() -> None:
    with pytest.raises(ValueError, match=r"n_pairs=9 cannot exceed n_keys=8"):
        key_value_retrieval(5, 9, 8, 4)
    with pytest.raises(ValueError, match=r"min_pairs must be in \[1, n_pairs=4\], got 5"):
        key_value_retrieval(5, 4, 8, 4, min_pairs=5)
    with pytest.raises(ValueError, match=r"got 0"):
        key_value_retrieval(5, 4, 8, 4, min_pairs=0)
    with pytest.raises(ValueError, match=r"n_values must be a positive integer, got 0"):
        key_value_retrieval(5, 4, 8, 0)


@pytest.mark.parametrize("shift", [1, 3])
def test_previous_token_targets(shift: int) -> None:
    x, y = previous_token_task(50, 7, 5, shift, seed=4)
    assert x.shape == y.shape == (50, 7) and x.dtype == torch.int64
    assert ((x >= 0) & (x < 5)).all()
    for n in range(50):
        for t in range(7):
            assert y[n, t].item() == (x[n, t - shift].item() if t >= shift else IGNORE_INDEX)
    x2, y2 = previous_token_task(50, 7, 5, shift, seed=4)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, previous_token_task(50, 7, 5, shift, seed=5)[0])


def test_previous_token_errors() -> None:
    with pytest.raises(ValueError, match=r"shift must be in \[1, seq_len=4\), got 4"):
        previous_token_task(5, 4, 3, shift=4)
    with pytest.raises(ValueError, match=r"got 0"):
        previous_token_task(5, 4, 3, shift=0)
    with pytest.raises(ValueError, match=r"vocab_size must be a positive integer, got 0"):
        previous_token_task(5, 4, 0)
