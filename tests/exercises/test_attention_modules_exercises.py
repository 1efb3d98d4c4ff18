"""Checkers of the chapter 12 exercises: a correct answer passes, wrong ones fail with a specific hint, ``...`` is open."""

from __future__ import annotations

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.attention_modules import RETRIEVER_SIZES, SHARP_C, SHARP_SHAPE
from dlscratch.layers import MultiHeadAttention, split_heads

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_this_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("attention_modules",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- mha.retriever_params: the chapter's Retriever counted by hand
K, V, C, NH = (RETRIEVER_SIZES[k] for k in ("n_keys", "n_values", "d_model", "n_head"))
ATTN = 4 * C * C + 4 * C
RETRIEVER = K * C + V * C + ATTN + C * V + V


def test_retriever_params() -> None:
    assert_grades("mha.retriever_params", lambda: RETRIEVER, [lambda: RETRIEVER + 1, lambda: "10432"])
    assert grade("mha.retriever_params", torch.tensor(RETRIEVER)).correct
    _wrong("mha.retriever_params", RETRIEVER + K * C, "same key table")
    _wrong("mha.retriever_params", RETRIEVER - K * C - V * C, "embedding tables")
    _wrong("mha.retriever_params", RETRIEVER - 4 * C - V, "has a bias")
    _wrong("mha.retriever_params", RETRIEVER - ATTN + NH * ATTN, "whatever nh is")
    _wrong("mha.retriever_params", ATTN, "attention layer alone")
    _wrong("mha.retriever_params", 12345, "add up key_emb")


# ---- mha.head_contributions
def head_contributions(mha, x):
    nh, C = mha.num_heads, mha.embed_dim
    hs = C // nh
    _, w = mha(x, average_attn_weights=False)  # (B, nh, T, T)
    heads = w @ split_heads(mha.v_proj(x), nh)  # (B, nh, T, hs)
    w_o = mha.out_proj.weight.view(C, nh, hs).permute(1, 2, 0)  # (nh, hs, C)
    return heads @ w_o  # (B, nh, T, C)


def with_bias_per_head(mha, x):
    return head_contributions(mha, x) + mha.out_proj.bias


def equal_split(mha, x):
    y, _ = mha(x)
    return (y / mha.num_heads)[:, None].expand(-1, mha.num_heads, -1, -1)


def rows_of_w_o(mha, x):
    nh, C = mha.num_heads, mha.embed_dim
    _, w = mha(x, average_attn_weights=False)
    return (w @ split_heads(mha.v_proj(x), nh)) @ mha.out_proj.weight.view(nh, C // nh, C)


def no_output_map(mha, x):
    _, w = mha(x, average_attn_weights=False)
    return w @ split_heads(mha.v_proj(x), mha.num_heads)


def test_head_contributions() -> None:
    wrongs = [with_bias_per_head, equal_split, rows_of_w_o, no_output_map, lambda m, x: 2 * head_contributions(m, x)]
    assert_grades("mha.head_contributions", lambda: head_contributions, [(lambda f=f: f) for f in wrongs] + [lambda: 3])
    _wrong("mha.head_contributions", with_bias_per_head, "added once")
    _wrong("mha.head_contributions", equal_split, "equal split")
    _wrong("mha.head_contributions", rows_of_w_o, "*columns*")
    _wrong("mha.head_contributions", no_output_map, "hs columns of W_O")
    _wrong("mha.head_contributions", lambda m, x: 2 * head_contributions(m, x), "wrong shares")
    _wrong("mha.head_contributions", lambda m, x: [1.0], "torch.Tensor")
    _wrong("mha.head_contributions", 3, "pass your function")


# ---- mha.head_sharpness: the reader's measurement, any seed
def measured_sharpness(nh: int, seed: int, average: bool = False) -> float:
    torch.manual_seed(seed)
    mha = MultiHeadAttention(SHARP_C, nh)
    x = torch.randn(*SHARP_SHAPE)
    with torch.no_grad():
        _, w = mha(x, average_attn_weights=average)
    return w.max(-1).values.mean().item()


def test_head_sharpness() -> None:
    for seed in (3, 4):
        assert grade("mha.head_sharpness", (measured_sharpness(1, seed), measured_sharpness(16, seed))).correct
    one = measured_sharpness(1, 5)
    assert_grades("mha.head_sharpness", lambda: [one, measured_sharpness(16, 5)], [lambda: (one, 0.5), lambda: one])
    _wrong("mha.head_sharpness", (1 / 16, 1 / 16), "exactly uniform")
    _wrong("mha.head_sharpness", (one, measured_sharpness(16, 5, average=True)), "head-averaged")
    _wrong("mha.head_sharpness", (one, 0.5), "sqrt(hs)")
    _wrong("mha.head_sharpness", (0.3, 0.3), "measure it")
    _wrong("mha.head_sharpness", (one, "0.13"), "as a number")
