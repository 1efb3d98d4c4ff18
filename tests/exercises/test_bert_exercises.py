"""Checkers of the chapter 26 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.bert import BASE_SIZES, MASKING
from dlscratch.models.bert import BertConfig, BertModel
from dlscratch.training.mlm import mask_tokens
from tests.exercises.grading import assert_correct, assert_grades, assert_hint, assert_rejected


@pytest.fixture(autouse=True)
def _only_bert(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("bert",))


def unchanged_measured() -> float:
    ids = torch.randint(4, 1000, (200_000,))
    inputs, labels = mask_tokens(ids, mask_id=3, special_ids=(0, 1, 2, 3), vocab_size=1000, p=MASKING["p"],
                                 generator=torch.Generator().manual_seed(0))
    return ((labels != -100) & (inputs == ids)).float().mean().item()


def base_parameters() -> int:
    c = BASE_SIZES
    cfg = BertConfig(vocab_size=c["vocab_size"], max_position=c["max_position"], type_vocab_size=c["type_vocab_size"],
                     n_layer=c["n_layer"], n_head=12, n_embd=c["n_embd"], ffn_dim=c["ffn_dim"])
    with torch.device("meta"):
        return sum(p.numel() for p in BertModel(cfg).parameters())


def pack(a, b, cls_id, sep_id, max_len):  # noqa: ANN001, ANN201
    a, b = list(a), list(b)
    while len(a) + len(b) > max_len - 3:
        (a if len(a) > len(b) else b).pop()
    return [cls_id, *a, sep_id, *b, sep_id], [0] * (len(a) + 2) + [1] * (len(b) + 1)


def pack_wrong_types(a, b, cls_id, sep_id, max_len):  # noqa: ANN001, ANN201
    ids, _ = pack(a, b, cls_id, sep_id, max_len)
    return ids, [0] * (len(a[: len(ids)]) + 1) + [1] * (len(ids) - len(a[: len(ids)]) - 1)


def pack_no_truncation(a, b, cls_id, sep_id, max_len):  # noqa: ANN001, ANN201
    return [cls_id, *a, sep_id, *b, sep_id], [0] * (len(a) + 2) + [1] * (len(b) + 1)


def pack_cut_a_first(a, b, cls_id, sep_id, max_len):  # noqa: ANN001, ANN201
    a, b = list(a), list(b)
    while len(a) + len(b) > max_len - 3:
        (a if a else b).pop()
    return [cls_id, *a, sep_id, *b, sep_id], [0] * (len(a) + 2) + [1] * (len(b) + 1)


CASES: list[tuple[str, Any, list[Any]]] = [
    ("bert.unchanged_targets", lambda: 0.015, [lambda: 0.15, lambda: 0.1, lambda: 0.12, lambda: 1.5, lambda: "x"]),
    ("bert.base_parameters", base_parameters, [lambda: 108_891_648, lambda: 110_000_000, lambda: 7]),
    ("bert.pack_pair", lambda: pack, [lambda: pack_wrong_types, lambda: pack_no_truncation, lambda: pack_cut_a_first, lambda: 3]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_measured_share_passes_and_known_values() -> None:
    assert_correct("bert.unchanged_targets", unchanged_measured())  # the measurement lands within the tolerance
    assert base_parameters() == 109_482_240  # BERT-base, as usually quoted (110M)
    assert_hint("bert.unchanged_targets", 0.1, "*chosen*")
    assert_hint("bert.unchanged_targets", 0.12, "[MASK]")
    assert_hint("bert.base_parameters", 108_891_648, "pooler")
    assert_hint("bert.pack_pair", pack_wrong_types, "token types")
    assert_hint("bert.pack_pair", pack_no_truncation, "exceed max_len")
    assert_rejected("bert.pack_pair", pack_cut_a_first)
    assert "not attempted" in grade("bert.pack_pair", ...).message or grade("bert.pack_pair", ...).correct is None


def test_function_that_raises_not_implemented_is_not_attempted() -> None:
    def todo(*args: Any) -> Any:
        raise NotImplementedError

    assert grade("bert.pack_pair", todo).correct is None
