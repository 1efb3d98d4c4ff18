"""Checkers of the chapter 17 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.gpt import (
    CACHE_CONFIG,
    FILTER_LOGITS,
    FILTER_TOP_K,
    FILTER_TOP_P,
    GENERATE_TOKENS,
    PARAMS_CONFIG,
)
from dlscratch.layers.attention.kv_cache import KVCache
from dlscratch.models.sampling import top_k_filter, top_p_filter
from dlscratch.models.gpt import GPT, GPTConfig
from tests.exercises.grading import assert_grades


@pytest.fixture(autouse=True)
def _only_gpt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("gpt",))


def num_parameters_solution() -> int:
    with torch.device("meta"):  # no memory, no initialisation cost
        model = GPT(GPTConfig(**PARAMS_CONFIG))
    return model.num_parameters(non_embedding=False)


def kv_cache_bytes_solution() -> int:
    c = CACHE_CONFIG
    cache = KVCache(c["batch_size"], c["n_head"], c["context"], c["n_embd"] // c["n_head"], device="meta")
    return c["n_layer"] * cache.nbytes()  # one cache per layer


def filter_probs_solution() -> list[float]:
    z = torch.tensor(FILTER_LOGITS, dtype=torch.float64)[None]
    return torch.softmax(top_p_filter(top_k_filter(z, FILTER_TOP_K), FILTER_TOP_P), -1)[0].tolist()


def recompute_ratio_solution() -> float:
    n = GENERATE_TOKENS
    return (n * (n + 1) / 2) / n  # sum_{s=1}^{n} s over 1 + (n - 1)


CASES: list[tuple[str, Any, list[Any]]] = [
    ("gpt.num_parameters", num_parameters_solution,
     [lambda: num_parameters_solution() - 256 * 384, lambda: num_parameters_solution() + 65 * 384, lambda: 1.0e7, lambda: "many"]),
    ("gpt.kv_cache_bytes", kv_cache_bytes_solution,
     [lambda: kv_cache_bytes_solution() // 2, lambda: kv_cache_bytes_solution() // 4, lambda: kv_cache_bytes_solution() // 6]),
    ("gpt.filter_probs", filter_probs_solution,
     [lambda: torch.softmax(torch.tensor(FILTER_LOGITS), -1).tolist(), lambda: [0.0] * 6, lambda: [1.0] * 3,
      lambda: torch.softmax(top_k_filter(torch.tensor(FILTER_LOGITS)[None], FILTER_TOP_K), -1)[0].tolist()]),
    ("gpt.recompute_ratio", recompute_ratio_solution, [lambda: 512.0, lambda: 131_328, lambda: 257.5, lambda: None]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_known_values() -> None:
    assert num_parameters_solution() == 10_745_088  # nanoGPT prints 10.65M: without the 98,304 of wpe
    assert kv_cache_bytes_solution() == 2 * 6 * 8 * 256 * 384 * 4
    assert recompute_ratio_solution() == 256.5
    probs = filter_probs_solution()
    assert [p > 0 for p in probs] == [True, False, False, True, False, False]


def test_hints_are_specific() -> None:
    assert "position table" in grade("gpt.num_parameters", num_parameters_solution() - 256 * 384).message
    assert "once" in grade("gpt.num_parameters", num_parameters_solution() + 65 * 384).message
    assert "values" in grade("gpt.kv_cache_bytes", kv_cache_bytes_solution() // 2).message
    wrong_order = torch.softmax(top_k_filter(top_p_filter(torch.tensor(FILTER_LOGITS)[None], FILTER_TOP_P), FILTER_TOP_K), -1)
    assert "top-p applied first" in grade("gpt.filter_probs", wrong_order[0].tolist()).message
