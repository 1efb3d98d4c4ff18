"""Checkers of the chapter 35 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core
from dlscratch.exercises.diffusion import SNR_VALUES
from dlscratch.models.diffusion import NoiseSchedule
from tests.exercises.grading import assert_grades, assert_hint


@pytest.fixture(autouse=True)
def _only_diffusion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("diffusion",))


def q_sample(x0, t, noise, abar, variances=False, swap=False, one_step=False):  # noqa: ANN001, ANN201
    ab = abar[t].view(-1, *([1] * (x0.dim() - 1)))
    if one_step:  # alpha_t of one step instead of the product
        ab = torch.cat([abar[:1], abar[1:] / abar[:-1]])[t].view_as(ab)
    if variances:
        return ab * x0 + (1 - ab) * noise
    if swap:
        return (1 - ab).sqrt() * x0 + ab.sqrt() * noise
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def guidance(eu, ec, w, scale=False, swap=False):  # noqa: ANN001, ANN201
    if scale:
        return eu + w * (ec - eu)
    if swap:
        return (1 + w) * eu - w * ec
    return (1 + w) * ec - w * eu


def counts() -> tuple[int, int]:
    T, thr = SNR_VALUES["T"], SNR_VALUES["threshold"]
    return tuple(int((s.alphas_cumprod < thr).sum()) for s in (NoiseSchedule.linear(T), NoiseSchedule.cosine(T)))


CASES: list[tuple[str, Any, list[Any]]] = [
    ("diffusion.q_sample", lambda: q_sample,
     [lambda: lambda *a: q_sample(*a, variances=True), lambda: lambda *a: q_sample(*a, swap=True),
      lambda: lambda *a: q_sample(*a, one_step=True), lambda: lambda *a: a[0], lambda: 3]),
    ("diffusion.guidance", lambda: guidance,
     [lambda: lambda *a: guidance(*a, scale=True), lambda: lambda *a: guidance(*a, swap=True), lambda: lambda *a: a[1]]),
    ("diffusion.noisy_steps", counts, [lambda: counts()[::-1], lambda: (1000 - counts()[0], 1000 - counts()[1]), lambda: (0, 0), lambda: 5]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_specific_hints() -> None:
    assert_hint("diffusion.q_sample", lambda *a: q_sample(*a, variances=True), "variances")
    assert_hint("diffusion.q_sample", lambda *a: q_sample(*a, swap=True), "swapped")
    assert_hint("diffusion.q_sample", lambda *a: q_sample(*a, one_step=True), "product")
    assert_hint("diffusion.q_sample", lambda x0, t, noise, abar: x0.flatten(1), "broadcast")
    assert_hint("diffusion.guidance", lambda *a: guidance(*a, scale=True), "guidance_scale")
    assert_hint("diffusion.guidance", lambda *a: guidance(*a, swap=True), "signs are swapped")
    assert_hint("diffusion.noisy_steps", counts()[::-1], "swapped")
    assert_hint("diffusion.noisy_steps", (1000 - counts()[0], 1000 - counts()[1]), "above the threshold")
    assert_hint("diffusion.noisy_steps", 5, "pair of ints")


def test_the_cosine_schedule_wastes_fewer_steps_on_pure_noise() -> None:
    linear, cosine = counts()
    assert linear > 2 * cosine > 0
