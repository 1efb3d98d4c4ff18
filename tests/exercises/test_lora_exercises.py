"""Checkers of the chapter 23 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import torch
from torch import nn

from dlscratch.exercises import core, grade
from dlscratch.exercises.lora import LLAMA7B, NF4_LAYER
from dlscratch.layers.lora import add_lora
from dlscratch.layers.quant import NF4Linear
from dlscratch.models.llama import LLaMA, LlamaConfig
from tests.exercises.grading import assert_grades


@pytest.fixture(autouse=True)
def _only_lora(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("lora",))


def low_rank(W: torch.Tensor, r: int, *, smallest: bool = False, no_s: bool = False) -> torch.Tensor:
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    keep = slice(-r, None) if smallest else slice(None, r)
    s = torch.ones_like(S[keep]) if no_s else S[keep]
    return (U[:, keep] * s) @ Vh[keep]


@cache
def trainable_params_solution() -> int:
    c = LLAMA7B
    cfg = LlamaConfig(**{k: c[k] for k in ("vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_hidden")})
    with torch.device("meta"):
        model = LLaMA(cfg)
        add_lora(model, c["targets"], c["r"])
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@cache
def nf4_bytes_solution() -> int:
    lin = nn.Linear(NF4_LAYER["in_features"], NF4_LAYER["out_features"], bias=False)
    return NF4Linear.from_linear(lin).nbytes()


CASES: list[tuple[str, Any, list[Any]]] = [
    ("lora.low_rank", lambda: low_rank,
     [lambda: lambda W, r: low_rank(W, r, smallest=True), lambda: lambda W, r: low_rank(W, r, no_s=True),
      lambda: lambda W, r: low_rank(W, max(r - 1, 1) if r > 1 else r + 1), lambda: lambda W, r: W[:, :r], lambda: 3]),
    ("lora.trainable_params", trainable_params_solution,
     [lambda: trainable_params_solution() // 2, lambda: trainable_params_solution() // 32, lambda: 7e6, lambda: "many"]),
    ("lora.nf4_bytes", nf4_bytes_solution,
     [lambda: 4096 * 4096 // 2, lambda: 4096 * 4096 // 2 + 4 * 4096 * 4096 // 64, lambda: 4096 * 4096, lambda: 1.5]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_known_values_and_specific_hints() -> None:
    assert trainable_params_solution() == 32 * 16 * (4 * 2 * 4096 + 3 * (4096 + 11008))
    assert nf4_bytes_solution() == 4096 * 4096 // 2 + 4096 * 4096 // 64 + 4 * 1024 + 4
    assert "smallest" in grade("lora.low_rank", lambda W, r: low_rank(W, r, smallest=True)).message
    assert "singular values are missing" in grade("lora.low_rank", lambda W, r: low_rank(W, r, no_s=True)).message
    assert "count both" in grade("lora.trainable_params", trainable_params_solution() // 2).message
    assert "float32" in grade("lora.nf4_bytes", 4096 * 4096 // 2 + 4 * 4096 * 4096 // 64).message
