r"""Exercise checkers for chapter 23, "LoRA and quantized bases (QLoRA)" (topic prefix ``lora.``).

The function checker compares the reader's low-rank approximation with the package's tested
:func:`~dlscratch.layers.lora.low_rank_factors` on seeded random matrices; the number checkers
recompute the answer with plain arithmetic. A wrong answer gets a hint. The reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.lora import low_rank_factors
from .answers import require_callable, require_number
from .core import exercise

__all__ = ["LLAMA7B", "NF4_LAYER", "check_low_rank", "check_trainable_params", "check_nf4_bytes"]

# lora.trainable_params: LLaMA 7B's sizes (multi-head attention, SwiGLU 11008 wide), LoRA on every matrix of every block
LLAMA7B = {"vocab_size": 32000, "n_layer": 32, "n_head": 32, "n_kv_head": 32, "n_embd": 4096, "ffn_hidden": 11008,
           "r": 16, "targets": ("q_proj", "k_proj", "v_proj", "out_proj", "gate", "up", "down")}
# lora.nf4_bytes: one nn.Linear(4096, 4096, bias=False) as an NF4Linear, blocks of 64, double quantisation (256)
NF4_LAYER = {"in_features": 4096, "out_features": 4096, "block_size": 64, "scale_block_size": 256}


@exercise("lora.low_rank")
def check_low_rank(answer: Any) -> None:
    r"""``answer(W, r)``: the best rank-``r`` approximation of ``W`` (a matrix of ``W``'s shape)."""
    fn = require_callable(answer, "my_low_rank")
    gen = torch.Generator().manual_seed(23)
    for shape, r in (((12, 8), 3), ((5, 9), 1), ((7, 7), 6)):
        W = torch.randn(*shape, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            got = fn(W.clone(), r)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape:
            raise AssertionError(f"return the approximation itself, a {shape} matrix (B @ A), got "
                                 f"{getattr(got, 'shape', type(got).__name__)}")
        B, A = low_rank_factors(W, r)
        want = B @ A
        if torch.allclose(got.double(), want, atol=1e-8):
            continue
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        tail = (U[:, -r:] * S[-r:]) @ Vh[-r:]
        if torch.allclose(got.double(), tail, atol=1e-8):
            raise AssertionError("you kept the r smallest singular values; torch.linalg.svd sorts them in "
                                 "decreasing order, so keep the first r.")
        if torch.allclose(got.double(), U[:, :r] @ Vh[:r], atol=1e-8):
            raise AssertionError("the singular values are missing: scale the columns of U (or the rows of Vh) by S.")
        rank = int(torch.linalg.matrix_rank(got.double()))
        raise AssertionError(f"wrong matrix for a {shape} W and r={r} (yours has rank {rank}). Take the SVD, keep the "
                             "r largest singular values with their vectors, and multiply back: U_r diag(S_r) Vh_r.")


@exercise("lora.trainable_params")
def check_trainable_params(answer: Any) -> None:
    r"""Trainable parameters of LoRA at rank 16 on all seven matrices of every block of ``LLAMA7B``."""
    got = require_number(answer, "the number of trainable parameters")
    c = LLAMA7B
    C, F, L, r = c["n_embd"], c["ffn_hidden"], c["n_layer"], c["r"]
    attn = 4 * r * (C + C)  # W_Q, W_K, W_V, W_O: C -> C each (multi-head attention)
    mlp = 3 * r * (C + F)  # gate and up C -> F, down F -> C
    want = L * (attn + mlp)
    if got == want:
        return
    if got == want / 2:
        raise AssertionError("an adapter has two factors: A is (r, d_in) and B is (d_out, r); count both.")
    if got == L * (attn + 2 * r * (C + F)):
        raise AssertionError("LLaMA's SwiGLU has three matrices (gate, up, down), each with its own adapter.")
    if got == want / L:
        raise AssertionError("that is one block: every one of the 32 blocks gets its adapters.")
    if got == L * r * (4 * C * C + 3 * C * F) or got == L * (4 * C * C + 3 * C * F):
        raise AssertionError("an adapter of rank r on a d_out x d_in matrix has r (d_in + d_out) parameters, not r d_in d_out.")
    raise AssertionError(f"{got:,.0f} is not it: per block, r (d_in + d_out) for each of the seven matrices "
                         "(four C x C in attention, three between C and F in SwiGLU), times 32 blocks.")


@exercise("lora.nf4_bytes")
def check_nf4_bytes(answer: Any) -> None:
    r"""Bytes that :meth:`~dlscratch.layers.quant.NF4Linear.nbytes` reports for ``NF4_LAYER``."""
    got = require_number(answer, "the number of bytes")
    n = NF4_LAYER["in_features"] * NF4_LAYER["out_features"]
    blocks = n // NF4_LAYER["block_size"]
    codes = n // 2  # two 4-bit codes per byte
    want = codes + blocks + 4 * math.ceil(blocks / NF4_LAYER["scale_block_size"]) + 4  # int8 scales, fp32 per 256, mean
    if got == want:
        return
    if got in (codes + 4 * blocks, codes + 4 * blocks + 4):
        raise AssertionError("that stores the scales in float32: with double quantisation each scale is one int8 "
                             "byte, plus a float32 per 256 scales and one float32 mean.")
    if got in (codes, n):
        raise AssertionError("the absmax scales take memory too: one per block of 64 weights.")
    if got == want + codes:
        raise AssertionError("two 4-bit codes share a byte: the codes take n / 2 bytes, not n.")
    raise AssertionError(f"{got:,.0f} is not it: n / 2 bytes of packed codes, one int8 per block of 64, a float32 per "
                         "256 blocks, and a float32 mean.")
