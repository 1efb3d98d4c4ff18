r"""Exercise checkers for chapter 25, "State-space models and Mamba" (topic prefix ``mamba.``).

The number checkers recompute the answer with plain arithmetic; the function checker runs the
package's own tested :func:`~dlscratch.layers.ssm.selective_scan` on seeded random inputs and
compares. A wrong answer gets a hint. The reference solutions live in the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.ssm import selective_scan
from .answers import close, require_callable, require_number
from .core import exercise

__all__ = ["ZOH_VALUES", "STATE_CONFIG", "check_zoh_b_bar", "check_state_bytes", "check_selective_scan"]

# mamba.zoh_b_bar: one channel, one state: A, B and the step Delta
ZOH_VALUES = {"A": -2.0, "B": 1.0, "delta": 0.5}
# mamba.state_bytes: Mamba-130M's sizes, one sequence, float32
STATE_CONFIG = {"n_layer": 24, "d_model": 768, "expand": 2, "d_state": 16, "d_conv": 4, "batch_size": 1, "bytes_per_number": 4}


@exercise("mamba.zoh_b_bar")
def check_zoh_b_bar(answer: Any) -> None:
    r""":math:`\bar{B}` of the zero-order hold for ``ZOH_VALUES``: :math:`(e^{\Delta A} - 1) B / A`."""
    got = require_number(answer, "B_bar")
    A, B, dt = ZOH_VALUES["A"], ZOH_VALUES["B"], ZOH_VALUES["delta"]
    want = math.expm1(dt * A) / A * B
    if close(got, want):
        return
    if close(got, dt * B):
        raise AssertionError("that is Euler's (and Mamba's) B_bar = Delta * B; the zero-order hold integrates e^{A s} B over the step.")
    if close(got, math.exp(dt * A)):
        raise AssertionError("that is A_bar = e^{Delta A}; the question asks for B_bar.")
    if close(got, -want):
        raise AssertionError("check the sign: A < 0 and e^{Delta A} - 1 < 0, so B_bar > 0.")
    raise AssertionError(f"{got:g} is not it: B_bar = (Delta A)^(-1) (e^{{Delta A}} - 1) Delta B.")


@exercise("mamba.state_bytes")
def check_state_bytes(answer: Any) -> None:
    r"""Bytes of Mamba's decoding state for ``STATE_CONFIG``: per block, K - 1 convolution inputs and the (Di, N) SSM state."""
    got = require_number(answer, "the number of bytes")
    c = STATE_CONFIG
    Di = c["expand"] * c["d_model"]
    per_layer = c["batch_size"] * Di * (c["d_conv"] - 1 + c["d_state"]) * c["bytes_per_number"]
    want = c["n_layer"] * per_layer
    if got == want:
        return
    if got == c["n_layer"] * c["batch_size"] * Di * (c["d_conv"] + c["d_state"]) * c["bytes_per_number"]:
        raise AssertionError("the convolution needs only its last K - 1 inputs (Hugging Face's cache keeps K, one of them unused by the next step).")
    if got == want // c["expand"]:
        raise AssertionError(f"the state lives in the expanded width d_inner = expand * d_model = {Di}, not d_model.")
    if got == c["n_layer"] * c["batch_size"] * Di * c["d_state"] * c["bytes_per_number"]:
        raise AssertionError("add the convolution's state: its last K - 1 inputs per channel.")
    if got == want // c["n_layer"]:
        raise AssertionError("every block has its own state.")
    raise AssertionError(f"{got:,.0f} is not it: per block, d_inner x (K - 1) convolution inputs and d_inner x N SSM state, 4 bytes each.")


@exercise("mamba.selective_scan")
def check_selective_scan(answer: Any) -> None:
    r"""``answer(u, delta, A, B, C, D)``: the selective SSM's outputs ``y`` :math:`(B, T, D)` with :math:`h_0 = 0`."""
    fn = require_callable(answer, "my_selective_scan")
    gen = torch.Generator().manual_seed(25)
    for Bsz, T, D, N in ((2, 7, 3, 4), (1, 1, 2, 1), (3, 12, 5, 2)):
        u = torch.randn(Bsz, T, D, generator=gen, dtype=torch.float64)
        delta = torch.rand(Bsz, T, D, generator=gen, dtype=torch.float64) + 0.05
        A = -torch.rand(D, N, generator=gen, dtype=torch.float64) * 2 - 0.1
        B, C = (torch.randn(Bsz, T, N, generator=gen, dtype=torch.float64) for _ in range(2))
        Dskip = torch.randn(D, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            got = fn(u, delta, A, B, C, Dskip)
        if isinstance(got, tuple):
            got = got[0]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (Bsz, T, D):
            raise AssertionError(f"return y, a tensor of shape (B, T, D) = {(Bsz, T, D)}, got {getattr(got, 'shape', type(got).__name__)}")
        Bb, Cb = B.unsqueeze(2), C.unsqueeze(2)  # (B, T, 1, N): shared by the channels
        want = selective_scan(u, delta, A, Bb, Cb, Dskip)[0]
        if torch.allclose(got.double(), want, atol=1e-8, rtol=1e-6):
            continue
        if torch.allclose(got.double(), selective_scan(u, delta, A, Bb, Cb)[0], atol=1e-8, rtol=1e-6):
            raise AssertionError("add the skip connection D * u to every output.")
        if T > 1 and torch.allclose(got.double(), selective_scan(u, delta, A, Bb, Cb.roll(1, dims=1), Dskip)[0], atol=1e-8, rtol=1e-6):
            raise AssertionError("read the state out with the C of the same step: y_t = C_t h_t.")
        raise AssertionError(
            f"wrong values for B={Bsz}, T={T}, D={D}, N={N}. Per step: A_bar = exp(delta_t A) (D, N), "
            "B_bar u = delta_t B_t u_t (D, N), h = A_bar * h + B_bar u, y_t = (h * C_t).sum(-1) + D * u_t."
        )
