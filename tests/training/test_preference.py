"""Summed log-probabilities cover the response only; pairs drop and count identical and tied rows; sampling and best-of-N checks."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.models.zero_shot import continuation_logprobs
from dlscratch.tokenizers import CharTokenizer
from dlscratch.training.preference import (
    PreferencePairs,
    best_of_n,
    best_of_n_kl,
    encode_prompts,
    preference_pairs,
    response_logprobs,
    sample_kl,
    sample_responses,
    sft_rows,
)
from tests.training.align_helpers import BLOCK, P, V, pair_rows, tiny_gpt


def test_response_logprobs_sum_over_the_response_only() -> None:
    model = tiny_gpt()
    rows, _ = pair_rows(4)
    got = response_logprobs(model, rows, P)
    want = continuation_logprobs(model, rows[:, :P].tolist(), rows[:, P:].tolist()).double()  # an independent implementation
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    logp = model(rows)[0].log_softmax(-1)  # (B, T, V), by hand
    by_hand = sum(logp[:, t - 1].gather(-1, rows[:, t, None]).squeeze(-1) for t in range(P, rows.size(1)))
    torch.testing.assert_close(got, by_hand)
    changed = rows.clone()
    changed[:, P:] = (changed[:, P:] + 1) % V  # the response changes: so does its log-probability
    assert not torch.allclose(response_logprobs(model, changed, P), got)
    per_token = response_logprobs(model, rows, P, per_token=True)
    assert per_token.shape == (4, rows.size(1) - P)
    torch.testing.assert_close(per_token.sum(-1), got)


def test_prompt_mask_rejects_an_empty_prompt_or_response() -> None:
    rows, _ = pair_rows(2)
    for bad in (0, rows.size(1)):
        with pytest.raises(ValueError, match="prompt_len must be in"):
            response_logprobs(tiny_gpt(), rows, bad)


def test_sample_responses_keeps_the_prompt_and_refuses_a_prompt_longer_than_the_context() -> None:
    model = tiny_gpt(dtype=torch.float32)
    prompts = torch.randint(0, V, (3, P))
    out = sample_responses(model, prompts, 6, torch.Generator().manual_seed(0))
    assert out.shape == (3, P + 6) and torch.equal(out[:, :P], prompts)
    again = sample_responses(model, prompts, 6, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    with pytest.raises(ValueError, match=f"longer than the policy's context block_size={BLOCK}"):
        sample_responses(model, torch.zeros(1, BLOCK, dtype=torch.long), 1, torch.Generator())


def test_sample_kl_is_zero_for_the_reference_itself() -> None:
    model = tiny_gpt()
    rows, _ = pair_rows(5)
    assert sample_kl(model, model, rows, P).abs().max().item() == 0.0


def test_prompts_and_sft_rows_mask_the_prompt() -> None:
    tok = CharTokenizer.from_text("\nabcdefgh ")
    texts = ["abc defgh abc", "ab", "hgfedcba abcd"]
    prompts = encode_prompts(texts, tok, 4)
    assert prompts.tolist() == [tok.encode("\nabc"), tok.encode("\nhgf")]  # "ab" is too short
    x, y = sft_rows(texts, tok, 4, 3)
    assert x.shape == y.shape == (2, 6)
    assert (y[:, :3] == -1).all() and torch.equal(y[:, 3:], torch.tensor([tok.encode(" de"), tok.encode("edc")]))


def test_preference_pairs_take_best_and_worst_and_count_identical_and_tied() -> None:
    s = torch.tensor([[[0, 1, 2], [0, 1, 3], [0, 1, 4]],
                      [[5, 6, 7], [5, 6, 7], [5, 6, 7]],  # identical responses
                      [[8, 9, 1], [8, 9, 2], [8, 9, 3]]])  # all scores tie
    scores = torch.tensor([[0.5, 2.0, -1.0], [1.0, 1.0, 1.0], [3.0, 3.0, 3.0]])
    pairs, dropped = preference_pairs(s, scores, 2)
    assert dropped == {"identical": 1, "tied": 1} and len(pairs) == 1
    assert pairs.chosen.tolist() == [[0, 1, 3]] and pairs.rejected.tolist() == [[0, 1, 4]]


def test_preference_pairs_refuse_identical_rows_and_different_prompts() -> None:
    rows = torch.tensor([[1, 2, 3], [1, 2, 4]])
    with pytest.raises(ValueError, match="1 of 2 pairs have identical chosen and rejected"):
        PreferencePairs(rows, torch.tensor([[1, 2, 3], [1, 2, 5]]), 2)
    with pytest.raises(ValueError, match="share its prompt"):
        PreferencePairs(rows, torch.tensor([[9, 2, 4], [1, 2, 5]]), 2)
    with pytest.raises(ValueError, match="K >= 2"):
        preference_pairs(rows[:, None], torch.zeros(2, 1), 2)


def test_best_of_n_kl_matches_a_discrete_winner_distribution() -> None:
    assert best_of_n_kl(1) == 0.0
    n, M = 8, 20000
    k = torch.arange(1, M + 1, dtype=torch.float64)
    p_win = (k / M) ** n - ((k - 1) / M) ** n  # the winner of n uniform draws over M ranked responses
    kl = (p_win * (p_win * M).log()).sum().item()
    assert kl == pytest.approx(math.log(n) - (n - 1) / n, abs=1e-3)
    proxy = torch.tensor([[0.1, 0.9, 0.5, 2.0]])
    assert best_of_n(torch.zeros(1, 4, 3), proxy, 3).tolist() == [1]
    with pytest.raises(ValueError, match="n must be in"):
        best_of_n(torch.zeros(1, 4, 3), proxy, 5)
    with pytest.raises(ValueError, match="n must be >= 1"):
        best_of_n_kl(0)
