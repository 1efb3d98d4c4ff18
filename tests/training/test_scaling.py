"""Scaling laws (chapter 29): FLOP counts against FlopCounterMode, fits on synthetic data with known exponents."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlscratch.data import load_shakespeare
from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.training.lm import split_text
from dlscratch.training.scaling import (
    CHINCHILLA,
    ChinchillaLaw,
    bootstrap_power_law,
    counted_flops,
    fit_chinchilla,
    fit_isoflop,
    fit_power_law,
    gpt_flops_per_token,
    parameter_counts,
    training_flops,
)
from dlscratch.training.scaling_runs import ladder_config, train_run


@pytest.mark.parametrize("n_layer, n_embd, n_head, T, V", [(1, 8, 2, 1, 5), (2, 24, 3, 16, 65), (3, 18, 1, 7, 11)])
def test_gpt_flops_equal_flop_counter(n_layer: int, n_embd: int, n_head: int, T: int, V: int) -> None:
    cfg = GPTConfig(vocab_size=V, block_size=T, n_layer=n_layer, n_head=n_head, n_embd=n_embd, kernels="written")
    model = GPT(cfg).double()
    x = torch.randint(V, (3, T))
    assert counted_flops(lambda: model(x)) == 3 * T * gpt_flops_per_token(n_layer, n_embd, T, V, backward=False)
    assert counted_flops(lambda: model(x, x)[1].backward()) == 3 * T * gpt_flops_per_token(n_layer, n_embd, T, V)


def test_six_n_d_is_the_flop_count_without_attention() -> None:
    L, C, T, V = 2, 32, 16, 65
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=2, n_embd=C, bias=False))
    matmul_params = 12 * L * C**2 + V * C  # the projections, the MLPs and the (tied) head
    assert gpt_flops_per_token(L, C, T, V) == 6 * matmul_params + 12 * L * T * C
    assert training_flops(matmul_params, 1000) == 6 * matmul_params * 1000
    counts = parameter_counts(model)
    norms = (2 * L + 1) * C  # LayerNorm gains, no biases
    assert counts["with_embeddings"] == matmul_params + T * C + norms
    assert counts["non_embedding"] == 12 * L * C**2 + norms


def test_power_law_recovers_exponent_and_agrees_with_polyfit() -> None:
    gen = torch.Generator().manual_seed(0)
    n = torch.logspace(3, 6, 12, dtype=torch.float64)
    loss = (8.8e13 / n) ** 0.076 * torch.exp(0.002 * torch.randn(12, generator=gen, dtype=torch.float64))
    fit = fit_power_law(n, loss)
    assert abs(-fit.exponent - 0.076) < 0.005 and fit.r2 > 0.99
    slope, intercept = np.polyfit(np.log(n.numpy()), np.log(loss.numpy()), 1)
    assert math.isclose(fit.exponent, slope, rel_tol=1e-9) and math.isclose(math.log(fit.scale), intercept, rel_tol=1e-9)
    torch.testing.assert_close(fit(n).log(), torch.tensor(intercept + slope * np.log(n.numpy())))
    slopes, (low, high) = bootstrap_power_law(n, loss, n_boot=500, generator=gen)
    assert low < fit.exponent < high and high - low < 0.01 and slopes.numel() <= 500


def test_isoflop_parabola_finds_the_minimum() -> None:
    n = torch.logspace(3, 5, 7, dtype=torch.float64)
    loss = 0.05 * (n.log() - math.log(7e3)) ** 2 + 2.3
    fit = fit_isoflop(n, loss)
    assert math.isclose(fit.n_opt, 7e3, rel_tol=1e-8) and math.isclose(fit.loss_opt, 2.3, rel_tol=1e-10)
    bent = torch.cat([loss[:-1], torch.tensor([9.0], dtype=torch.float64)])  # an outlier far up the right arm
    assert math.isclose(fit_isoflop(n, bent, keep=5).n_opt, 7e3, rel_tol=1e-8)
    a, b, c = np.polyfit(np.log(n.numpy()), bent.numpy(), 2)
    assert np.allclose(fit_isoflop(n, bent).coeffs, (a, b, c))


def test_chinchilla_fit_recovers_a_known_law() -> None:
    gen = torch.Generator().manual_seed(0)
    law = ChinchillaLaw(E=1.5, A=50.0, B=200.0, alpha=0.4, beta=0.3)
    n = torch.logspace(3, 5, 6, dtype=torch.float64).repeat(4)
    d = torch.logspace(5, 7, 4, dtype=torch.float64).repeat_interleave(6)
    fit, r2 = fit_chinchilla(n, d, law(n, d))
    assert r2 > 0.9999
    for name, tol in (("E", 0.01), ("alpha", 0.01), ("beta", 0.01), ("A", 0.05), ("B", 0.05)):
        assert math.isclose(getattr(fit, name), getattr(law, name), rel_tol=tol), (name, fit)


def test_compute_optimal_frontier() -> None:
    c = torch.tensor([1e20, 1e22, 1e24], dtype=torch.float64)
    n, d = CHINCHILLA.compute_optimal(c)
    torch.testing.assert_close(6 * n * d, c)
    # the frontier is the minimum of the law along 6ND = C
    grid = torch.logspace(-1, 1, 201, dtype=torch.float64) * n[1]
    assert grid[CHINCHILLA(grid, c[1] / (6 * grid)).argmin()] / n[1] == pytest.approx(1.0, rel=0.03)
    slope = (n[2] / n[0]).log() / (c[2] / c[0]).log()
    assert slope.item() == pytest.approx(0.28 / 0.62)


def test_train_run_spends_its_budget() -> None:
    data = split_text(load_shakespeare()[:20_000])
    cfg = ladder_config(1, 16, data.tokenizer.vocab_size, 16)
    run = train_run(cfg, data.train, data.val[:500], flops=6 * 5000 * 16 * 16 * 6, batch_size=16)
    assert run.tokens == run.steps * 16 * 16 and run.flops == 6 * run.n_params * run.tokens
    assert run.n_params_non_embedding < run.n_params and 0 < run.val_loss < 5
    again = train_run(cfg, data.train, data.val[:500], tokens=run.tokens, batch_size=16)
    assert again.val_loss == run.val_loss  # seeded: a run is reproducible


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fit_power_law([1.0, 2.0], [1.0, 0.0]), "y must be finite and positive, got 0.0"),
        (lambda: fit_power_law([-1.0, 2.0], [1.0, 2.0]), "x must be finite and positive, got -1.0"),
        (lambda: fit_power_law([3.0], [1.0]), "at least 2 values of x"),
        (lambda: fit_power_law([3.0, 3.0], [1.0, 2.0]), "2 distinct values"),
        (lambda: fit_power_law([1.0, 2.0, 3.0], [1.0, 2.0]), "same length, got 3 and 2"),
        (lambda: bootstrap_power_law([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], level=1.5), "level must be in"),
        (lambda: fit_isoflop([1.0, 2.0], [1.0, 2.0]), "at least 3 values of n_params"),
        (lambda: fit_isoflop([1.0, 2.0, 3.0, 4.0], [3.0, 2.0, 1.0, 2.0], keep=2), r"keep must be an integer in \[3, 4\], got keep=2"),
        (lambda: fit_isoflop([1.0, 2.0, 4.0], [1.0, 2.0, 1.0]), "opens downwards"),
        (lambda: fit_chinchilla([1.0] * 4, [1.0] * 4, [1.0] * 4), "at least 5 values of n_params"),
        (lambda: fit_chinchilla([1.0] * 5, [1.0, 2.0, 3.0, 4.0, -5.0], [1.0] * 5), "n_tokens must be finite and positive, got -5.0"),
        (lambda: training_flops(0, 10), "n_params must be finite and positive, got 0.0"),
        (lambda: gpt_flops_per_token(2, 0, 8, 65), "n_embd must be a positive integer, got n_embd=0"),
        (lambda: CHINCHILLA.compute_optimal([0.0]), "flops must be finite and positive"),
        (lambda: ladder_config(1, 40, 65, 8), "multiple of 16 above 32; got n_embd=40"),
    ],
)
def test_bad_input_is_rejected(call, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        call()


def test_train_run_needs_one_budget() -> None:
    data = split_text(load_shakespeare()[:5_000])
    cfg = ladder_config(1, 8, data.tokenizer.vocab_size, 8)
    with pytest.raises(ValueError, match="exactly one budget"):
        train_run(cfg, data.train, data.val, flops=1e9, tokens=1000)
    with pytest.raises(ValueError, match="positive number, got -3"):
        train_run(cfg, data.train, data.val, tokens=-3)
    with pytest.raises(ValueError, match="need at least 2 steps"):
        train_run(cfg, data.train, data.val, tokens=100)
