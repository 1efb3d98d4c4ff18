"""Checkers of the chapter 27 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core
from dlscratch.exercises.gpt2 import GPT2_MEDIUM
from dlscratch.models.gpt import GPT, GPTConfig
from tests.exercises.grading import assert_correct, assert_hint, assert_rejected


@pytest.fixture(autouse=True)
def _only_gpt2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("gpt2",))


def split_c_attn(weight: torch.Tensor, bias: torch.Tensor, transpose: bool = True, order: tuple[int, ...] = (0, 1, 2)) -> list:
    C = weight.size(0)
    ws = weight.t().split(C, dim=0) if transpose else weight.split(C, dim=1)  # forgetting the transpose: (C, C) pieces of W^T
    pieces = list(zip(ws, bias.split(C)))
    return [pieces[i] for i in order]


def medium_parameters() -> int:
    c = GPT2_MEDIUM
    with torch.device("meta"):
        m = GPT(GPTConfig(vocab_size=c["vocab_size"], block_size=c["n_positions"], n_layer=c["n_layer"], n_head=c["n_head"],
                          n_embd=c["n_embd"], bias=True, activation="gelu_tanh"))
    return sum(p.numel() for p in m.parameters())


def continuation_logprob(model: Any, prompt: list[int], cont: list[int], shift: int = 1, only_first: bool = False, raw: bool = False) -> float:
    logits = model(torch.tensor([prompt + cont]))[0][0]  # (T, V)
    logp = logits if raw else logits.log_softmax(-1)
    terms = [logp[len(prompt) - shift + j, cont[j]] for j in range(len(cont))]
    return float(terms[0] if only_first else sum(terms))


def test_split_c_attn() -> None:
    assert_correct("gpt2.split_c_attn", split_c_attn)
    assert_hint("gpt2.split_c_attn", lambda w, b: split_c_attn(w, b, transpose=False), "Conv1D stores (in, out)")
    assert_hint("gpt2.split_c_attn", lambda w, b: split_c_attn(w, b, order=(2, 1, 0)), "queries, keys, values")
    assert_hint("gpt2.split_c_attn", lambda w, b: split_c_attn(w, b)[:2], "three pairs")
    assert_rejected("gpt2.split_c_attn", 3)
    assert_rejected("gpt2.split_c_attn", ...)


def test_medium_parameters() -> None:
    n = medium_parameters()
    assert n == 354_823_168  # Hugging Face's gpt2-medium
    assert_correct("gpt2.medium_parameters", n)
    c = GPT2_MEDIUM
    assert_hint("gpt2.medium_parameters", n + c["vocab_size"] * c["n_embd"], "tied")
    assert_hint("gpt2.medium_parameters", n - c["n_positions"] * c["n_embd"], "position table")
    assert_hint("gpt2.medium_parameters", n - 2 * c["n_embd"], "final LayerNorm")
    assert_rejected("gpt2.medium_parameters", 7)
    assert_rejected("gpt2.medium_parameters", "many")
    assert_rejected("gpt2.medium_parameters", ...)


def test_continuation_logprob() -> None:
    assert_correct("gpt2.continuation_logprob", continuation_logprob)
    assert_hint("gpt2.continuation_logprob", lambda m, p, c: continuation_logprob(m, p, c, shift=0) if len(c) > 1 else continuation_logprob(m, p, c), "off by one")
    assert_hint("gpt2.continuation_logprob", lambda m, p, c: continuation_logprob(m, p, c, only_first=True), "every token")
    assert_rejected("gpt2.continuation_logprob", lambda m, p, c: continuation_logprob(m, p, c, raw=True))
    assert_rejected("gpt2.continuation_logprob", 0.5)
    assert_rejected("gpt2.continuation_logprob", ...)
