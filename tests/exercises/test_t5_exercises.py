"""Checkers of the chapter 28 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from dlscratch.exercises import core
from dlscratch.exercises.t5 import BIAS_CONFIG, SPAN_SETTING
from dlscratch.models.span_corruption import span_corruption, span_counts
from dlscratch.models.t5 import T5, T5Config
from tests.exercises.grading import assert_correct, assert_grades, assert_hint, assert_rejected


@pytest.fixture(autouse=True)
def _only_t5(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("t5",))


def bucket(n, bidirectional, num_buckets, max_distance, flip=False, no_clamp=False):  # noqa: ANN001, ANN201
    n = -n if flip else n
    out = torch.zeros_like(n)
    if bidirectional:
        num_buckets //= 2
        out += (n > 0).long() * num_buckets
        n = n.abs()
    else:
        n = (-n).clamp(min=0)
    exact = num_buckets // 2
    large = exact + (torch.log(n.float() / exact) / math.log(max_distance / exact) * (num_buckets - exact)).long()
    if not no_clamp:
        large = large.clamp(max=num_buckets - 1)
    return out + torch.where(n < exact, n, large)


def target_length_solution() -> int:
    tokens = torch.arange(10, 10 + SPAN_SETTING["length"])[None]
    _, tgt = span_corruption(tokens, torch.arange(900, 1000), eos_id=1, pad_id=0,
                             noise_density=SPAN_SETTING["noise_density"], mean_span_length=SPAN_SETTING["mean_span_length"])
    return tgt.size(1)


def bias_parameters_solution() -> int:
    c = BIAS_CONFIG
    with torch.device("meta"):
        m = T5(T5Config(vocab_size=8, d_model=64, num_heads=c["num_heads"], d_kv=4, d_ff=8, num_layers=c["num_layers"],
                        num_decoder_layers=c["num_decoder_layers"],
                        relative_attention_num_buckets=c["relative_attention_num_buckets"],
                        relative_attention_max_distance=c["relative_attention_max_distance"]))
    return sum(p.numel() for n, p in m.named_parameters() if "relative_bias" in n)


CASES: list[tuple[str, Any, list[Any]]] = [
    ("t5.bucket", lambda: bucket,
     [lambda: lambda *a: bucket(*a, flip=True), lambda: lambda *a: bucket(*a, no_clamp=True), lambda: lambda *a: a[0], lambda: 3]),
    ("t5.target_length", target_length_solution, [lambda: 103, lambda: 78, lambda: 462, lambda: 513, lambda: "x"]),
    ("t5.bias_parameters", bias_parameters_solution, [lambda: 384, lambda: 9216, lambda: 1152, lambda: 64, lambda: 5]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_known_values_and_specific_hints() -> None:
    assert target_length_solution() == span_counts(512).target_length == 104
    assert bias_parameters_solution() == 768
    assert_correct("t5.target_length", 104.0)
    assert_rejected("t5.target_length", ...)
    assert_hint("t5.target_length", 103, "</s>")
    assert_hint("t5.target_length", 462, "input's length")
    assert_hint("t5.bias_parameters", 9216, "shared by all layers")
    assert_hint("t5.bias_parameters", 384, "own table")
    assert_hint("t5.bucket", lambda *a: bucket(*a, flip=True), "key minus query")
    assert_hint("t5.bucket", lambda *a: bucket(*a, no_clamp=True), "clamp")
