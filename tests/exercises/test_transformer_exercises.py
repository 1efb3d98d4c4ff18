"""Checkers of the chapter 16 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import pytest
import torch

from dlscratch.exercises import core, grade


@pytest.fixture(autouse=True)
def _only_transformer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("transformer",))


def test_decoder_params() -> None:
    assert grade("encdec.decoder_params", lambda C, F: 8 * C * C + 2 * C * F + 15 * C + F).correct is True
    no_cross = grade("encdec.decoder_params", lambda C, F: 4 * C * C + 2 * C * F + 11 * C + F)
    assert no_cross.correct is False and "cross-attention" in no_cross.message
    two_norms = grade("encdec.decoder_params", lambda C, F: 8 * C * C + 2 * C * F + 13 * C + F)
    assert two_norms.correct is False and "three layer norms" in two_norms.message


def test_peak_lr() -> None:
    assert grade("encdec.peak_lr", lambda d, w: (d * w) ** -0.5).correct is True
    no_scale = grade("encdec.peak_lr", lambda d, w: w**-0.5)
    assert no_scale.correct is False and "d_model" in no_scale.message
    assert grade("encdec.peak_lr", lambda d, w: d**-0.5).correct is False


def _beam_step_solution(scores: torch.Tensor, logp: torch.Tensor, K: int):
    V = logp.size(-1)
    new, ix = (scores[:, None] + logp).view(-1).topk(K)
    return new, ix // V, ix % V


def test_beam_step() -> None:
    assert grade("encdec.beam_step", _beam_step_solution).correct is True

    def per_beam(scores, logp, K):
        tok = logp.argmax(-1)
        return scores + logp.max(-1).values, torch.arange(K), tok

    wrong = grade("encdec.beam_step", per_beam)
    assert wrong.correct is False and "all K x V" in wrong.message

    def not_attempted(scores, logp, K):
        raise NotImplementedError

    assert grade("encdec.beam_step", not_attempted).correct is None
