"""The one sampling module: the filters, ``sample_logits``'s draw, and the batched word sampler."""

from __future__ import annotations

import pytest
import torch

from dlscratch.models.sampling import sample_logits, sample_sequences, sample_words, top_k_filter, top_p_filter

V = 5


def bigram_logits(table: torch.Tensor):
    return lambda ctx: table[ctx[:, -1]]


def test_top_k_one_and_temperature_zero_are_greedy() -> None:
    logits = torch.randn(50, 13)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_logits(logits, top_k=1, generator=g), logits.argmax(-1))
    assert torch.equal(sample_logits(logits, temperature=0.0), logits.argmax(-1))


def test_top_k_filter_keeps_k_largest() -> None:
    z = torch.tensor([[1.0, 5.0, 3.0, -2.0, 4.0]])
    out = top_k_filter(z, 3)
    assert torch.isinf(out).tolist() == [[True, False, False, True, False]]
    assert torch.equal(top_k_filter(z, 99), z)
    with pytest.raises(ValueError, match="top_k=0"):
        top_k_filter(z, 0)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.7, 0.9, 0.999, 1.0])
def test_top_p_keeps_smallest_set_with_mass_at_least_p(p: float) -> None:
    logits = torch.randn(20, 11, dtype=torch.float64)
    kept = ~torch.isinf(top_p_filter(logits, p))
    probs = torch.softmax(logits, -1)
    for row in range(20):
        pr, keep = probs[row], kept[row]
        order = pr.argsort(descending=True).tolist()
        n = int(keep.sum())
        assert set(order[:n]) == set(torch.nonzero(keep).flatten().tolist())  # a prefix of the sorted order
        assert pr[keep].sum() >= p - 1e-12  # enough mass
        assert n == 1 or pr[order[: n - 1]].sum() < p  # and no smaller prefix has enough


def test_top_p_worked_example() -> None:
    probs = torch.tensor([[0.5, 0.05, 0.3, 0.15]])
    kept = ~torch.isinf(top_p_filter(probs.log(), 0.8))
    assert kept.tolist() == [[True, False, True, False]]  # 0.5 + 0.3 = 0.8 >= 0.8
    kept = ~torch.isinf(top_p_filter(probs.log(), 0.81))
    assert kept.tolist() == [[True, False, True, True]]
    with pytest.raises(ValueError, match="top_p=0"):
        top_p_filter(probs, 0.0)


def test_sampling_frequencies_follow_filtered_softmax() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -3.0]).repeat(40_000, 1)
    ids = sample_logits(logits, temperature=0.5, top_k=3, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(ids, minlength=5).double() / len(ids)
    expected = torch.softmax(torch.tensor([2.0, 1.0, 0.0]) / 0.5, -1).double()
    torch.testing.assert_close(freq[:3], expected, atol=0.01, rtol=0)
    assert freq[3:].sum() == 0


@pytest.mark.parametrize("u", [0.0, 1.0 - 2.0**-24])
def test_sampling_extreme_uniform_draws_land_on_allowed_tokens(u: float, monkeypatch: pytest.MonkeyPatch) -> None:
    # u = 0 must not pick a zero-probability first token; u just below 1 must not run past the
    # last allowed token (rounding of the cumulative sum) or out of the vocabulary
    logits = torch.tensor([[float("-inf"), 0.3, 1.7, -0.2, float("-inf"), float("-inf")]] * 3)
    monkeypatch.setattr(torch, "rand", lambda *size, generator=None, device=None: torch.full(size, u, device=device))
    ids = sample_logits(logits, temperature=0.7)
    expected = 1 if u == 0.0 else 3  # the first and the last token of nonzero probability
    assert ids.tolist() == [expected] * 3


def test_sample_logits_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(torch.zeros(1, 3), temperature=-1.0)
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        sample_logits(torch.zeros(3))


def test_the_draw_inverts_the_cdf_of_one_seeded_uniform_per_row() -> None:
    # the documented discipline: u = torch.rand(B, 1, generator=g), id = first i with F_i > u
    logits = torch.randn(64, 9, dtype=torch.float64)
    ids = sample_logits(logits, temperature=0.8, generator=torch.Generator().manual_seed(11))
    u = torch.rand(64, 1, generator=torch.Generator().manual_seed(11)).double()
    cdf = torch.softmax(logits.float() / 0.8, -1).double().cumsum(-1)
    expected = (cdf <= u * cdf[:, -1:]).sum(-1)  # number of entries with F_i <= u
    assert torch.equal(ids, expected)


def test_nucleus_frequencies_follow_the_filtered_softmax() -> None:
    base = torch.tensor([1.5, 1.0, 0.2, -0.5, -2.0])
    ids = sample_logits(base.repeat(40_000, 1), top_k=4, top_p=0.8, generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(ids, minlength=5).double() / len(ids)
    p = torch.softmax(base.double(), -1)  # independent: keep the top 4, then the smallest prefix with mass >= 0.8
    p4 = torch.where(torch.arange(5) < 4, p, torch.zeros(())) / p[:4].sum()
    keep = (p4.cumsum(-1) - p4) < 0.8  # tokens are already sorted by probability
    expected = torch.where(keep, p4, torch.zeros(())) / p4[keep].sum()
    torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)


def test_sampling_is_reproducible_and_seed_dependent() -> None:
    table = torch.randn(V, V)
    a = sample_sequences(bigram_logits(table), 2, 50, torch.Generator().manual_seed(3))
    b = sample_sequences(bigram_logits(table), 2, 50, torch.Generator().manual_seed(3))
    c = sample_sequences(bigram_logits(table), 2, 50, torch.Generator().manual_seed(4))
    assert a == b and a != c
    assert all(0 not in s and len(s) <= 50 for s in a)


def test_sequences_draw_through_sample_logits() -> None:
    # one RNG discipline: the batched sampler is a loop over sample_logits with the same generator
    table = torch.randn(V, V)
    g = torch.Generator().manual_seed(5)
    seqs = sample_sequences(bigram_logits(table), 1, 6, g, max_len=4, temperature=0.7, top_k=3)
    g, last, out = torch.Generator().manual_seed(5), torch.zeros(6, dtype=torch.long), []
    for _ in range(4):
        last = sample_logits(table[last], 0.7, 3, None, g)
        out.append(last)
    steps = torch.stack(out, 1).tolist()
    assert seqs == [row[: row.index(0)] if 0 in row else row for row in steps]


def test_first_token_frequencies_follow_the_model() -> None:
    table = torch.randn(V, V)
    seqs = sample_sequences(bigram_logits(table), 3, 20_000, torch.Generator().manual_seed(0), max_len=1)
    freq = torch.bincount(torch.tensor([s[0] if s else 0 for s in seqs]), minlength=V).double() / 20_000
    torch.testing.assert_close(freq, torch.softmax(table[0].double(), -1), atol=0.012, rtol=0)


def test_sampling_follows_the_model() -> None:
    # 0 -> 1 always, 1 -> 2 always, 2 -> 0 (end): every sample is [1, 2]
    table = torch.full((V, V), -1e9)
    table[0, 1] = table[1, 2] = table[2, 0] = 0.0
    assert sample_sequences(bigram_logits(table), 3, 7, torch.Generator().manual_seed(0)) == [[1, 2]] * 7
    words = sample_words(bigram_logits(table), 3, 2, seed=0, itos=[".", "a", "b", "c", "d"])
    assert words == ["ab", "ab"]


def test_max_len_greedy_and_errors() -> None:
    table = torch.zeros(V, V)
    table[:, 0] = -1e9  # never ends
    seqs = sample_sequences(bigram_logits(table), 1, 4, torch.Generator().manual_seed(0), max_len=6)
    assert all(len(s) == 6 for s in seqs)
    table = torch.randn(V, V)
    greedy = sample_sequences(bigram_logits(table), 1, 2, torch.Generator(), max_len=3, temperature=0)
    path, t = [], 0
    for _ in range(3):
        t = int(table[t].argmax())
        path.append(t)
    assert greedy == [path[: path.index(0)] if 0 in path else path] * 2
    with pytest.raises(ValueError, match="temperature must be >= 0, got temperature=-1"):
        sample_sequences(bigram_logits(table), 1, 4, torch.Generator(), temperature=-1)
    with pytest.raises(ValueError, match="max_len must be positive, got 0"):
        sample_sequences(bigram_logits(table), 1, 4, torch.Generator(), max_len=0)
