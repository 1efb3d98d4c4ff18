r"""Rotary position embedding (RoPE, Su et al., 2021): positions as rotations of queries and keys.

RoPE rotates each pair of channels of a query or key at position :math:`m` by the angle
:math:`m\,\theta_i`, with chapter 13's frequencies :math:`\theta_i = \text{base}^{-2i/hs}`. The
score between a query at :math:`m` and a key at :math:`n` then depends on the positions only
through :math:`m - n`:

.. math::

    \langle R_m q, R_n k \rangle = q^\top R_m^\top R_n k = q^\top R_{n-m} k

Two conventions pair the channels differently. The paper (and Meta's LLaMA code) rotates
*interleaved* pairs :math:`(x_{2i}, x_{2i+1})`; Hugging Face's ``transformers`` (and this book)
rotates the *half-split* pairs :math:`(x_i, x_{i + hs/2})` with ``rotate_half``. They are the
same rotation up to a fixed permutation of the channels (:func:`rope_permutation`), which a
checkpoint converter applies to the rows of :math:`W_Q` and :math:`W_K`.

Position interpolation (Chen et al., 2023) divides positions by ``scale`` :math:`= L'/L` so a
model trained at context :math:`L` sees angles it knows at the longer context :math:`L'`.

Introduced in chapter 18, *RoPE and ALiBi*. Symbols: B batch, h heads, T time, hs head size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .attention.attend import PositionHook
from .positional import sinusoidal_frequencies

__all__ = [
    "rope_angles",
    "rotate_half",
    "apply_rope",
    "apply_rope_interleaved",
    "apply_rope_complex",
    "rope_permutation",
    "RoPE",
]


def _check_head_size(head_size: object) -> None:
    if isinstance(head_size, bool) or not isinstance(head_size, int) or head_size < 2 or head_size % 2:
        raise ValueError(
            f"RoPE rotates pairs of channels, so the head size must be a positive even integer, got head_size={head_size!r}"
        )


def rope_angles(pos: torch.Tensor, head_size: int, base: float = 10000.0, scale: float = 1.0) -> torch.Tensor:
    r"""The rotation angles :math:`\phi_{m,i} = (m / s)\,\theta_i` of positions ``pos``, in float64.

    .. math::

        \theta_i = \text{base}^{-2i/hs}, \quad i = 0, \ldots, hs/2 - 1

    with :math:`s` = ``scale`` (1: plain RoPE; :math:`L'/L`: position interpolation).

    Shape:
        - pos: :math:`(T,)` positions; output: :math:`(T, hs/2)`
    """
    _check_head_size(head_size)
    theta = sinusoidal_frequencies(head_size, base).to(pos.device)  # (hs/2,), chapter 13's frequencies
    return (pos.to(torch.float64) / scale)[:, None] * theta[None, :]  # (T, 1) * (1, hs/2) -> (T, hs/2)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    r"""Rotate every half-split pair by 90°: :math:`(x_1, x_2) \mapsto (-x_2, x_1)` on the two halves."""
    x1, x2 = x.chunk(2, dim=-1)  # (..., hs/2) each
    return torch.cat((-x2, x1), dim=-1)  # (..., hs)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    r"""RoPE in the half-split convention: :math:`x \cos\phi + \operatorname{rotate\_half}(x) \sin\phi`.

    .. math::

        \begin{pmatrix} y_i \\ y_{i+hs/2} \end{pmatrix} =
        \begin{pmatrix} \cos\phi_i & -\sin\phi_i \\ \sin\phi_i & \cos\phi_i \end{pmatrix}
        \begin{pmatrix} x_i \\ x_{i+hs/2} \end{pmatrix}

    Shape:
        - x: :math:`(..., T, hs)`; angles: :math:`(T, hs/2)` from :func:`rope_angles`; output like ``x``
    """
    phi = torch.cat((angles, angles), dim=-1).to(x.dtype)  # (T, hs): the angle of each channel's pair
    return x * phi.cos() + rotate_half(x) * phi.sin()  # (..., T, hs)


def apply_rope_interleaved(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    r"""RoPE in the paper's convention: rotate the interleaved pairs :math:`(x_{2i}, x_{2i+1})` by :math:`\phi_i`.

    Shape:
        - x: :math:`(..., T, hs)`; angles: :math:`(T, hs/2)`; output like ``x``
    """
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # (T, hs/2)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (..., T, hs/2) each
    y_even = x_even * cos - x_odd * sin
    y_odd = x_even * sin + x_odd * cos
    return torch.stack((y_even, y_odd), dim=-1).flatten(-2)  # (..., T, hs/2, 2) -> (..., T, hs)


def apply_rope_complex(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    r"""RoPE as complex multiplication (the paper's complex form): :math:`z_i \mapsto z_i\, e^{\mathrm{i}\phi_i}`.

    Channel pairs :math:`(x_{2i}, x_{2i+1})` are read as complex numbers
    :math:`z_i = x_{2i} + \mathrm{i}\,x_{2i+1}`; multiplying by a unit complex number is a
    rotation. An independent formulation of :func:`apply_rope_interleaved`, for checks.

    Shape:
        - x: :math:`(..., T, hs)` real; angles: :math:`(T, hs/2)`; output like ``x``
    """
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).to(torch.float64).contiguous())  # (..., T, hs/2)
    rotated = z * torch.polar(torch.ones_like(angles), angles)  # e^{i phi}, (T, hs/2)
    return torch.view_as_real(rotated).flatten(-2).to(x.dtype)  # (..., T, hs)


def rope_permutation(head_size: int) -> torch.Tensor:
    r"""The channel order that turns interleaved RoPE into half-split RoPE.

    With ``p = rope_permutation(hs)``, ``apply_rope(x[..., p], a) == apply_rope_interleaved(x, a)[..., p]``:
    half-split position :math:`i` holds interleaved channel :math:`2i` and position
    :math:`i + hs/2` holds channel :math:`2i + 1`, i.e. ``p = [0, 2, 4, ..., 1, 3, 5, ...]``.

    Shape:
        - output: :math:`(hs,)` long
    """
    _check_head_size(head_size)
    return torch.cat((torch.arange(0, head_size, 2), torch.arange(1, head_size, 2)))  # (hs,)


@dataclass(frozen=True)
class RoPE:
    r"""Rotary positions for :class:`~dlscratch.layers.attention.modules.MultiHeadAttention`.

    Call it on queries or keys at positions ``pos``; :meth:`hook` wraps it as the layer's
    :class:`~dlscratch.layers.attention.attend.PositionHook`, so ``attn.positions = RoPE(hs).hook()``
    makes a layer rotary (keys are rotated at their own positions before they are cached).

    Args:
        head_size: hs, even.
        base: the frequency base (10,000 in the paper and in LLaMA 1 and 2).
        scale: position interpolation factor :math:`s \ge 1`; positions are divided by it.

    Shape:
        - x: :math:`(B, h, T, hs)`; pos: :math:`(T,)`; output like ``x``
    """

    head_size: int
    base: float = 10000.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check_head_size(self.head_size)
        if not self.base > 1.0:
            raise ValueError(f"RoPE base must be > 1, got base={self.base!r}")
        if not self.scale > 0.0:
            raise ValueError(f"RoPE scale (position interpolation) must be > 0, got scale={self.scale!r}")

    def __call__(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        if x.size(-1) != self.head_size:
            raise ValueError(f"RoPE expected head size {self.head_size}, got a tensor of shape {tuple(x.shape)}")
        return apply_rope(x, rope_angles(pos, self.head_size, self.base, self.scale))

    def hook(self) -> PositionHook:
        r"""This rotation as an attention layer's position hook."""
        return PositionHook(rotate=self)
