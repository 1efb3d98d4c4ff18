"""Measuring time and peak memory (chapter 19)."""

from __future__ import annotations

import pytest
import torch

from dlscratch.training.cost import best_seconds, peak_memory_bytes


def test_peak_memory_counts_tensors_alive_together() -> None:
    def two_then_one() -> torch.Tensor:
        a = torch.ones(1000, 1000)  # 4 MB
        b = a + 1  # 4 MB more: 8 MB alive
        del a
        return b * 2  # b and the result: 8 MB

    peak = peak_memory_bytes(two_then_one)
    assert 8_000_000 <= peak < 8_100_000
    assert 4_000_000 <= peak_memory_bytes(lambda: torch.zeros(1000, 1000)) < 4_100_000


def test_best_seconds() -> None:
    calls = []
    assert best_seconds(lambda: calls.append(1), repeats=3) >= 0 and len(calls) == 4
    with pytest.raises(ValueError, match="repeats=0"):
        best_seconds(lambda: None, repeats=0)
