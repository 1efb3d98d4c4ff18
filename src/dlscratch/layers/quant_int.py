r"""Integer quantisation of weights: absmax and zero-point codes, per tensor, per channel, per group.

* :func:`check_bits` and :func:`code_range`: the integer codes a bit width allows.
* :func:`scale_rows`: the rows that share one scale (the whole tensor, a row, a group of a row).
* :func:`quantize` / :func:`dequantize` (and :func:`fake_quantize`, the round trip) over a
  :class:`QuantizedTensor`; :func:`quantize_with`: codes for given scales and zero points
  (what GPTQ calls column by column).
* :class:`QuantLinear`: a linear layer stored that way (int8 codes, or 4-bit codes packed two per
  byte by :func:`~dlscratch.layers.quant.pack_4bit`); :func:`quantize_model_linears` swaps them in.

Chapter 23 quantised to the 16 levels of NF4 in blocks; this module is the integer grid that
int8 and int4 inference kernels use. Introduced in chapter 36, *Model compression*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_positive_int
from .quant import pack_4bit, replace_linears, unpack_4bit

__all__ = [
    "BITS",
    "SCHEMES",
    "GRANULARITIES",
    "check_bits",
    "code_range",
    "scale_rows",
    "QuantizedTensor",
    "quantize",
    "grid_params",
    "quantize_with",
    "dequantize",
    "fake_quantize",
    "weight_bits",
    "QuantLinear",
    "quantize_model_linears",
]

BITS = (2, 3, 4, 8)  # the bit widths this module quantises to
SCHEMES = ("absmax", "zeropoint")  # symmetric codes around 0, or an affine grid over [min, max]
GRANULARITIES = ("tensor", "channel", "group")  # one scale per tensor, per output row, per group of a row


def check_bits(bits: int) -> None:
    r"""Raise ``ValueError`` unless ``bits`` is one of :data:`BITS` (2, 3, 4 or 8)."""
    if isinstance(bits, bool) or bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got bits={bits!r}")


def code_range(bits: int, scheme: str = "absmax") -> tuple[int, int]:
    r"""The smallest and largest integer code: :math:`\pm(2^{b-1} - 1)` for absmax, :math:`[0, 2^b - 1]` for zero-point.

    Absmax drops the code :math:`-2^{b-1}` so that the grid is symmetric (int8: -127..127).
    """
    check_bits(bits)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got scheme={scheme!r}")
    if scheme == "absmax":
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def scale_rows(w: torch.Tensor, granularity: str = "channel", group_size: int | None = None) -> torch.Tensor:
    r"""``w`` reshaped so that each row shares one scale: the whole tensor, one output channel, or a group.

    Raises:
        ValueError: on an unknown granularity, or a ``group_size`` that does not divide the row.

    Shape:
        - w: :math:`(d_{out}, \ldots)`, a row of :math:`n` elements; output: :math:`(1, N)` per tensor,
          :math:`(d_{out}, n)` per channel, :math:`(d_{out} n / g, g)` per group of :math:`g`
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got granularity={granularity!r}")
    if granularity == "tensor":
        return w.reshape(1, -1)  # (1, N)
    rows = w.reshape(w.shape[0], -1)  # (d_out, n)
    if granularity == "channel":
        return rows
    check_positive_int("group_size", group_size)
    n = rows.shape[1]
    if n % group_size:  # type: ignore[operator]
        raise ValueError(f"group_size={group_size} does not divide the row of {n} weights ({n} % {group_size} = {n % group_size})")  # type: ignore[operator]
    return rows.reshape(-1, group_size)  # type: ignore[arg-type]  # (d_out * n / g, g)


class QuantizedTensor(NamedTuple):
    r"""Integer codes and what turns them back into numbers: :math:`\hat w = s\,(q - z)`."""

    q: torch.Tensor  # the codes, int16 (room for 8-bit zero-point codes), the weight's shape
    scale: torch.Tensor  # (n_rows, 1) one scale per row of scale_rows
    zero: torch.Tensor  # (n_rows, 1) integer zero points (all 0 for absmax)
    bits: int  # bit width b
    scheme: str  # "absmax" or "zeropoint"
    granularity: str  # "tensor", "channel" or "group"
    group_size: int | None  # weights per scale for "group"


def grid_params(rows: torch.Tensor, bits: int, scheme: str = "absmax") -> tuple[torch.Tensor, torch.Tensor]:
    r"""The scale and zero point of each row: the grid of :func:`quantize` (see its formulas).

    Shape:
        - rows: :math:`(n_\text{rows}, n)`; scale, zero: :math:`(n_\text{rows}, 1)`
    """
    qmin, qmax = code_range(bits, scheme)
    tiny = torch.finfo(rows.dtype).eps  # an all-zero row gets this scale, as torch's observers do
    if scheme == "absmax":
        scale = (rows.abs().amax(dim=1, keepdim=True) / qmax).clamp_min(tiny)  # (n_rows, 1)
        return scale, torch.zeros_like(scale)
    lo = rows.amin(dim=1, keepdim=True).clamp(max=0)  # the grid always holds 0 exactly
    hi = rows.amax(dim=1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / (qmax - qmin)).clamp_min(tiny)  # (n_rows, 1)
    zero = (qmin - torch.round(lo / scale)).clamp(qmin, qmax)  # (n_rows, 1)
    return scale, zero


def quantize_with(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int, scheme: str = "absmax") -> torch.Tensor:
    r"""Round to the nearest code of the grid given by ``scale`` and ``zero``: :math:`q = \operatorname{clamp}(\lfloor w/s \rceil + z)`.

    ``torch.round`` rounds halves to even, as ``torch.quantize_per_channel`` does. Returns the
    codes as floats in ``w``'s dtype (a GPTQ step needs them so).
    """
    qmin, qmax = code_range(bits, scheme)
    return torch.clamp(torch.round(w / scale) + zero, qmin, qmax)


def quantize(w: torch.Tensor, bits: int = 8, scheme: str = "absmax", granularity: str = "channel",
             group_size: int | None = None) -> QuantizedTensor:
    r"""Quantise ``w`` to ``bits``-bit integers with one scale (and zero point) per tensor, channel or group.

    .. math::

        \text{absmax:}\quad s = \frac{\max |w|}{2^{b-1} - 1}, \quad q = \operatorname{round}(w / s), \qquad
        \text{zero-point:}\quad s = \frac{\max w - \min w}{2^b - 1}, \quad z = -\operatorname{round}\frac{\min w}{s}, \quad
        q = \operatorname{clamp}\bigl(\operatorname{round}(w / s) + z,\ 0,\ 2^b - 1\bigr)

    with the max and min over the weights that share the scale (:func:`scale_rows`), and the
    zero-point range stretched to hold 0. Dequantisation is :math:`\hat w = s (q - z)`.

    Raises:
        ValueError: on a bit width outside :data:`BITS`, an unknown scheme or granularity, or a
            ``group_size`` that does not divide the row.

    Shape:
        - w: :math:`(d_{out}, \ldots)`; q: same; scale, zero: :math:`(n_\text{rows}, 1)`
    """
    code_range(bits, scheme)  # checks both
    rows = scale_rows(w.detach(), granularity, group_size)  # (n_rows, row)
    scale, zero = grid_params(rows, bits, scheme)
    q = quantize_with(rows, scale, zero, bits, scheme)  # (n_rows, row)
    return QuantizedTensor(q.to(torch.int16).reshape(w.shape), scale, zero, bits, scheme, granularity, group_size)


def dequantize(qt: QuantizedTensor) -> torch.Tensor:
    r""":math:`\hat w = s\,(q - z)`, in the scale's dtype and the codes' shape."""
    rows = scale_rows(qt.q, qt.granularity, qt.group_size).to(qt.scale)  # (n_rows, row)
    return ((rows - qt.zero) * qt.scale).reshape(qt.q.shape)


def fake_quantize(w: torch.Tensor, bits: int = 8, scheme: str = "absmax", granularity: str = "channel",
                  group_size: int | None = None) -> torch.Tensor:
    r"""``w`` after a round trip through :func:`quantize` and :func:`dequantize`: what the model computes with."""
    return dequantize(quantize(w, bits, scheme, granularity, group_size)).to(w.dtype)


def weight_bits(bits: int, n_per_scale: int, scheme: str = "absmax", scale_bits: int = 16) -> float:
    r"""Storage per weight: the code plus its share of a float16 scale (and a ``bits``-bit zero point).

    .. math::

        b_\text{eff} = b + \frac{16}{g} \;(\text{absmax}), \qquad b + \frac{16 + b}{g} \;(\text{zero-point})
    """
    check_bits(bits)
    return bits + (scale_bits + (bits if scheme == "zeropoint" else 0)) / n_per_scale


class QuantLinear(nn.Module):
    r"""A frozen linear layer whose weight is stored as integer codes and dequantised at every call.

    .. math::

        y = x\, \hat W^\top + b, \qquad \hat W = s\,(q - z)

    8-bit codes are stored as int8 (absmax) or uint8 (zero-point); 4-bit codes are shifted to
    :math:`[0, 15]` and packed two per byte with :func:`~dlscratch.layers.quant.pack_4bit`; 2- and
    3-bit codes take a byte each here (a real kernel packs them too). Scales are stored in float16,
    zero points in one byte each. Chapter 36.

    Args:
        qt: the quantised weight, :math:`(d_{out}, d_{in})`, from :func:`quantize` or GPTQ.
        bias: an optional bias (kept in float, frozen).
        dtype: the dtype the layer computes in.

    Shape:
        - x: :math:`(*, d_{in})`; output: :math:`(*, d_{out})`
    """

    def __init__(self, qt: QuantizedTensor, bias: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.out_features, self.in_features = qt.q.shape
        self.bits, self.scheme, self.granularity, self.group_size = qt.bits, qt.scheme, qt.granularity, qt.group_size
        self.dtype = dtype
        self.offset = -code_range(qt.bits, qt.scheme)[0]  # shifts absmax codes to >= 0 for packing
        codes = qt.q.reshape(-1) + self.offset  # (N,) in [0, 2^b - 1] (absmax: [1, 2^b - 1])
        if qt.bits == 4:
            self.register_buffer("codes", pack_4bit(codes))  # (N/2,) uint8
        else:
            self.register_buffer("codes", codes.to(torch.uint8))  # (N,) uint8
        self.register_buffer("scale", qt.scale.to(torch.float16))  # (n_rows, 1)
        self.register_buffer("zero", qt.zero.to(torch.uint8) if qt.scheme == "zeropoint" else None)  # (n_rows, 1)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 8, scheme: str = "absmax", granularity: str = "channel",
                    group_size: int | None = None) -> QuantLinear:
        r"""Quantise an ``nn.Linear`` by round-to-nearest (:func:`quantize`)."""
        qt = quantize(linear.weight, bits, scheme, granularity, group_size)
        return cls(qt, linear.bias, linear.weight.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
                f"scheme={self.scheme!r}, granularity={self.granularity!r}, group_size={self.group_size}")

    def quantized(self) -> QuantizedTensor:
        r"""The stored weight as a :class:`QuantizedTensor` (the scales as stored, in float16)."""
        codes = unpack_4bit(self.codes) if self.bits == 4 else self.codes
        q = (codes.to(torch.int16) - self.offset).view(self.out_features, self.in_features)
        zero = torch.zeros_like(self.scale) if self.zero is None else self.zero
        return QuantizedTensor(q, self.scale, zero, self.bits, self.scheme, self.granularity, self.group_size)

    def dequantized_weight(self) -> torch.Tensor:
        r""":math:`\hat W = s (q - z)`, :math:`(d_{out}, d_{in})`, in the layer's dtype."""
        qt = self.quantized()
        return dequantize(qt._replace(scale=qt.scale.to(self.dtype), zero=qt.zero.to(self.dtype)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight(), self.bias)  # (*, d_in) @ (d_in, d_out) -> (*, d_out)


def quantize_model_linears(model: nn.Module, targets: Sequence[str], **kwargs: object) -> list[str]:
    r"""Replace every ``nn.Linear`` of ``model`` whose last name component is in ``targets`` by a :class:`QuantLinear`.

    ``kwargs`` go to :meth:`QuantLinear.from_linear` (``bits``, ``scheme``, ``granularity``,
    ``group_size``); the swap is :func:`~dlscratch.layers.quant.replace_linears`.

    Returns:
        The qualified names of the replaced layers.
    """
    return replace_linears(model, targets, lambda linear: QuantLinear.from_linear(linear, **kwargs))  # type: ignore[arg-type]
