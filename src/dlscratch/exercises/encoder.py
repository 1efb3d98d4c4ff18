r"""Exercise checkers for chapter 15, "The Transformer encoder" (topic prefix ``enc.``).

Every checker recomputes the answer with the package's tested layers
(:class:`~dlscratch.layers.norms.BatchNorm1d`, :class:`~dlscratch.layers.transformer.TransformerEncoder`)
or plain arithmetic, and raises :class:`AssertionError` with a hint when the reader's answer
differs. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.norms import BatchNorm1d
from ..layers.transformer import TransformerEncoder, TransformerLayerConfig
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "CROSS_C",
    "CROSS_F",
    "GROWTH_LAYERS",
    "GROWTH_CONFIG",
    "GROWTH_SHAPE",
    "check_crossover_length",
    "check_masked_batch_norm",
    "check_residual_growth",
]

CROSS_C, CROSS_F = 512, 2048  # enc.crossover_length: the base model's C and F
GROWTH_LAYERS = 24  # enc.residual_growth: a deep pre-LN stack at initialisation
GROWTH_CONFIG = {"d_model": 64, "nhead": 4, "dim_feedforward": 256, "dropout": 0.0, "norm_first": True}
GROWTH_SHAPE = (16, 8, 64)  # x = torch.randn(*GROWTH_SHAPE)


@exercise("enc.crossover_length")
def check_crossover_length(answer: Any) -> None:
    r"""The length T at which one layer's attention scores and weighted sum cost as much as its matrix products."""
    got = require_number(answer, "the length T")
    C, F_ = CROSS_C, CROSS_F
    per_token_dense = 4 * C * C + 2 * C * F_  # four projections and the two FFN maps, multiply-adds per token
    want = per_token_dense / (2 * C)  # QK^T and AV: T * C each, per token
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if math.isclose(got, 4 * C * C / (2 * C), rel_tol=1e-3):
        raise AssertionError("you left out the feed-forward network: its two maps cost 2CF multiply-adds per token.")
    if math.isclose(got, 2 * C * F_ / (2 * C), rel_tol=1e-3):
        raise AssertionError("you left out the four attention projections: 4C^2 multiply-adds per token.")
    if math.isclose(got, 2 * want, rel_tol=1e-3):
        raise AssertionError("attention has two T-long products per query: the scores Q K^T and the weighted sum A V.")
    raise AssertionError(
        "per token, compare the quadratic part, 2 T C (scores and weighted sum), with the rest, "
        "4 C^2 (projections) + 2 C F (FFN); solve for T."
    )


def _masked_bn_reference(x: torch.Tensor, pad: torch.Tensor, eps: float) -> torch.Tensor:
    bn = BatchNorm1d(x.size(-1), eps=eps).to(x.dtype)  # training mode: the statistics of this batch
    out = torch.zeros_like(x)
    out[~pad] = bn(x[~pad])  # (N_real, C): every real token of every sequence, no padding
    return out


@exercise("enc.masked_batch_norm")
def check_masked_batch_norm(answer: Any) -> None:
    r"""``answer(x, key_padding_mask, eps)`` normalises each channel over the real tokens only; padding -> 0.

    Compared with the package's :class:`~dlscratch.layers.norms.BatchNorm1d` applied to the real
    tokens alone, on seeded random batches whose padding holds large values.
    """
    fn = require_callable(answer, "masked_batch_norm(x, key_padding_mask, eps)")
    gen = torch.Generator().manual_seed(15)
    eps = 1e-5
    for B, T, C, lengths in ((3, 6, 8, (6, 4, 2)), (2, 5, 3, (5, 5)), (4, 3, 5, (1, 3, 2, 1))):
        x = 2 * torch.randn(B, T, C, generator=gen, dtype=torch.float64) + 1
        pad = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T), True = padding
        x[pad] = 100.0  # garbage where there is no token
        got = fn(x.clone(), pad.clone(), eps)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (B, T, C):
            raise AssertionError(f"return a tensor of the input's shape {(B, T, C)}.")
        got = got.detach().to(torch.float64)
        want = _masked_bn_reference(x, pad, eps)
        if torch.allclose(got, want, atol=1e-8):
            continue
        real = ~pad
        if not torch.allclose(got[real], want[real], atol=1e-8):
            flat = x.flatten(0, 1)
            everything = (flat - flat.mean(0)) / (flat.var(0, unbiased=False) + eps).sqrt()
            if torch.allclose(got[real], everything.view(B, T, C)[real], atol=1e-8):
                raise AssertionError("the padding entered the statistics: take the mean and variance over real tokens only.")
            r = x[real]
            unbiased = (r - r.mean(0)) / (r.var(0) + eps).sqrt()
            if torch.allclose(got[real], unbiased, atol=1e-8):
                raise AssertionError("batch norm normalises with the biased variance (divide by N, not N - 1).")
            per_token = (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True) + eps).sqrt()
            if torch.allclose(got[real], per_token[real], atol=1e-8):
                raise AssertionError("that normalises each token over its channels (layer norm); batch norm "
                                     "normalises each channel over the real tokens of the whole batch.")
            raise AssertionError(
                f"wrong values on real tokens for lengths {lengths}: per channel c, mean and biased variance over all "
                "real tokens of all sequences, then (x - mean) / sqrt(var + eps)."
            )
        raise AssertionError("the real tokens are right; set the padding positions to 0.")


def _growth(seed: int) -> float:
    with torch.random.fork_rng():  # leave the reader's random stream alone
        torch.manual_seed(seed)
        enc = TransformerEncoder(TransformerLayerConfig(**GROWTH_CONFIG), GROWTH_LAYERS)
        x = torch.randn(*GROWTH_SHAPE)
        r0 = x.pow(2).mean().sqrt()
        with torch.no_grad():
            for layer in enc.layers:
                x = layer(x)
    return (x.pow(2).mean().sqrt() / r0).item()


@exercise("enc.residual_growth")
def check_residual_growth(answer: Any) -> None:
    r"""RMS of the residual stream after 24 pre-LN layers (before the final norm) over the input's, at initialisation."""
    got = require_number(answer, "the ratio of RMS values")
    want = sum(_growth(s) for s in range(3)) / 3  # one draw varies by about 5 %
    if math.isclose(got, want, rel_tol=0.15):
        return
    if abs(got - 1) < 0.05:
        raise AssertionError(
            "about 1 is what a post-LN stack, or the final norm of a pre-LN one, gives. Before the final norm the "
            "pre-LN stream is a raw sum: measure it there, looping over encoder.layers."
        )
    if got > 2 * want:
        raise AssertionError(
            "the branches' outputs are nearly independent of the stream and of each other, so their variances add, "
            "not their norms: the growth is like sqrt(N), not N. Measure it."
        )
    raise AssertionError(
        f"measure it: TransformerEncoder(TransformerLayerConfig(**GROWTH_CONFIG), {GROWTH_LAYERS}), "
        f"x = torch.randn{GROWTH_SHAPE}, apply each of encoder.layers under torch.no_grad(), "
        "then x.pow(2).mean().sqrt() after over before."
    )
