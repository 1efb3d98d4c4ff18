r"""Int8 matrix multiplication of activations and weights, and LLM.int8()'s outlier decomposition.

* :func:`int_matmul`: an exact int8 × int8 → int32 product (``torch._int_mm`` where torch has it).
* :func:`int8_matmul`: :math:`X W^\top` with both operands quantised to int8, one absmax scale per
  row of :math:`X` (a token) and per row of :math:`W` (an output channel): *vector-wise* quantisation.
* :func:`outlier_columns` and :func:`llm_int8_matmul`: Dettmers et al. (2022) keep the few feature
  dimensions where some activation exceeds a threshold in 16 bits (float here), and multiply the
  rest in int8.
* :class:`Int8Linear`: a linear layer that stores int8 weights and computes that way.

Introduced in chapter 36, *Model compression*.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .quant_int import quantize

__all__ = ["int_matmul", "int8_matmul", "outlier_columns", "llm_int8_matmul", "Int8Linear"]


def int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""The exact product of two int8 matrices, accumulated in int32.

    Uses ``torch._int_mm`` (an int8 GEMM: oneDNN/FBGEMM on CPUs with VNNI, cuBLASLt on GPUs) when
    it accepts the shapes; otherwise multiplies in float64, which is exact for these sums
    (:math:`|a_{ik} b_{kj}| \le 127^2` and :math:`k < 2^{38}` terms stay below :math:`2^{53}`).

    Shape:
        - a: :math:`(M, K)` int8; b: :math:`(K, N)` int8; output: :math:`(M, N)` int32
    """
    if hasattr(torch, "_int_mm"):
        try:
            return torch._int_mm(a, b)  # (M, K) @ (K, N) -> (M, N) int32
        except RuntimeError:  # e.g. CUDA needs M > 16 and K, N multiples of 8
            pass
    return (a.double() @ b.double()).to(torch.int32)


def _int8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    qt = quantize(x, bits=8, scheme="absmax", granularity="channel")  # one scale per row
    return qt.q.to(torch.int8), qt.scale  # (R, K) int8, (R, 1)


def int8_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r""":math:`X W^\top` from int8 codes: vector-wise absmax quantisation of both operands, an int32 product, one rescale.

    .. math::

        X W^\top \approx \bigl(s^X (s^W)^\top\bigr) \odot \bigl(Q^X (Q^W)^\top\bigr), \qquad
        s^X_t = \frac{\max_k |X_{tk}|}{127}, \quad s^W_o = \frac{\max_k |W_{ok}|}{127}

    Shape:
        - x: :math:`(M, K)`; w: :math:`(N, K)`; output: :math:`(M, N)` in ``x``'s dtype
    """
    qx, sx = _int8_rows(x)  # (M, K), (M, 1)
    qw, sw = _int8_rows(w)  # (N, K), (N, 1)
    acc = int_matmul(qx, qw.t().contiguous())  # (M, K) @ (K, N) -> (M, N) int32
    return (acc.to(x.dtype) * sx.to(x.dtype) * sw.to(x.dtype).t())  # (M, N)


def outlier_columns(x: torch.Tensor, threshold: float = 6.0) -> torch.Tensor:
    r"""The feature dimensions :math:`O = \{k : \max_t |X_{tk}| \ge \alpha\}` with :math:`\alpha` = ``threshold``.

    Shape:
        - x: :math:`(M, K)`; output: :math:`(K,)` bool
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got threshold={threshold!r}")
    return x.abs().amax(dim=0) >= threshold


def llm_int8_matmul(x: torch.Tensor, w: torch.Tensor, threshold: float = 6.0) -> torch.Tensor:
    r"""LLM.int8(): the outlier dimensions in floating point, every other one in vector-wise int8.

    .. math::

        X W^\top \approx X_{:, O}\, W_{:, O}^\top
        + \bigl(s^X (s^W)^\top\bigr) \odot \bigl(Q^X_{:, \bar O} (Q^W_{:, \bar O})^\top\bigr)

    with :math:`O` from :func:`outlier_columns`; the scales of the int8 part are computed without
    the outlier columns, so one large activation no longer flattens its whole row. Dettmers et al.
    (2022) find :math:`|O|` small (about 0.1 % of dimensions) and :math:`\alpha = 6` enough.

    Shape:
        - x: :math:`(M, K)`; w: :math:`(N, K)`; output: :math:`(M, N)`
    """
    out = outlier_columns(x, threshold)  # (K,)
    regular = int8_matmul(x[:, ~out], w[:, ~out]) if bool((~out).any()) else x.new_zeros(x.shape[0], w.shape[0])
    return regular + x[:, out] @ w[:, out].t()  # (M, N) + (M, |O|) @ (|O|, N)


class Int8Linear(nn.Module):
    r"""A frozen linear layer with int8 weights (one scale per output channel) that multiplies in int8.

    Each call quantises its input per token (:func:`int8_matmul`); with ``threshold`` set, the
    outlier features go through floating point first (:func:`llm_int8_matmul`). Chapter 36.

    Args:
        weight: the float weight, :math:`(d_{out}, d_{in})`.
        bias: an optional bias (kept in float).
        threshold: LLM.int8()'s outlier threshold :math:`\alpha`; ``None`` quantises every feature.

    Shape:
        - x: :math:`(*, d_{in})`; output: :math:`(*, d_{out})`
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, threshold: float | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.threshold = threshold
        q, scale = _int8_rows(weight.detach())
        self.register_buffer("qweight", q)  # (d_out, d_in) int8
        self.register_buffer("scale", scale)  # (d_out, 1)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, threshold: float | None = None) -> Int8Linear:
        r"""Quantise an ``nn.Linear``."""
        return cls(linear.weight, linear.bias, threshold)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, threshold={self.threshold}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)  # (M, d_in)
        w = self.qweight.to(x.dtype) * self.scale.to(x.dtype)  # dequantised: the product below requantises it exactly
        if self.threshold is None:
            y = int8_matmul(flat, w)  # (M, d_out)
        else:
            y = llm_int8_matmul(flat, w, self.threshold)
        y = y.reshape(*x.shape[:-1], self.out_features)  # (*, d_out)
        return y if self.bias is None else y + self.bias
