"""Span corruption: T5's counts, the mask's spans, input + target give back the text, i.i.d. lengths, bad input."""

from __future__ import annotations

import pytest
import torch

from dlscratch.models.span_corruption import (
    expected_iid_target_length,
    iid_noise_mask,
    random_spans_noise_mask,
    sentinel_spans,
    span_corruption,
    span_counts,
)

SENTINELS = torch.arange(999, 899, -1)  # <extra_id_0> = 999, <extra_id_1> = 998, ...
EOS, PAD = 1, 0


def spans_of(mask: torch.Tensor) -> list[list[int]]:
    """Lengths of the noise spans of each row, counted with a plain loop (an independent formulation)."""
    out = []
    for row in mask.tolist():
        runs, prev = [], False
        for m in row:
            if m and not prev:
                runs.append(0)
            if m:
                runs[-1] += 1
            prev = m
        out.append(runs)
    return out


def uncorrupt(inp: list[int], tgt: list[int]) -> list[int]:
    """Rebuild the text: each sentinel of the input is replaced by what follows it in the target."""
    fills, cur = {}, None
    for t in tgt:
        if t in (EOS, PAD):
            break
        if t in SENTINELS.tolist():
            cur = t
            fills[cur] = []
        else:
            fills[cur].append(t)
    out = []
    for t in inp:
        if t in (EOS, PAD):
            break
        out.extend(fills[t] if t in fills else [t])
    return out


@pytest.mark.parametrize("L, d, mu", [(512, 0.15, 3.0), (114, 0.15, 3.0), (64, 0.5, 1.0), (20, 0.15, 3.0), (2, 0.1, 5.0)])
def test_counts_are_t5s(L: int, d: float, mu: float) -> None:
    n, s, li, lt = span_counts(L, d, mu)
    assert n == min(max(round(L * d), 1), L - 1) and s == max(round(n / mu), 1)
    assert (li, lt) == (L - n + s + 1, n + s + 1)
    mask = random_spans_noise_mask(50, L, d, mu, torch.Generator().manual_seed(0))
    assert bool((mask.sum(1) == n).all())
    assert all(len(runs) == s and min(runs) >= 1 for runs in spans_of(mask))
    assert not bool(mask[:, 0].any())  # a kept span first


def test_corruption_round_trip_and_shapes() -> None:
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(10, 800, (16, 100), generator=g)
    inp, tgt = span_corruption(tokens, SENTINELS, eos_id=EOS, pad_id=PAD, generator=g)
    _, s, li, lt = span_counts(100)
    assert inp.shape == (16, li) and tgt.shape == (16, lt)
    assert bool((inp[:, -1] == EOS).all()) and bool((tgt[:, -1] == EOS).all())
    for row in range(16):
        assert uncorrupt(inp[row].tolist(), tgt[row].tolist()) == tokens[row].tolist()
        sentinels_in = [t for t in inp[row].tolist() if t >= 900]
        assert sentinels_in == SENTINELS[:s].tolist()  # <extra_id_0>, <extra_id_1>, ... in order
    mean_span = (span_counts(100).noise / s)
    assert abs(mean_span - 3.0) < 0.5


def test_iid_masks_of_different_lengths_are_padded() -> None:
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(10, 800, (400, 64), generator=g)
    mask = iid_noise_mask(400, 64, 0.15, generator=g)
    lengths = (sentinel_spans(tokens, ~mask, SENTINELS, EOS, PAD) != PAD).sum(1).double()
    expected = expected_iid_target_length(64, 0.15)
    assert abs(lengths.mean().item() - expected) < 4 * lengths.std().item() / 400**0.5
    mask[:, 0] = False  # a kept token first: then sentinel k of the input is sentinel k of the target
    inp, tgt = sentinel_spans(tokens, mask, SENTINELS, EOS, PAD), sentinel_spans(tokens, ~mask, SENTINELS, EOS, PAD)
    for row in range(0, 400, 37):
        assert uncorrupt(inp[row].tolist(), tgt[row].tolist()) == tokens[row].tolist()
    assert sentinel_spans(tokens[:0], mask[:0], SENTINELS, EOS, PAD).shape == (0, 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(noise_density=0.0), r"noise_density must be a number in \(0, 1\), got 0.0"),
    (dict(noise_density=-0.1), r"noise_density must be a number in \(0, 1\), got -0.1"),
    (dict(noise_density=1.0), r"noise_density must be a number in \(0, 1\), got 1.0"),
    (dict(mean_span_length=0), "mean_span_length must be a number >= 1.*got 0"),
    (dict(mean_span_length=-3.0), "mean_span_length must be a number >= 1.*got -3.0"),
])
def test_bad_noise_settings_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        span_counts(100, **kwargs)
    with pytest.raises(ValueError, match=match):
        span_corruption(torch.ones(2, 100, dtype=torch.long), SENTINELS, eos_id=EOS, pad_id=PAD, **kwargs)


def test_too_many_spans_for_the_sentinels_is_refused() -> None:
    with pytest.raises(ValueError, match="give 26 spans, which need 26 sentinels; there are 8"):
        span_corruption(torch.ones(2, 512, dtype=torch.long), SENTINELS[:8], eos_id=EOS, pad_id=PAD)
    mask = torch.tensor([[True, False, True, False, True]])
    with pytest.raises(ValueError, match="a row has 3 noise spans but there are only 2 sentinels"):
        sentinel_spans(torch.ones(1, 5, dtype=torch.long), mask, SENTINELS[:2], EOS, PAD)
    with pytest.raises(ValueError, match="length must be an integer >= 2"):
        span_counts(1)
