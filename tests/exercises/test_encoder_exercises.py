"""Checkers of the chapter 15 exercises: a correct answer passes, wrong ones fail with a specific hint, ``...`` is open."""

from __future__ import annotations

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.encoder import CROSS_C, CROSS_F, GROWTH_CONFIG, GROWTH_LAYERS, GROWTH_SHAPE
from dlscratch.layers import TransformerEncoder, TransformerLayerConfig

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("encoder",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- enc.crossover_length: 2 T C = 4 C^2 + 2 C F per token
def test_crossover_length() -> None:
    C, F = CROSS_C, CROSS_F
    T = 2 * C + F
    assert_grades("enc.crossover_length", lambda: T, [lambda: 2 * C, lambda: "3072"])
    _wrong("enc.crossover_length", 2 * C, "left out the feed-forward")
    _wrong("enc.crossover_length", F, "four attention projections")
    _wrong("enc.crossover_length", 2 * T, "Q K^T and the weighted sum")
    _wrong("enc.crossover_length", 100, "solve for T")


# ---- enc.masked_batch_norm
def masked_batch_norm(x, key_padding_mask, eps):
    real = ~key_padding_mask  # (B, T)
    n = real.sum()
    mean = (x * real[..., None]).sum((0, 1)) / n  # (C,)
    var = (((x - mean) ** 2) * real[..., None]).sum((0, 1)) / n  # (C,), biased
    return torch.where(real[..., None], (x - mean) / torch.sqrt(var + eps), torch.zeros_like(x))


def with_padding_stats(x, pad, eps):
    flat = x.flatten(0, 1)
    y = (x - flat.mean(0)) / (flat.var(0, unbiased=False) + eps).sqrt()
    return torch.where(pad[..., None], torch.zeros_like(x), y)


def unbiased(x, pad, eps):
    r = x[~pad]
    y = (x - r.mean(0)) / (r.var(0) + eps).sqrt()
    return torch.where(pad[..., None], torch.zeros_like(x), y)


def per_token(x, pad, eps):
    y = (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True) + eps).sqrt()
    return torch.where(pad[..., None], torch.zeros_like(x), y)


def padding_kept(x, pad, eps):
    r = x[~pad]
    return (x - r.mean(0)) / (r.var(0, unbiased=False) + eps).sqrt()


def test_masked_batch_norm() -> None:
    wrongs = [with_padding_stats, unbiased, per_token, padding_kept, lambda x, p, e: 2 * masked_batch_norm(x, p, e)]
    assert_grades("enc.masked_batch_norm", lambda: masked_batch_norm, [(lambda f=f: f) for f in wrongs] + [lambda: 3])
    _wrong("enc.masked_batch_norm", with_padding_stats, "padding entered the statistics")
    _wrong("enc.masked_batch_norm", unbiased, "biased variance")
    _wrong("enc.masked_batch_norm", per_token, "layer norm")
    _wrong("enc.masked_batch_norm", padding_kept, "padding positions to 0")
    _wrong("enc.masked_batch_norm", lambda x, p, e: 2 * masked_batch_norm(x, p, e), "wrong values on real tokens")
    _wrong("enc.masked_batch_norm", lambda x, p, e: x[~p], "input's shape")


# ---- enc.residual_growth: the reader's measurement, any seed
def measured_growth(seed: int, final_norm: bool = False) -> float:
    torch.manual_seed(seed)
    enc = TransformerEncoder(TransformerLayerConfig(**GROWTH_CONFIG), GROWTH_LAYERS)
    x = torch.randn(*GROWTH_SHAPE)
    r0 = x.pow(2).mean().sqrt()
    with torch.no_grad():
        y = enc(x) if final_norm else x
        if not final_norm:
            for layer in enc.layers:
                y = layer(y)
    return (y.pow(2).mean().sqrt() / r0).item()


def test_residual_growth() -> None:
    for seed in (3, 4):
        assert grade("enc.residual_growth", measured_growth(seed)).correct
    assert_grades("enc.residual_growth", lambda: measured_growth(5), [lambda: 1.0, lambda: "2"])
    _wrong("enc.residual_growth", measured_growth(0, final_norm=True), "final norm")
    _wrong("enc.residual_growth", 24.0, "sqrt(N)")
    _wrong("enc.residual_growth", 3.0, "measure it")
