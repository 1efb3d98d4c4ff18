r"""Exercise checkers for chapter 36, "Model compression" (topic prefix ``compress.``).

The function checker runs the package's own tested :func:`~dlscratch.layers.quant_int.quantize`
on seeded random weights and compares; the number checkers recompute the answer from the storage
formats. A wrong answer gets a hint aimed at the usual mistake. The reference solutions live in
the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.quant_int import QuantLinear, quantize
from .answers import close, require_callable, require_number
from .core import exercise

__all__ = ["LAYER_VALUES", "SPARSE_VALUES", "check_int8_per_channel", "check_layer_bytes", "check_two_four_bits"]

# compress.layer_bytes: a QuantLinear of this shape, 4-bit absmax codes, one float16 scale per group
LAYER_VALUES = {"out_features": 384, "in_features": 128, "bits": 4, "group_size": 64}
# compress.two_four_bits: a 2:4-sparse float16 matrix with a 2-bit position index per kept value
SPARSE_VALUES = {"value_bits": 16, "index_bits": 2, "n": 2, "m": 4}


@exercise("compress.int8_per_channel")
def check_int8_per_channel(answer: Any) -> None:
    r"""``answer(w)`` returns ``(q, scale)``: int8 absmax codes and one scale per output row, ``(d_out, 1)``."""
    fn = require_callable(answer, "my_int8_per_channel")
    gen = torch.Generator().manual_seed(36)
    for shape in ((6, 16), (1, 7), (9, 33)):
        w = torch.randn(shape, generator=gen, dtype=torch.float64) * torch.rand(shape[0], 1, generator=gen, dtype=torch.float64) * 4
        want = quantize(w, bits=8, scheme="absmax", granularity="channel")
        with torch.no_grad():
            got = fn(w)
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            raise AssertionError("return a pair of tensors (q, scale): the integer codes and the scales")
        q, scale = got[0].double(), got[1].double().reshape(-1, 1)
        if scale.shape[0] == 1 and shape[0] > 1:
            raise AssertionError("one scale for the whole tensor is per-tensor quantisation; take the max |w| of each row (dim=1, keepdim=True).")
        if scale.shape != want.scale.shape or q.shape != w.shape:
            raise AssertionError(f"for w of shape {shape}, q must have shape {shape} and scale ({shape[0]}, 1); "
                                 f"got {tuple(got[0].shape)} and {tuple(got[1].shape)}")
        if torch.allclose(scale, want.scale * 127 / 128):
            raise AssertionError("your scale divides by 128; symmetric int8 uses the codes -127..127, so s = max|w| / 127.")
        if torch.allclose(scale, want.scale * 127):
            raise AssertionError("that scale is max|w| itself; divide by 127 so that the largest weight lands on code 127.")
        if not torch.allclose(scale, want.scale):
            raise AssertionError("wrong scales: s = max_k |w_ok| / 127 for each output row o.")
        if torch.equal(q, torch.trunc(w / want.scale)) and not torch.equal(q, want.q.double()):
            raise AssertionError("the codes are truncated towards zero; round to the nearest integer (torch.round).")
        if not torch.equal(q, want.q.double()):
            raise AssertionError("the scales are right but the codes are not: q = round(w / s), clamped to [-127, 127].")


@exercise("compress.layer_bytes")
def check_layer_bytes(answer: Any) -> None:
    r"""The bytes a :class:`~dlscratch.layers.quant_int.QuantLinear` stores for :data:`LAYER_VALUES`: packed codes plus float16 scales."""
    got = require_number(answer, "the number of bytes")
    o, i, g = LAYER_VALUES["out_features"], LAYER_VALUES["in_features"], LAYER_VALUES["group_size"]
    codes, scales = o * i // 2, o * i // g * 2
    want = codes + scales
    layer = QuantLinear.from_linear(torch.nn.Linear(i, o, bias=False), bits=4, granularity="group", group_size=g)
    assert want == sum(b.numel() * b.element_size() for b in layer.buffers())  # the formula is the layer's storage
    if close(got, want):
        return
    if close(got, 2 * codes + scales):
        raise AssertionError("that counts one byte per 4-bit code; QuantLinear packs two codes into each byte.")
    if close(got, codes):
        raise AssertionError("the codes alone; each group of 64 weights also stores its float16 scale.")
    if close(got, codes + 2 * scales):
        raise AssertionError("the scales are stored in float16: 2 bytes each, not 4.")
    if close(got, o * i * 4):
        raise AssertionError("that is the float32 layer; the question asks for the quantised one.")
    raise AssertionError(f"{got:g} is not it: count the 4-bit codes (two per byte) and one 2-byte scale per {g} weights.")


@exercise("compress.two_four_bits")
def check_two_four_bits(answer: Any) -> None:
    r"""Bits per weight of a 2:4-sparse float16 matrix with a 2-bit index per kept value: :math:`\frac{n}{m}(16 + 2)`."""
    got = require_number(answer, "the bits per weight")
    keep = SPARSE_VALUES["n"] / SPARSE_VALUES["m"]
    want = keep * (SPARSE_VALUES["value_bits"] + SPARSE_VALUES["index_bits"])
    if close(got, want):
        return
    if close(got, keep * SPARSE_VALUES["value_bits"]):
        raise AssertionError("the kept values alone; the hardware also needs to know where each one sat in its group of 4.")
    if close(got, want / keep):
        raise AssertionError("that is per *kept* weight; the question asks per weight of the dense matrix (half are dropped).")
    if close(got, SPARSE_VALUES["value_bits"]):
        raise AssertionError("that is the dense float16 matrix: 2:4 drops half the values.")
    raise AssertionError(f"{got:g} is not it: per group of 4 weights, 2 float16 values and 2 indices of 2 bits each.")
