r"""4-bit weights as in QLoRA: NF4 levels, blockwise absmax, double quantisation, packing.

* :func:`nf4_levels` (and :func:`int4_levels` for comparison): the 16 (15) values a 4-bit code names.
* :func:`quantize_blockwise` / :func:`dequantize_blockwise`: one absmax scale per block of 64 weights.
* :func:`double_quantize` / :func:`double_dequantize`: the scales themselves in 8 bits, per block of 256.
* :func:`bits_per_parameter`: what that storage costs.
* :func:`pack_4bit` / :func:`unpack_4bit`: two codes per byte.
* :class:`NF4Linear`: a frozen linear layer stored that way, dequantised on the fly
  (:class:`~dlscratch.layers.lora.LoRALinear` goes on top); :func:`quantize_linears` swaps them in
  (through :func:`replace_linears`, which chapter 36's integer layers use too).

Introduced in chapter 23, *LoRA and quantized bases (QLoRA)*, after Dettmers et al. (2023).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_positive_int

__all__ = [
    "nf4_levels",
    "int4_levels",
    "LEVELS",
    "quantize_blockwise",
    "dequantize_blockwise",
    "quantize_dequantize",
    "DoubleQuant",
    "double_quantize",
    "double_dequantize",
    "bits_per_parameter",
    "pack_4bit",
    "unpack_4bit",
    "NF4Linear",
    "quantize_linears",
    "replace_linears",
]


def nf4_levels(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""The 16 levels of 4-bit NormalFloat: quantiles of :math:`\mathcal{N}(0, 1)`, scaled to :math:`[-1, 1]`, with an exact 0.

    .. math::

        q^+_i = \Phi^{-1}\!\bigl(\delta + (\tfrac12 - \delta)\tfrac{i}{8}\bigr),\ i = 0..7, \qquad
        q^-_j = -\Phi^{-1}\!\bigl(\delta + (\tfrac12 - \delta)\tfrac{j}{7}\bigr),\ j = 0..6, \qquad
        \text{levels} = \frac{\{q^-\} \cup \{0\} \cup \{q^+\}}{\max_i q^+_i}

    with :math:`\delta = \tfrac12\bigl((1 - \tfrac{1}{30}) + (1 - \tfrac{1}{32})\bigr)`: 8 positive
    and 7 negative quantiles of equal probability mass, so that 0 is a level (Dettmers et al.,
    2023, computed as in their ``bitsandbytes.functional.create_normal_map``). Chapter 23.

    Shape:
        - output: :math:`(16,)`, increasing, from -1 to 1
    """
    offset = 0.5 * ((1 - 1 / 30) + (1 - 1 / 32))  # 0.9677083: between the 15- and 16-level edge quantiles
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])  # (8,) > 0
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])  # (7,) < 0
    levels = torch.cat([neg, torch.zeros(1, dtype=torch.float64), pos]).sort().values  # (16,)
    return (levels / levels.max()).to(dtype)


def int4_levels(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Symmetric 4-bit integers for absmax quantisation: :math:`k/7` for :math:`k = -7 \ldots 7` (15 levels).

    Shape:
        - output: :math:`(15,)`
    """
    return torch.arange(-7, 8, dtype=torch.float64).div(7).to(dtype)


LEVELS = {"nf4": nf4_levels, "int4": int4_levels}  # code name -> the function giving its levels


def _check_blocks(n: int, block_size: int) -> None:
    check_positive_int("block_size", block_size)
    if n % block_size:
        raise ValueError(f"block_size={block_size} does not divide the tensor's {n} elements ({n} % {block_size} = {n % block_size})")


def quantize_blockwise(w: torch.Tensor, levels: torch.Tensor, block_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Blockwise absmax quantisation: each block's weights, divided by their largest magnitude, to the nearest level.

    .. math::

        s_b = \max_{i \in b} |w_i|, \qquad c_i = \arg\min_k \bigl| w_i / s_b - \ell_k \bigr|

    One outlier then costs the precision of its own block of ``block_size`` weights only.

    Returns:
        ``(codes, absmax)``: ``codes`` (uint8 indices into ``levels``) and ``absmax``, one scale per block.

    Raises:
        ValueError: if ``block_size`` does not divide ``w.numel()``.

    Shape:
        - w: any shape, :math:`N` elements; codes: :math:`(N,)`; absmax: :math:`(N / \text{block\_size},)`
    """
    _check_blocks(w.numel(), block_size)
    blocks = w.detach().reshape(-1, block_size)  # (nb, block)
    absmax = blocks.abs().amax(dim=1)  # (nb,)
    normed = blocks / absmax.clamp_min(torch.finfo(blocks.dtype).tiny)[:, None]  # (nb, block) in [-1, 1]
    lv = levels.to(blocks)  # the weights' dtype and device
    codes = torch.bucketize(normed, (lv[1:] + lv[:-1]) / 2)  # nearest level: count the midpoints below
    return codes.to(torch.uint8).reshape(-1), absmax


def dequantize_blockwise(codes: torch.Tensor, absmax: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    r""":math:`\hat w_i = \ell_{c_i}\, s_b`: the inverse of :func:`quantize_blockwise` up to rounding.

    Shape:
        - codes: :math:`(N,)`; absmax: :math:`(n_b,)`; output: :math:`(N,)` in ``absmax``'s dtype
    """
    blocks = levels.to(absmax)[codes.long()].reshape(absmax.numel(), -1)  # (nb, block)
    return (blocks * absmax[:, None]).reshape(-1)  # (N,)


def quantize_dequantize(w: torch.Tensor, code: str = "nf4", block_size: int = 64) -> torch.Tensor:
    r"""``w`` after a round trip through ``code`` ("nf4" or "int4") with blockwise absmax: what the model computes with."""
    levels = LEVELS[code](w.dtype)
    codes, absmax = quantize_blockwise(w, levels, block_size)
    return dequantize_blockwise(codes, absmax, levels).reshape(w.shape)


class DoubleQuant(NamedTuple):
    r"""Quantised absmax scales: int8 codes, one float32 scale per block of them, and their mean."""

    codes: torch.Tensor  # (n,) int8: round((absmax - mean) / scale)
    scales: torch.Tensor  # (ceil(n / block_size),) float32: each block's max |absmax - mean| / 127
    mean: torch.Tensor  # () float32: subtracted first, so the codes use both signs
    block_size: int  # absmax values per second-level block (256)


def double_quantize(absmax: torch.Tensor, block_size: int = 256) -> DoubleQuant:
    r"""Quantise the first-level scales to 8 bits, blockwise absmax over blocks of ``block_size`` (QLoRA's double quantisation).

    .. math::

        \bar s = \tfrac{1}{n}\textstyle\sum_b s_b, \qquad
        z_B = \max_{b \in B} |s_b - \bar s| / 127, \qquad
        c_b = \operatorname{round}\bigl((s_b - \bar s) / z_B\bigr) \in \{-127, \ldots, 127\}

    The scales are positive; subtracting their mean first lets the int8 codes use both signs.
    (Dettmers et al. use an 8-bit float code here; a linear int8 code costs the same bits.)
    A last, shorter block is padded with zeros.

    Shape:
        - absmax: :math:`(n,)`; codes: :math:`(n,)`; scales: :math:`(\lceil n / \text{block\_size} \rceil,)`
    """
    check_positive_int("block_size", block_size)
    s = absmax.detach().float()
    mean = s.mean()
    n = s.numel()
    c = F.pad(s - mean, (0, -n % block_size)).reshape(-1, block_size)  # (nb2, block2)
    scales = c.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127  # (nb2,)
    codes = torch.round(c / scales[:, None]).to(torch.int8).reshape(-1)[:n]  # (n,)
    return DoubleQuant(codes, scales, mean, block_size)


def double_dequantize(dq: DoubleQuant) -> torch.Tensor:
    r"""The scales back from :func:`double_quantize`: :math:`\hat s_b = c_b z_B + \bar s` (float32, shape :math:`(n,)`)."""
    n = dq.codes.numel()
    codes = F.pad(dq.codes.float(), (0, -n % dq.block_size)).reshape(-1, dq.block_size)  # (nb2, block2)
    return (codes * dq.scales[:, None]).reshape(-1)[:n] + dq.mean  # (n,)


def bits_per_parameter(block_size: int = 64, double_quant: bool = True, block_size2: int = 256,
                       code_bits: int = 4, scale_bits: int = 32, scale2_bits: int = 8) -> float:
    r"""Storage per weight of blockwise quantisation, codes and scales.

    .. math::

        b = b_\text{code} + \frac{32}{64} \quad\text{(one float32 scale per 64 weights)}, \qquad
        b_\text{DQ} = b_\text{code} + \frac{8}{64} + \frac{32}{64 \cdot 256}

    With double quantisation each scale costs 8 bits, plus a float32 per 256 scales.
    """
    if double_quant:
        return code_bits + scale2_bits / block_size + scale_bits / (block_size * block_size2)
    return code_bits + scale_bits / block_size


def pack_4bit(codes: torch.Tensor) -> torch.Tensor:
    r"""Two 4-bit codes per byte: the even-indexed code in the high nibble, the odd-indexed one in the low.

    Raises:
        ValueError: on an odd number of codes or a code above 15.

    Shape:
        - codes: :math:`(N,)` integers in :math:`[0, 15]`, :math:`N` even; output: :math:`(N/2,)` uint8
    """
    flat = codes.reshape(-1).to(torch.uint8)
    if flat.numel() % 2:
        raise ValueError(f"packing two codes per byte needs an even number of codes, got {flat.numel()}")
    if flat.numel() and int(flat.max()) > 15:
        raise ValueError(f"4-bit codes must be in [0, 15], got a code of {int(flat.max())}")
    pairs = flat.view(-1, 2)  # (N/2, 2)
    return (pairs[:, 0] << 4) | pairs[:, 1]  # (N/2,)


def unpack_4bit(packed: torch.Tensor) -> torch.Tensor:
    r"""The codes of :func:`pack_4bit`, in order. Shape: :math:`(N/2,)` uint8 to :math:`(N,)` uint8."""
    return torch.stack([packed >> 4, packed & 0x0F], dim=1).reshape(-1)  # (N/2, 2) -> (N,)


class NF4Linear(nn.Module):
    r"""A frozen linear layer whose weight is stored in 4 bits and dequantised at every call (QLoRA's base).

    .. math::

        y = x\, \hat W^\top + b, \qquad \hat W = \operatorname{dequant}(\text{codes}, \hat s), \qquad
        \hat s = \operatorname{dequant}_8(\text{scale codes})

    The codes (``code="nf4"``, or ``"int4"`` to compare) are packed two per byte; the blockwise
    absmax scales are kept in float32 or, with ``double_quant``, in 8 bits (:func:`double_quantize`).
    Nothing here trains; gradients flow to the input, and through a
    :class:`~dlscratch.layers.lora.LoRALinear` on top to its adapter. Chapter 23.

    Args:
        weight: the float weight to quantise, :math:`(d_{out}, d_{in})`.
        bias: an optional bias (kept in float, frozen).
        block_size: weights per absmax block (64); it must divide :math:`d_{out} d_{in}`.
        double_quant: store the scales in 8 bits (:func:`double_quantize`).
        code: "nf4" or "int4".
        scale_block_size: scales per block of the double quantisation (256).

    Shape:
        - x: :math:`(*, d_{in})`; output: :math:`(*, d_{out})`
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *, block_size: int = 64,
                 double_quant: bool = True, code: str = "nf4", scale_block_size: int = 256) -> None:
        super().__init__()
        if code not in LEVELS:
            raise ValueError(f"code must be one of {list(LEVELS)}, got code={code!r}")
        self.out_features, self.in_features = weight.shape
        self.block_size, self.double_quant, self.code = block_size, double_quant, code
        self.scale_block_size = scale_block_size
        self.dtype = weight.dtype  # the dtype the layer computes in
        levels = LEVELS[code](weight.dtype).to(weight.device)
        codes, absmax = quantize_blockwise(weight, levels, block_size)
        self.register_buffer("levels", levels, persistent=False)  # (16,) a constant of the code
        self.register_buffer("packed", pack_4bit(codes))  # (N/2,) uint8
        if double_quant:
            dq = double_quantize(absmax, scale_block_size)
            self.register_buffer("absmax_codes", dq.codes)  # (nb,) int8
            self.register_buffer("absmax_scales", dq.scales)  # (ceil(nb/256),) float32
            self.register_buffer("absmax_mean", dq.mean)  # () float32
        else:
            self.register_buffer("absmax", absmax.float())  # (nb,) float32
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, **kwargs: object) -> NF4Linear:
        r"""Quantise an ``nn.Linear`` (``kwargs`` as in the constructor)."""
        return cls(linear.weight, linear.bias, **kwargs)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, code={self.code!r}, "
                f"block_size={self.block_size}, double_quant={self.double_quant}")

    def scales(self) -> torch.Tensor:
        r"""The blockwise absmax scales, dequantised when double-quantised (float32)."""
        if self.double_quant:
            return double_dequantize(DoubleQuant(self.absmax_codes, self.absmax_scales, self.absmax_mean, self.scale_block_size))
        return self.absmax

    def dequantized_weight(self) -> torch.Tensor:
        r""":math:`\hat W`, :math:`(d_{out}, d_{in})`, in the dtype of the weight it was built from."""
        w = dequantize_blockwise(unpack_4bit(self.packed), self.scales().to(self.dtype), self.levels)  # (N,)
        return w.view(self.out_features, self.in_features)  # (d_out, d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight(), self.bias)  # (*, d_in) @ (d_in, d_out) -> (*, d_out)

    def nbytes(self) -> int:
        r"""Bytes this layer stores: packed codes, scales (and bias); the shared 16 levels not counted."""
        return sum(b.numel() * b.element_size() for name, b in self.named_buffers() if name != "levels")


def quantize_linears(model: nn.Module, targets: Sequence[str], **kwargs: object) -> list[str]:
    r"""Replace every ``nn.Linear`` of ``model`` whose last name component is in ``targets`` by an :class:`NF4Linear`.

    Returns:
        The qualified names of the replaced layers.
    """
    return replace_linears(model, targets, lambda linear: NF4Linear.from_linear(linear, **kwargs))


def replace_linears(model: nn.Module, targets: Sequence[str], make: Callable[[nn.Linear], nn.Module]) -> list[str]:
    r"""Replace every ``nn.Linear`` of ``model`` whose last name component is in ``targets`` by ``make(linear)``.

    Returns:
        The qualified names of the replaced layers.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] in targets]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, make(getattr(parent, child)))
    return names
