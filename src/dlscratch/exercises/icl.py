r"""Exercise checkers for chapter 30, "In-context learning and induction heads" (topic prefix ``icl.``).

The function checker runs the package's own tested
:func:`~dlscratch.training.icl.prefix_matching_score` on seeded random attention patterns and
compares; the number checkers recompute the answer from the formulas. A wrong answer gets a
hint. The reference solutions live in the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..training.icl import prefix_matching_score
from .answers import grade_number, require_callable
from .core import exercise

__all__ = ["OLS_VALUES", "SCORE_VALUES", "check_prefix_matching", "check_ols_error", "check_perfect_score"]

# icl.ols_error: least squares on k noisy points in d dimensions, noise standard deviation sigma
OLS_VALUES = {"dim": 5, "k": 10, "noise_std": 0.5}
# icl.perfect_score: repeated random tokens over V = vocab_size, early and late positions of the ICL score
SCORE_VALUES = {"vocab_size": 1000, "seq_len": 64, "early": 8, "late": 56}


def _causal_weights(B: int, nh: int, T: int, gen: torch.Generator) -> torch.Tensor:
    scores = torch.randn(B, nh, T, T, generator=gen, dtype=torch.float64) * 2
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(-1)  # (B, nh, T, T), each row sums to 1 over the keys j <= t


@exercise("icl.prefix_matching")
def check_prefix_matching(answer: Any) -> None:
    r"""``answer(weights, tokens)``: each head's mean attention on the keys :math:`j \le t` with :math:`x_{j-1} = x_t`."""
    fn = require_callable(answer, "my_prefix_matching_score")
    gen = torch.Generator().manual_seed(30)
    for B, nh, T, V in ((2, 3, 12, 4), (1, 1, 5, 2), (3, 2, 20, 6)):
        tokens = torch.randint(0, V, (B, T), generator=gen)
        weights = _causal_weights(B, nh, T, gen)
        want = prefix_matching_score(weights, tokens)
        with torch.no_grad():
            got = fn(weights, tokens)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (nh,):
            raise AssertionError(f"return one score per head, a tensor of shape (nh,) = ({nh},), got {getattr(got, 'shape', type(got).__name__)}")
        if torch.allclose(got.double(), want, atol=1e-8):
            continue
        same = (tokens[:, :, None] == tokens[:, None, :]) & torch.ones(T, T, dtype=torch.bool).tril()  # x_j == x_t
        if torch.allclose(got.double(), (weights * same[:, None]).sum(-1).mean(dim=(0, 2)), atol=1e-8):
            raise AssertionError("that is the attention on earlier copies of the current token (x_j = x_t); "
                                 "an induction head looks one further, at the token after each copy (x_{j-1} = x_t).")
        raise AssertionError(
            f"wrong values for B={B}, nh={nh}, T={T}. For each query t, add the weights on the keys j (1 <= j <= t) with "
            "tokens[j - 1] == tokens[t], then average over the queries that have at least one such key (not over all queries)."
        )


@exercise("icl.ols_error")
def check_ols_error(answer: Any) -> None:
    r"""The expected squared error of least squares on the next point, :math:`\sigma^2 (1 + d / (k - d - 1))`."""
    d, k, s2 = OLS_VALUES["dim"], OLS_VALUES["k"], OLS_VALUES["noise_std"] ** 2
    want = s2 * (1 + d / (k - d - 1))
    grade_number(answer, "the expected squared error", want, mistakes=(
        (want / d, "that is the error divided by d (the plots' normalisation); the question asks for the squared error itself."),
        (s2 * d / (k - d - 1), "that is the error of the estimate w_hat alone; the new point's own noise sigma^2 comes on top."),
        (s2 * (1 + d / (k - d)), "close: the Wishart mean gives E[(X^T X)^(-1)] = I / (k - d - 1), not I / (k - d)."),
    ), hint="E[(y - x^T w_hat)^2] = sigma^2 + sigma^2 E[x^T (X^T X)^(-1) x] with E[(X^T X)^(-1)] = I / (k - d - 1).")


@exercise("icl.perfect_score")
def check_perfect_score(answer: Any) -> None:
    r"""The ICL score of a model that knows nothing before the repeat and copies perfectly in it: :math:`0 - \ln V`."""
    V = SCORE_VALUES["vocab_size"]
    grade_number(answer, "the ICL score", -math.log(V), rel=1e-3, mistakes=(
        (math.log(V), "check the sign: the score is the late loss minus the early loss, and the context lowers the late one."),
        (-math.log2(V), "that is in bits; the book's losses are in nats (natural logarithm)."),
    ), hint="what is the loss of a uniform guess over V tokens, and of a perfect copy?")
