"""Chapter 30's scores: token losses, previous-token and prefix-matching scores, ICL score, regression baselines, prompts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.training.icl import (
    averaging_predictions,
    few_shot_prompt,
    icl_score,
    least_squares_predictions,
    masked_mean,
    prefix_matching_score,
    previous_token_score,
    squared_errors,
    token_losses,
)


def test_token_losses_match_cross_entropy() -> None:
    logits, x = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 6))
    losses = token_losses(logits, x)
    assert torch.isnan(losses[:, 0]).all()
    torch.testing.assert_close(losses[:, 1:].mean(), F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten()))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[1, 3] = True
    assert masked_mean(losses, mask) == pytest.approx(losses[1, 3].item())


def induction_pattern(tokens: torch.Tensor) -> torch.Tensor:
    """Each query attends to the token after the last earlier copy of itself, or to itself."""
    B, T = tokens.shape
    w = torch.zeros(B, 1, T, T)
    for b in range(B):
        for t in range(T):
            js = [j for j in range(1, t + 1) if tokens[b, j - 1] == tokens[b, t]]
            w[b, 0, t, js[-1] if js else t] = 1.0
    return w


def test_prefix_matching_score_on_constructed_patterns() -> None:
    seg = torch.tensor([[3, 1, 4, 0, 5, 9]])
    tokens = torch.cat([seg, seg], 1)  # (1, 12): the second half repeats the first
    induction = induction_pattern(tokens)
    T = tokens.size(1)
    previous = torch.zeros(1, 1, T, T)
    previous[0, 0, 0, 0] = 1.0
    previous[0, 0, torch.arange(1, T), torch.arange(0, T - 1)] = 1.0
    uniform = torch.ones(T, T).tril()
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None]
    weights = torch.cat([induction, previous, uniform], 1)  # (1, 3, T, T)
    score = prefix_matching_score(weights, tokens)
    # queries with a match: positions 6..11 (each has exactly one, at j = t - 5)
    assert score[0].item() == pytest.approx(1.0)
    assert score[1].item() == pytest.approx(0.0)
    assert score[2].item() == pytest.approx(sum(1 / (t + 1) for t in range(6, 12)) / 6)
    prev = previous_token_score(weights)
    assert prev[1].item() == pytest.approx(1.0) and prev[0].item() == pytest.approx(0.0)


def test_prefix_matching_counts_every_match() -> None:
    tokens = torch.tensor([[2, 7, 2, 8, 2]])  # at t = 4, keys 1 and 3 follow earlier 2s
    w = torch.zeros(1, 1, 5, 5)
    w[0, 0, :, 0] = 1.0
    w[0, 0, 4] = torch.tensor([0.0, 0.25, 0.0, 0.5, 0.25])
    w[0, 0, 2] = torch.tensor([0.0, 0.6, 0.4, 0.0, 0.0])
    # matches: t = 2 (x_2 = 2): j = 1 (x_0 = 2); t = 4: j = 1, 3; no other query has one
    assert prefix_matching_score(w, tokens).item() == pytest.approx((0.6 + 0.75) / 2)


def test_icl_score() -> None:
    losses = torch.tensor([[float("nan"), 3.0, 2.0, 1.0], [float("nan"), 5.0, 2.0, 0.0]])
    assert icl_score(losses, 1, 3) == pytest.approx(0.5 - 4.0)


@pytest.mark.parametrize(("K", "d"), [(9, 3), (6, 1), (4, 5)])
def test_least_squares_matches_lstsq(K: int, d: int) -> None:
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(4, K, d, generator=g, dtype=torch.float64), torch.randn(4, K, generator=g, dtype=torch.float64)
    preds = least_squares_predictions(xs, ys)
    assert (preds[:, 0] == 0).all()
    for i in range(1, K):
        if i >= d:  # overdetermined or square: the unique least-squares solution
            w = torch.linalg.lstsq(xs[:, :i], ys[:, :i, None]).solution  # (B, d, 1)
        else:  # underdetermined: lstsq's gelsd driver gives the minimum-norm solution
            w = torch.linalg.lstsq(xs[:, :i], ys[:, :i, None], driver="gelsd").solution
        torch.testing.assert_close(preds[:, i], (xs[:, i, None, :] @ w)[:, 0, 0])


def test_least_squares_exact_without_noise() -> None:
    g = torch.Generator().manual_seed(1)
    xs, w = torch.randn(8, 7, 3, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
    ys = torch.einsum("bkd,bd->bk", xs, w)
    torch.testing.assert_close(least_squares_predictions(xs, ys)[:, 3:], ys[:, 3:])


def test_averaging_matches_a_loop() -> None:
    g = torch.Generator().manual_seed(2)
    xs, ys = torch.randn(3, 6, 2, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g, dtype=torch.float64)
    preds = averaging_predictions(xs, ys)
    for i in range(6):
        w = sum(ys[:, j, None] * xs[:, j] for j in range(i)) / i if i else torch.zeros(3, 2, dtype=torch.float64)
        torch.testing.assert_close(preds[:, i], (w * xs[:, i]).sum(-1))
    torch.testing.assert_close(squared_errors(preds, ys, 2), ((preds - ys) ** 2).mean(0) / 2)


def test_few_shot_prompt() -> None:
    demos = [("cheval", "horse"), ("chat", "cat")]
    assert few_shot_prompt(demos, "chien") == "Input: cheval\nOutput: horse\n\nInput: chat\nOutput: cat\n\nInput: chien\nOutput:"
    zero = few_shot_prompt([], "chien", instruction="Translate French to English.")
    assert zero == "Translate French to English.\n\nInput: chien\nOutput:"


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"weights must be \(B, nh, T, T\)"):
        prefix_matching_score(torch.ones(2, 3, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokens must be \(B, T\) = \(1, 3\), got shape \(1, 4\)"):
        prefix_matching_score(torch.ones(1, 1, 3, 3), torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="no query has a prefix match"):
        prefix_matching_score(torch.ones(1, 1, 3, 3), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="expected 1 <= early < late < T = 4, got early=3, late=2"):
        icl_score(torch.zeros(2, 4), 3, 2)
    with pytest.raises(ValueError, match=r"expected xs \(B, K, d\) and ys \(B, K\)"):
        least_squares_predictions(torch.zeros(2, 3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="needs an instruction or at least one demonstration"):
        few_shot_prompt([], "x")
    with pytest.raises(ValueError, match="the mask selects no position"):
        masked_mean(torch.zeros(2), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"expected logits \(B, T - 1, V\)"):
        token_losses(torch.zeros(2, 4, 3), torch.zeros(2, 4, dtype=torch.long))
    assert math.isfinite(icl_score(torch.ones(1, 3), 1, 2))
