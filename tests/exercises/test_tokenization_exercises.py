"""Checkers of the chapter 14 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from dlscratch.exercises import core, grade
from dlscratch.exercises.tokenization import APPLY_MERGES, APPLY_TEXT, BYTES_TEXT


@pytest.fixture(autouse=True)
def _only_tokenization(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("tokenization",))


# ---- tok.pair_counts
def pairs_solution(ids: list[int]) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for i in range(len(ids) - 1):
        counts[ids[i], ids[i + 1]] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts


def pairs_no_overlap(ids: list[int]) -> dict[tuple[int, int], int]:
    return dict(Counter(zip(ids[::2], ids[1::2])))


def pairs_set(ids: list[int]) -> dict[tuple[int, int], int]:
    return {p: 1 for p in zip(ids, ids[1:])}


def pairs_todo(ids: list[int]) -> dict[tuple[int, int], int]:
    raise NotImplementedError


# ---- tok.merge
def merge_solution(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_overlapping(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out = []
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        elif not (i > 0 and (ids[i - 1], ids[i]) == pair):
            out.append(ids[i])
    return out


def merge_first_only(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return list(ids)


def merge_todo(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    raise NotImplementedError


@pytest.mark.parametrize(
    ("name", "answer", "expected"),
    [
        ("tok.apply_merges", [" ", "t", "her", "e"], True),
        ("tok.apply_merges", (" ", "t", "her", "e"), True),
        ("tok.apply_merges", [" ", "the", "re"], False),  # 'th' before 'he': wrong order
        ("tok.apply_merges", [" the", "r", "e"], False),
        ("tok.apply_merges", [" ", "t", "her"], False),  # loses the final 'e'
        ("tok.apply_merges", " there", False),
        ("tok.apply_merges", ..., None),
        ("tok.byte_tokens", len(BYTES_TEXT.encode("utf-8")), True),
        ("tok.byte_tokens", len(BYTES_TEXT), False),
        ("tok.byte_tokens", 3.0, False),
        ("tok.byte_tokens", ..., None),
        ("tok.pair_counts", pairs_solution, True),
        ("tok.pair_counts", lambda ids: Counter(zip(ids, ids[1:])), True),
        ("tok.pair_counts", pairs_no_overlap, False),
        ("tok.pair_counts", pairs_set, False),
        ("tok.pair_counts", {(1, 2): 1}, False),
        ("tok.pair_counts", pairs_todo, None),
        ("tok.merge", merge_solution, True),
        ("tok.merge", merge_overlapping, False),
        ("tok.merge", merge_first_only, False),
        ("tok.merge", merge_todo, None),
        ("tok.merge", ..., None),
    ],
)
def test_checkers(name: str, answer: Any, expected: bool | None) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is expected, verdict.message


def test_apply_merges_reference_is_independent() -> None:
    # an independent route: apply each merge with str.replace on a separator-joined token string
    tokens = list(APPLY_TEXT)
    for a, b in APPLY_MERGES:
        out, i = [], 0
        while i < len(tokens):
            if tokens[i : i + 2] == [a, b]:
                out.append(a + b)
                i += 2
            else:
                out.append(tokens[i])
                i += 1
        tokens = out
    assert tokens == [" ", "t", "her", "e"]
    assert grade("tok.apply_merges", tokens).correct is True


def test_hints() -> None:
    # applying ('t', 'h') before ('h', 'e') ends in ' the' + 'r' + 'e'
    assert "order" in grade("tok.apply_merges", [" the", "r", "e"]).message
    assert "result of one of the merges" in grade("tok.apply_merges", [" ", "the", "re"]).message
    assert "characters" in grade("tok.byte_tokens", len(BYTES_TEXT)).message
    assert "[9, 7]" in grade("tok.merge", merge_overlapping).message
