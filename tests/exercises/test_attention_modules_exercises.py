"""Checkers of the chapter 12 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.attention_modules import MEMORY_SHAPE, PARAM_COUNT_EMBED_DIM
from dlscratch.layers import MultiHeadAttention


@pytest.fixture(autouse=True)
def _only_this_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("attention_modules",))


C = PARAM_COUNT_EMBED_DIM


# ---- mha.load_from_torch
@torch.no_grad()
def load_solution(ours: MultiHeadAttention, mha: torch.nn.MultiheadAttention) -> None:
    lins = (ours.q_proj, ours.k_proj, ours.v_proj)
    for lin, w, b in zip(lins, mha.in_proj_weight.chunk(3), mha.in_proj_bias.chunk(3)):
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    ours.out_proj.weight.copy_(mha.out_proj.weight)
    ours.out_proj.bias.copy_(mha.out_proj.bias)


def load_with_package(ours, mha) -> None:
    ours.load_from_torch(mha)


@torch.no_grad()
def load_weights_only(ours, mha) -> None:
    for lin, w in zip((ours.q_proj, ours.k_proj, ours.v_proj), mha.in_proj_weight.chunk(3)):
        lin.weight.copy_(w)
    ours.out_proj.weight.copy_(mha.out_proj.weight)


@torch.no_grad()
def load_wrong_order(ours, mha) -> None:
    load_solution(ours, mha)
    w_q, w_k, _ = mha.in_proj_weight.chunk(3)
    ours.q_proj.weight.copy_(w_k)
    ours.k_proj.weight.copy_(w_q)


@torch.no_grad()
def load_transposed(ours, mha) -> None:
    load_solution(ours, mha)
    ours.q_proj.weight.copy_(mha.in_proj_weight.chunk(3)[0].T)


def load_todo(ours, mha) -> None:
    raise NotImplementedError


# ---- mha.allowed_mask
def mask_solution(key_padding_mask: torch.Tensor, T: int, is_causal: bool) -> torch.Tensor:
    B, S = key_padding_mask.shape
    i, j = torch.arange(T)[:, None], torch.arange(S)[None, :]
    order = (j <= i) | (not is_causal)  # (T, S)
    return ~key_padding_mask[:, None, None, :] & order  # (B, 1, T, S)


def mask_no_negation(pad, T, is_causal):
    return pad[:, None, None, :] & mask_solution(torch.zeros_like(pad), T, is_causal)  # True at padding


def mask_ignores_padding(pad, T, is_causal):
    return mask_solution(torch.zeros_like(pad), T, is_causal)


def mask_ignores_causal(pad, T, is_causal):
    return mask_solution(pad, T, False)


def mask_inverted(pad, T, is_causal):
    return ~mask_solution(pad, T, is_causal)


def mask_no_head_dim(pad, T, is_causal):
    return mask_solution(pad, T, is_causal)[:, 0]


def mask_float(pad, T, is_causal):
    return mask_solution(pad, T, is_causal).float()


CORRECT: list[tuple[str, Any]] = [
    ("mha.param_count", 4 * C * C + 4 * C),
    ("mha.param_count", torch.tensor(4 * C * C + 4 * C)),
    ("mha.param_count", sum(p.numel() for p in MultiHeadAttention(C, 4).parameters())),
    ("mha.load_from_torch", load_solution),
    ("mha.load_from_torch", load_with_package),
    ("mha.allowed_mask", mask_solution),
    ("mha.weights_memory", 8 * 8 * 1024 * 1024 * 4),
    ("mha.weights_memory", 2**28),
]

WRONG: list[tuple[str, Any]] = [
    ("mha.param_count", 4 * C * C),
    ("mha.param_count", 3 * C * C + 3 * C),
    ("mha.param_count", 4 * C * C // 4 + 4 * C),
    ("mha.param_count", "9408"),
    ("mha.param_count", ...),
    ("mha.load_from_torch", load_weights_only),
    ("mha.load_from_torch", load_wrong_order),
    ("mha.load_from_torch", load_transposed),
    ("mha.load_from_torch", load_todo),
    ("mha.load_from_torch", 3),
    ("mha.load_from_torch", ...),
    ("mha.allowed_mask", mask_no_negation),
    ("mha.allowed_mask", mask_ignores_padding),
    ("mha.allowed_mask", mask_ignores_causal),
    ("mha.allowed_mask", mask_inverted),
    ("mha.allowed_mask", mask_no_head_dim),
    ("mha.allowed_mask", mask_float),
    ("mha.allowed_mask", ...),
    ("mha.weights_memory", 8 * 8 * 1024 * 1024),
    ("mha.weights_memory", 8 * 1024 * 1024 * 4),
    ("mha.weights_memory", 8 * 1024 * 512 * 4),
    ("mha.weights_memory", ...),
]


@pytest.mark.parametrize(("name", "answer"), CORRECT)
def test_correct_answer_passes(name: str, answer: Any) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is True and verdict.message.startswith("✓"), verdict.message


@pytest.mark.parametrize(("name", "answer"), WRONG)
def test_wrong_or_missing_answer_fails(name: str, answer: Any) -> None:
    verdict = grade(name, answer)
    assert (verdict.correct, verdict.message[0]) in {(False, "✗"), (None, "○")}


@pytest.mark.parametrize(
    ("name", "answer", "hint"),
    [
        ("mha.param_count", 4 * C * C, "bias"),
        ("mha.param_count", 3 * C * C + 3 * C, "output projection"),
        ("mha.param_count", 4 * C * C // 4 + 4 * C, "heads"),
        ("mha.load_from_torch", load_weights_only, "bias was not copied"),
        ("mha.load_from_torch", load_wrong_order, "[W_q; W_k; W_v]"),
        ("mha.load_from_torch", load_transposed, "transposed"),
        ("mha.allowed_mask", mask_no_negation, "negate"),
        ("mha.allowed_mask", mask_ignores_padding, "padding keys are still allowed"),
        ("mha.allowed_mask", mask_ignores_causal, "j <= i"),
        ("mha.allowed_mask", mask_inverted, "inverted"),
        ("mha.allowed_mask", mask_no_head_dim, "(B, 1, T, S)"),
        ("mha.allowed_mask", mask_float, "bool"),
        ("mha.weights_memory", 8 * 8 * 1024 * 1024, "4 bytes"),
        ("mha.weights_memory", 8 * 1024 * 1024 * 4, "nh"),
        ("mha.weights_memory", 8 * 1024 * 512 * 4, "independent of C"),
    ],
)
def test_wrong_answer_gets_a_hint(name: str, answer: Any, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


def test_references_are_independent_of_the_checkers() -> None:
    # the memory answer, measured: the size of the weights our module actually returns (scaled down)
    B, nh, T, S = (MEMORY_SHAPE[k] for k in ("B", "nh", "T", "S"))
    small = MultiHeadAttention(16, 8)
    _, w = small(torch.randn(B, 64, 16), average_attn_weights=False)
    assert w.shape == (B, nh, 64, 64) and w.element_size() * w.numel() * (T // 64) * (S // 64) == 2**28
    # the mask solution agrees with what the module does with padding and causality
    pad = torch.tensor([[False, False, True]])
    mha = MultiHeadAttention(4, 2, dtype=torch.float64)
    x = torch.randn(1, 3, 4, dtype=torch.float64)
    _, w = mha(x, key_padding_mask=pad, is_causal=True, average_attn_weights=False)
    assert torch.equal(w > 0, mask_solution(pad, 3, True).expand(1, 2, 3, 3))
