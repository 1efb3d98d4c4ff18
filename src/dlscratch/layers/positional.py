r"""Absolute positional encodings: the fixed sinusoidal table and learned position embeddings.

Introduced in chapter 13 (*Positional encoding*). Attention alone is permutation-equivariant:
it cannot tell which token came first. Both classes here add a position-dependent vector to
each token's embedding. Relative schemes (RoPE, ALiBi) come in chapter 18. The 2-D sin-cos table
of a grid of image patches (:func:`sincos_2d_encoding`) is chapter 33's (*Vision Transformer*).

Symbols: B batch, T sequence length, C channels (``d_model``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .dropout import Dropout

__all__ = [
    "sinusoidal_frequencies",
    "sinusoidal_encoding",
    "sincos_2d_encoding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
]


def _check_even_width(C: int) -> None:
    if not isinstance(C, int) or isinstance(C, bool) or C < 2 or C % 2 != 0:
        raise ValueError(
            f"the sinusoidal encoding pairs channels (sin, cos), so d_model must be a positive even integer, got {C!r}"
        )


def sinusoidal_frequencies(C: int, base: float = 10000.0) -> torch.Tensor:
    r"""The angular frequencies :math:`\omega_i = \text{base}^{-2i/C}`, :math:`i = 0 \ldots C/2 - 1`.

    Pair :math:`i` of the encoding turns with frequency :math:`\omega_i`, i.e. wavelength
    :math:`2\pi / \omega_i`, from :math:`2\pi` (fastest) up to
    :math:`2\pi \cdot \text{base}^{(C-2)/C}` (slowest). Chapter 13.

    Shape:
        - output: :math:`(C/2,)`, float64
    """
    _check_even_width(C)
    i = torch.arange(C // 2, dtype=torch.float64)  # (C/2,)
    return base ** (-2.0 * i / C)  # (C/2,)


def sinusoidal_encoding(
    T: int,
    C: int,
    base: float = 10000.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""The sinusoidal position table of Vaswani et al. (2017), interleaved sin/cos.

    .. math::

        PE_{p,\,2i} = \sin(p\, \omega_i), \qquad PE_{p,\,2i+1} = \cos(p\, \omega_i),
        \qquad \omega_i = \text{base}^{-2i/C}

    Computed in float64, then cast to ``dtype``. Chapter 13, *Positional encoding*.

    Args:
        T: number of positions :math:`p = 0, \ldots, T-1` (at least 1).
        C: width ``d_model``; must be even (a sin and a cos per frequency).
        base: the wavelength scale (10000 in the paper).
        device: where to put the table.
        dtype: dtype of the table.

    Raises:
        ValueError: if ``T`` is not a positive integer or ``C`` is odd or not positive.

    Shape:
        - output: :math:`(T, C)`
    """
    if not isinstance(T, int) or isinstance(T, bool) or T < 1:
        raise ValueError(f"the number of positions T must be a positive integer, got {T!r}")
    omega = sinusoidal_frequencies(C, base)  # (C/2,)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * omega[None, :]  # (T, 1) * (1, C/2) -> (T, C/2)
    pe = torch.stack([angle.sin(), angle.cos()], dim=-1)  # (T, C/2, 2): (sin, cos) pairs
    return pe.view(T, C).to(device=device, dtype=dtype)  # (T, C), channels 2i, 2i+1 = sin, cos


def sincos_2d_encoding(
    height: int,
    width: int,
    C: int,
    base: float = 10000.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""The fixed 2-D sin-cos table of a ``height`` × ``width`` grid of patches (Beyer et al., 2022).

    A quarter of the channels encodes the column :math:`x` and a quarter the row :math:`y`, each
    with sines and cosines of :math:`C/4` frequencies spread geometrically from 1 to
    :math:`1/\text{base}`:

    .. math::

        PE_{(y, x)} = \bigl[\sin(x\, \omega_k),\ \cos(x\, \omega_k),\ \sin(y\, \omega_k),\ \cos(y\, \omega_k)\bigr]_{k},
        \qquad \omega_k = \text{base}^{-k/(C/4 - 1)}, \quad k = 0, \ldots, C/4 - 1

    Rows are in raster order (patch :math:`n = y \cdot \text{width} + x`, as
    :func:`~dlscratch.layers.patch.patchify`). The dot product of two rows depends only on the
    offset :math:`(y - y', x - x')`. Computed in float64, then cast to ``dtype``. Chapter 33.

    Args:
        height: rows of the grid.
        width: columns of the grid.
        C: channels; a multiple of 4 and at least 8.
        base: the longest wavelength's scale (10000, as in the 1-D table).
        device: where to put the table.
        dtype: dtype of the table.

    Raises:
        ValueError: if a side is not a positive integer or ``C`` is not a multiple of 4 of at least 8.

    Shape:
        - output: :math:`(\text{height} \cdot \text{width}, C)`
    """
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"the grid {name} must be a positive integer, got {value!r}")
    if not isinstance(C, int) or isinstance(C, bool) or C < 8 or C % 4 != 0:
        raise ValueError(f"the 2-D sin-cos table splits the channels in four (sin, cos of x and y): C must be a multiple of 4, at least 8, got {C!r}")
    k = torch.arange(C // 4, dtype=torch.float64)  # (C/4,)
    omega = base ** (-k / (C // 4 - 1))  # (C/4,) from 1 down to 1/base
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    ax = x.flatten()[:, None] * omega  # (h w, C/4)
    ay = y.flatten()[:, None] * omega  # (h w, C/4)
    pe = torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos()], dim=1)  # (h w, C)
    return pe.to(device=device, dtype=dtype)


def _check_span(offset: int, T: int, max_len: int) -> None:
    if offset < 0:
        raise ValueError(f"offset must be non-negative, got {offset}")
    if offset + T > max_len:
        if offset == 0:
            raise ValueError(f"sequence length T={T} exceeds max_len={max_len}")
        raise ValueError(f"positions offset + T = {offset} + {T} = {offset + T} exceed max_len={max_len}")


def _check_input(x: torch.Tensor, d_model: int) -> None:
    if x.dim() != 3 or x.size(-1) != d_model:
        raise ValueError(f"expected input of shape (B, T, d_model={d_model}), got {tuple(x.shape)}")


class SinusoidalPositionalEncoding(nn.Module):
    r"""Adds the fixed sinusoidal table to a batch of embeddings, then applies dropout.

    .. math::

        Y_{b,t} = \operatorname{dropout}\!\left(s\, X_{b,t} + PE_{t + \text{offset}}\right),
        \qquad s = \sqrt{C} \text{ if } \texttt{scale\_input} \text{ else } 1

    The table (:func:`sinusoidal_encoding`) is a non-persistent buffer: it follows the module
    across devices and dtypes but is not saved in the state dict. No parameters.

    Chapter 13, *Positional encoding*.

    Args:
        d_model: C, the embedding width (even).
        max_len: the number of positions precomputed; longer inputs raise ``ValueError``.
        dropout: dropout probability applied to the sum.
        scale_input: multiply the input by :math:`\sqrt{C}` first (the paper's embedding scale).
        base: the wavelength scale (10000 in the paper).
        device: where to put the table.
        dtype: dtype of the table.

    Shape:
        - x: :math:`(B, T, C)` with :math:`T + \text{offset} \le \text{max\_len}`
        - output: :math:`(B, T, C)`
    """

    pe: torch.Tensor

    def __init__(
        self,
        d_model: int,
        max_len: int = 5000,
        *,
        dropout: float = 0.0,
        scale_input: bool = False,
        base: float = 10000.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.d_model = d_model  # C
        self.max_len = max_len  # number of precomputed positions
        self.scale_input = scale_input  # multiply x by sqrt(C) before adding PE
        pe = sinusoidal_encoding(max_len, d_model, base, device=device, dtype=dtype)  # (max_len, C)
        self.register_buffer("pe", pe, persistent=False)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        _check_input(x, self.d_model)
        B, T, C = x.shape
        _check_span(offset, T, self.max_len)
        if self.scale_input:
            x = x * math.sqrt(C)
        return self.dropout(x + self.pe[offset : offset + T].to(x.dtype))  # (B, T, C) + (T, C) -> (B, T, C)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, scale_input={self.scale_input}"


class LearnedPositionalEmbedding(nn.Module):
    r"""Adds a learned vector per position (as in ConvS2S, BERT and GPT-2), then applies dropout.

    .. math::

        Y_{b,t} = \operatorname{dropout}\!\left(X_{b,t} + P_{t + \text{offset}}\right),
        \qquad P \in \mathbb{R}^{\text{max\_len} \times C} \text{ learned}

    ``weight`` has the shape of an ``nn.Embedding(max_len, d_model)`` weight, so state dicts
    load across. :math:`\text{max\_len} \cdot C` parameters, initialised
    :math:`\mathcal{N}(0, \text{init\_std}^2)`. Positions beyond ``max_len`` have no vector: no
    extrapolation.

    Chapter 13, *Positional encoding*.

    Args:
        d_model: C, the embedding width.
        max_len: the number of positions with a vector.
        dropout: dropout probability applied to the sum.
        init_std: standard deviation of the initial vectors (0.02 as in GPT-2).
        device: where to allocate ``weight``.
        dtype: dtype of ``weight``.

    Shape:
        - x: :math:`(B, T, C)` with :math:`T + \text{offset} \le \text{max\_len}`
        - output: :math:`(B, T, C)`
    """

    def __init__(
        self,
        d_model: int,
        max_len: int,
        *,
        dropout: float = 0.0,
        init_std: float = 0.02,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("max_len", max_len)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.d_model = d_model  # C
        self.max_len = max_len  # number of learned positions
        self.weight = nn.Parameter(torch.empty(max_len, d_model, device=device, dtype=dtype))  # (max_len, C)
        nn.init.normal_(self.weight, std=init_std)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        _check_input(x, self.d_model)
        B, T, C = x.shape
        _check_span(offset, T, self.max_len)
        return self.dropout(x + self.weight[offset : offset + T])  # (B, T, C) + (T, C) -> (B, T, C)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"
