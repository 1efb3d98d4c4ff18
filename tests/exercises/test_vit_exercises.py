"""Checkers of the chapter 33 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core
from dlscratch.exercises.vit import PARAM_VALUES
from tests.exercises.grading import assert_grades, assert_hint


@pytest.fixture(autouse=True)
def _only_vit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("vit",))


def my_patchify(x: torch.Tensor, P: int, order: str = "raster") -> torch.Tensor:
    B, C, H, W = x.shape
    blocks = x.reshape(B, C, H // P, P, W // P, P)  # (B, C, h, P, w, P)
    perm = {"raster": (0, 2, 4, 1, 3, 5), "channel_last": (0, 2, 4, 3, 5, 1), "columns": (0, 4, 2, 1, 3, 5)}[order]
    return blocks.permute(*perm).reshape(B, (H // P) * (W // P), C * P * P)


def param_count() -> int:
    v = PARAM_VALUES
    C, F, K, L = v["n_embd"], v["mlp_dim"], v["n_classes"], v["n_layer"]
    N = (v["image_size"] // v["patch_size"]) ** 2
    patch = v["in_channels"] * v["patch_size"] ** 2 * C + C
    block = (4 * C * C + 4 * C) + (2 * C * F + F + C) + 4 * C
    return patch + C + (N + 1) * C + L * block + 2 * C + C * K + K


def my_rollout(weights: list[torch.Tensor], residual: float, order: str = "right", with_residual: bool = True) -> torch.Tensor:
    B, _, T, _ = weights[0].shape
    eye = torch.eye(T, dtype=weights[0].dtype)
    r = eye.expand(B, T, T)
    for w in weights:
        a = (1 - residual) * w.mean(1) + residual * eye if with_residual else w.mean(1)
        r = a @ r if order == "right" else r @ a
    return r


CASES: list[tuple[str, Any, list[Any]]] = [
    ("vit.patchify", lambda: my_patchify,
     [lambda: lambda x, P: my_patchify(x, P, "channel_last"), lambda: lambda x, P: my_patchify(x, P, "columns"),
      lambda: lambda x, P: x.reshape(x.shape[0], (x.shape[2] // P) * (x.shape[3] // P), -1), lambda: lambda x, P: x, lambda: 3]),
    ("vit.param_count", param_count, [lambda: param_count() - 48, lambda: param_count() + 1, lambda: "many"]),
    ("vit.rollout", lambda: my_rollout,
     [lambda: lambda w, r: my_rollout(w, r, order="left"), lambda: lambda w, r: my_rollout(w, r, with_residual=False),
      lambda: lambda w, r: w[-1].mean(1), lambda: None]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_specific_hints() -> None:
    assert_hint("vit.patchify", lambda x, P: my_patchify(x, P, "channel_last"), "channel last")
    assert_hint("vit.patchify", lambda x, P: my_patchify(x, P, "columns"), "raster order")
    assert_hint("vit.patchify", lambda x, P: x.reshape(x.shape[0], (x.shape[2] // P) * (x.shape[3] // P), -1), "strips")
    assert_hint("vit.patchify", lambda x, P: x, "return (B, N, C*P*P)")
    C, K = PARAM_VALUES["n_embd"], PARAM_VALUES["n_classes"]
    assert_hint("vit.param_count", param_count() - C * K - K, "classification head")
    assert_hint("vit.param_count", param_count() - 2 * C, "final LayerNorm")
    assert_hint("vit.param_count", param_count() - C, "N + 1 rows")
    assert_hint("vit.param_count", param_count() - PARAM_VALUES["n_layer"] * 4 * C, "two per block")
    assert_hint("vit.param_count", param_count() + 7, "is not it")
    assert_hint("vit.rollout", lambda w, r: my_rollout(w, r, order="left"), "wrong order")
    assert_hint("vit.rollout", lambda w, r: my_rollout(w, r, with_residual=False), "residual connection is missing")
