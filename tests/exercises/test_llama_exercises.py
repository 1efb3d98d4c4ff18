"""Checkers of the chapter 21 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import core, grade
from dlscratch.exercises.llama import CACHE_CONFIG, PARAMS_CONFIG
from dlscratch.layers import apply_rope, apply_rope_interleaved, repeat_kv, rope_angles
from dlscratch.models.llama import LLaMA, LlamaConfig
from tests.exercises.grading import assert_grades


@pytest.fixture(autouse=True)
def _only_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("llama",))


def num_parameters_solution() -> int:
    with torch.device("meta"):
        return LLaMA(LlamaConfig(**PARAMS_CONFIG)).num_parameters()


def kv_cache_bytes_solution() -> int:
    c = CACHE_CONFIG
    cfg = LlamaConfig(vocab_size=65, block_size=c["context"], n_layer=c["n_layer"], n_head=c["n_head"],
                      n_kv_head=c["n_kv_head"], n_embd=c["n_embd"], ffn_hidden=8)
    with torch.device("meta"):
        return LLaMA(cfg).start_cache(c["batch_size"])


def attention(x, wq, wk, wv, wo, n_head, n_kv_head, base, rope=apply_rope, causal=True):  # noqa: ANN001, ANN201
    B, T, C = x.shape
    hs = C // n_head
    q = (x @ wq.T).view(B, T, n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
    k = (x @ wk.T).view(B, T, n_kv_head, hs).transpose(1, 2)  # (B, nkv, T, hs)
    v = (x @ wv.T).view(B, T, n_kv_head, hs).transpose(1, 2)
    angles = rope_angles(torch.arange(T), hs, base)
    if rope is not None:
        q, k = rope(q, angles), rope(k, angles)
    k, v = repeat_kv(k, n_head // n_kv_head), repeat_kv(v, n_head // n_kv_head)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, nh, T, hs)
    return y.transpose(1, 2).reshape(B, T, C) @ wo.T


CASES: list[tuple[str, Any, list[Any]]] = [
    ("llama.num_parameters", num_parameters_solution,
     [lambda: num_parameters_solution() - 65 * 384, lambda: 1.0e7, lambda: "many"]),
    ("llama.kv_cache_bytes", kv_cache_bytes_solution,
     [lambda: 3 * kv_cache_bytes_solution(), lambda: kv_cache_bytes_solution() // 2, lambda: 12]),
    ("llama.attention", lambda: attention,
     [lambda: lambda *a: attention(*a, rope=None), lambda: lambda *a: attention(*a, rope=apply_rope_interleaved),
      lambda: lambda *a: attention(*a, causal=False), lambda: 3]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_known_values_and_specific_hints() -> None:
    assert kv_cache_bytes_solution() == 6 * 2 * 8 * 2 * 256 * 64 * 4
    assert "own (V, C) matrix" in grade("llama.num_parameters", num_parameters_solution() - 65 * 384).message
    assert "multi-head attention's cache" in grade("llama.kv_cache_bytes", 3 * kv_cache_bytes_solution()).message
    assert "without positions" in grade("llama.attention", lambda *a: attention(*a, rope=None)).message
    assert "half-split" in grade("llama.attention", lambda *a: attention(*a, rope=apply_rope_interleaved)).message
    assert "causal" in grade("llama.attention", lambda *a: attention(*a, causal=False)).message
