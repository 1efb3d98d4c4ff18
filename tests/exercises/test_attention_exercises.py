"""Checkers of the chapter 11 exercises: a correct answer passes, wrong ones fail with a specific hint, ``...`` is open."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import check, core, grade
from dlscratch.exercises.attention import PREDICT_K, PREDICT_Q, SELF_BATCH, SELF_D, SELF_T
from dlscratch.layers import scaled_dot_product_attention

from .grading import assert_correct, assert_grades, assert_hint, assert_rejected


@pytest.fixture(autouse=True)
def _only_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("attention",))


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
    ("attention.predict_weights", PREDICT_SOLUTION),
    ("attention.predict_weights", torch.tensor(PREDICT_SOLUTION)),
    ("attention.padding_mask", padding_solution),
    ("attention.padding_mask", padding_with_torch),
    ("attention.logit_scale", 1 / 16),
    ("attention.logit_scale", torch.tensor(0.0625)),
]

WRONG: list[tuple[str, Any]] = [
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
def test_correct_answer_passes(name: str, answer: Any) -> None:
    assert_correct(name, answer)


@pytest.mark.parametrize(("name", "answer"), WRONG)
def test_wrong_or_missing_answer_fails(name: str, answer: Any) -> None:
    assert_rejected(name, answer)


@pytest.mark.parametrize(
    ("name", "answer", "hint"),
    [
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
def test_wrong_answer_gets_a_hint(name: str, answer: Any, hint: str) -> None:
    assert_hint(name, answer, hint)


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


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- attention.softmax_backward
def softmax_backward(p, grad_p):
    return p * (grad_p - (grad_p * p).sum(-1, keepdim=True))


def test_softmax_backward() -> None:
    wrongs = {
        "only diag(p)": lambda p, g: p * g,
        "weighted by p": lambda p, g: p * (g - g.mean(-1, keepdim=True)),
        "last dimension only": lambda p, g: p * (g - (g * p).sum()),
        "multiply by p": lambda p, g: g - (g * p).sum(-1, keepdim=True),
        "logits' shape": lambda p, g: p[..., :1],
        "wrong gradient for logits": lambda p, g: -softmax_backward(p, g),
        "pass your function": lambda: None,
    }
    assert_grades("attention.softmax_backward", lambda: softmax_backward,
                  [(lambda fn=fn: fn) for hint, fn in wrongs.items() if hint != "pass your function"] + [lambda: 3])
    for hint, fn in wrongs.items():
        _wrong("attention.softmax_backward", fn if hint != "pass your function" else 3, hint)


# ---- attention.self_weight
def measured_self_weight(seed: int, scale: float | None = None) -> float:
    torch.manual_seed(seed)
    x = torch.randn(SELF_BATCH, SELF_T, SELF_D)
    _, w = scaled_dot_product_attention(x, x, x, scale=scale)
    return w.diagonal(dim1=-2, dim2=-1).mean().item()


def test_self_weight() -> None:
    for seed in (0, 7):
        assert grade("attention.self_weight", measured_self_weight(seed)).correct
    assert grade("attention.self_weight", torch.tensor(measured_self_weight(1))).correct
    _wrong("attention.self_weight", 1 / SELF_T, "uniform guess")
    _wrong("attention.self_weight", measured_self_weight(0, scale=1.0), "without the 1/sqrt(d)")
    _wrong("attention.self_weight", 0.92, "competing keys")
    _wrong("attention.self_weight", 0.4, "measure it")
    _wrong("attention.self_weight", "0.65", "as a number")
    assert grade("attention.self_weight", ...).correct is None


def test_unknown_exercise_is_an_error() -> None:
    with pytest.raises(ValueError, match="attention.nope"):
        check("attention.nope", 1)
