"""Checkers of the chapter 11 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import check, core, grade
from dlscratch.exercises.attention import PREDICT_K, PREDICT_Q
from dlscratch.layers import scaled_dot_product_attention


@pytest.fixture(autouse=True)
def _only_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("attention",))


# ---- attention.causal_mask
def mask_solution(T: int) -> torch.Tensor:
    i = torch.arange(T)
    return i[None, :] <= i[:, None]


def mask_inverted(T: int) -> torch.Tensor:
    return ~mask_solution(T)


def mask_upper(T: int) -> torch.Tensor:
    return mask_solution(T).T


def mask_no_diagonal(T: int) -> torch.Tensor:
    return torch.ones(T, T).tril(-1).bool()


def mask_float(T: int) -> torch.Tensor:
    return torch.ones(T, T).tril()


def mask_todo(T: int) -> torch.Tensor:
    raise NotImplementedError


# ---- attention.predict_weights
E = math.e
PREDICT_SOLUTION = [[1.0, 0.0, 0.0], [E / (E + 1), 1 / (E + 1), 0.0], [1 / 3, 1 / 3, 1 / 3]]
PREDICT_UNSCALED = [[1.0, 0.0, 0.0], [E**2 / (E**2 + 1), 1 / (E**2 + 1), 0.0], [1 / 3, 1 / 3, 1 / 3]]
PREDICT_NOT_CAUSAL = [[1 / (2 + E**2), E**2 / (2 + E**2), 1 / (2 + E**2)], PREDICT_SOLUTION[1], [1 / 3] * 3]


# ---- attention.padding_mask
def padding_solution(q, k, v, lengths):
    S = k.size(-2)
    mask = torch.arange(S)[None, None, :] < lengths[:, None, None]  # (B, 1, S)
    return scaled_dot_product_attention(q, k, v, mask=mask)[0]


def padding_with_torch(q, k, v, lengths):
    mask = torch.arange(k.size(-2))[None, :] < lengths[:, None]  # (B, S)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, :])


def padding_ignores_lengths(q, k, v, lengths):
    return scaled_dot_product_attention(q, k, v)[0]


def padding_inverted(q, k, v, lengths):
    mask = torch.arange(k.size(-2))[None, None, :] >= lengths[:, None, None]
    return torch.nan_to_num(scaled_dot_product_attention(q, k, v, mask=mask)[0])


def padding_masks_queries_too(q, k, v, lengths):
    keep = torch.arange(k.size(-2))[None, :] < lengths[:, None]  # (B, S), T < S here
    mask = keep[:, None, :] & keep[:, : q.size(1), None]
    return scaled_dot_product_attention(q, k, v, mask=mask)[0]


def padding_tuple(q, k, v, lengths):
    mask = torch.arange(k.size(-2))[None, None, :] < lengths[:, None, None]
    return scaled_dot_product_attention(q, k, v, mask=mask)


def padding_todo(q, k, v, lengths):
    raise NotImplementedError


CORRECT: list[tuple[str, Any]] = [
    ("attention.causal_mask", mask_solution),
    ("attention.causal_mask", lambda T: torch.ones(T, T, dtype=torch.bool).tril()),
    ("attention.predict_weights", PREDICT_SOLUTION),
    ("attention.predict_weights", torch.tensor(PREDICT_SOLUTION)),
    ("attention.padding_mask", padding_solution),
    ("attention.padding_mask", padding_with_torch),
    ("attention.logit_scale", 1 / 16),
    ("attention.logit_scale", torch.tensor(0.0625)),
]

WRONG: list[tuple[str, Any]] = [
    ("attention.causal_mask", mask_inverted),
    ("attention.causal_mask", mask_upper),
    ("attention.causal_mask", mask_no_diagonal),
    ("attention.causal_mask", mask_float),
    ("attention.causal_mask", mask_todo),
    ("attention.causal_mask", torch.ones(3, 3).bool()),
    ("attention.causal_mask", ...),
    ("attention.predict_weights", PREDICT_UNSCALED),
    ("attention.predict_weights", PREDICT_NOT_CAUSAL),
    ("attention.predict_weights", [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
    ("attention.predict_weights", [[1.0, 0.0], [0.5, 0.5]]),
    ("attention.predict_weights", "0.73"),
    ("attention.predict_weights", ...),
    ("attention.padding_mask", padding_ignores_lengths),
    ("attention.padding_mask", padding_inverted),
    ("attention.padding_mask", padding_masks_queries_too),
    ("attention.padding_mask", padding_tuple),
    ("attention.padding_mask", padding_todo),
    ("attention.padding_mask", ...),
    ("attention.logit_scale", 1 / 8),
    ("attention.logit_scale", 1 / 256),
    ("attention.logit_scale", 0.5),
    ("attention.logit_scale", "1/16"),
    ("attention.logit_scale", ...),
]


@pytest.mark.parametrize(("name", "answer"), CORRECT)
def test_correct_answer_passes(name: str, answer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is True and verdict.message.startswith("✓")


@pytest.mark.parametrize(("name", "answer"), WRONG)
def test_wrong_or_missing_answer_fails(name: str, answer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    verdict = grade(name, answer)
    # a wrong answer is graded False, a placeholder None (not attempted)
    assert (verdict.correct, verdict.message[0]) in {(False, "✗"), (None, "○")}


@pytest.mark.parametrize(
    ("name", "answer", "hint"),
    [
        ("attention.causal_mask", mask_inverted, "blocked"),
        ("attention.causal_mask", mask_upper, "lower triangle"),
        ("attention.causal_mask", mask_no_diagonal, "diagonal"),
        ("attention.causal_mask", mask_float, "bool"),
        ("attention.predict_weights", PREDICT_UNSCALED, "scale"),
        ("attention.predict_weights", PREDICT_NOT_CAUSAL, "causal"),
        ("attention.predict_weights", [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], "sum to 1"),
        ("attention.padding_mask", padding_ignores_lengths, "ignores `lengths`"),
        ("attention.padding_mask", padding_masks_queries_too, "nan"),
        ("attention.padding_mask", padding_tuple, "tuple"),
        ("attention.logit_scale", 1 / 8, "variance 4"),
        ("attention.logit_scale", 1 / 256, "s**2"),
    ],
)
def test_wrong_answer_gets_a_hint(name: str, answer: Any, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message


def test_references_are_independent_of_the_checkers() -> None:
    # the reference answers above, recomputed with torch's own attention
    q = torch.tensor(PREDICT_Q, dtype=torch.float64)
    k = torch.tensor(PREDICT_K, dtype=torch.float64)
    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    w = torch.softmax((q @ k.T / 2).masked_fill(~causal, float("-inf")), dim=-1)
    torch.testing.assert_close(w, torch.tensor(PREDICT_SOLUTION, dtype=torch.float64))
    # Var(q . k) = d Var(q_i) Var(k_i) = 64 * 4 * 1 = 256, so s = 1/16; checked by simulation
    g = torch.Generator().manual_seed(0)
    qs = 2 * torch.randn(20000, 64, generator=g, dtype=torch.float64)  # variance 4
    ks = torch.randn(20000, 64, generator=g, dtype=torch.float64)  # variance 1
    assert abs(((qs * ks).sum(-1) / 16).var().item() - 1.0) < 0.05


def test_unknown_exercise_is_an_error() -> None:
    with pytest.raises(ValueError, match="attention.nope"):
        check("attention.nope", 1)
