r"""2-D convolution written twice: as literal loops and as im2col followed by one matmul.

A convolution layer (in deep learning: a cross-correlation) with weight
:math:`\mathbf{W} \in \mathbb{R}^{C_\text{out} \times C_\text{in} \times k_H \times k_W}` computes

.. math::

    y_{b,o,i,j} = \beta_o + \sum_{c=0}^{C_\text{in}-1} \sum_{u=0}^{k_H-1} \sum_{v=0}^{k_W-1}
        W_{o,c,u,v}\, \tilde x_{b,c,\, s i + d u,\; s j + d v},

where :math:`\tilde x` is the input padded with :math:`p` zeros on every side, :math:`s` the
stride and :math:`d` the dilation. Along each spatial axis the output has
:math:`\lfloor (H + 2p - d(k-1) - 1)/s \rfloor + 1` positions. Introduced in chapter 9
(convolutional networks and ResNet).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "conv_output_size",
    "sliding_windows",
    "unfold2d",
    "conv2d_loops",
    "conv2d_unfold",
    "Conv2d",
]

IntPair = int | tuple[int, int]


def _pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    r"""``value`` as a pair of ints, each ``>= minimum`` (else :class:`ValueError` naming it)."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        word = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be {word}, got {value!r}")
    return pair  # type: ignore[return-value]


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    r"""Number of output positions along one axis: :math:`\lfloor (n + 2p - d(k-1) - 1)/s \rfloor + 1`.

    Raises:
        ValueError: if the dilated kernel :math:`d(k-1)+1` is larger than the padded size
            :math:`n + 2p`, or if ``stride``/``dilation``/``kernel`` are not positive.
    """
    for name, v in (("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        if v < 1:
            raise ValueError(f"{name} must be positive, got {v}")
    if padding < 0:
        raise ValueError(f"padding must be non-negative, got {padding}")
    span = dilation * (kernel - 1) + 1  # input positions one kernel covers
    if span > size + 2 * padding:
        raise ValueError(
            f"the dilated kernel spans {span} positions (kernel {kernel}, dilation {dilation}) but the padded "
            f"input has only {size + 2 * padding} (size {size} + 2 x padding {padding})"
        )
    return (size + 2 * padding - span) // stride + 1


def sliding_windows(
    x: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    pad_value: float = 0.0,
) -> torch.Tensor:
    r"""Every kernel window of ``x`` as a strided view: no data is copied (beyond the padding).

    Output element ``[b, c, u, v, i, j]`` is the padded input at row ``s_H i + d_H u`` and column
    ``s_W j + d_W v``, i.e. tap ``(u, v)`` of the window that produces output ``(i, j)``.

    Args:
        x: images ``(B, C, H, W)``.
        kernel_size, stride, padding, dilation: an int or an ``(H, W)`` pair each.
        pad_value: the value written into the padding (0 for convolution, :math:`-\infty` for max
            pooling).

    Shape:
        - x: :math:`(B, C, H, W)`
        - output: :math:`(B, C, k_H, k_W, H_\text{out}, W_\text{out})`
    """
    if x.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    B, C, H, W = x.shape
    oh = conv_output_size(H, kh, sh, ph, dh)
    ow = conv_output_size(W, kw, sw, pw, dw)
    xp = F.pad(x, (pw, pw, ph, ph), value=pad_value) if ph or pw else x  # (B, C, H + 2ph, W + 2pw)
    sB, sC, sH, sW = xp.stride()  # any strides work: the view is built on xp's own memory layout
    return xp.as_strided(
        (B, C, kh, kw, oh, ow),
        (sB, sC, sH * dh, sW * dw, sH * sh, sW * sw),  # a tap moves by d, an output position by s
        xp.storage_offset(),
    )


def unfold2d(
    x: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> torch.Tensor:
    r"""im2col: one column per output position, holding the :math:`C k_H k_W` values it sees.

    Same result as :func:`torch.nn.functional.unfold`; built on :func:`sliding_windows`.

    Shape:
        - x: :math:`(B, C, H, W)`
        - output: :math:`(B, C k_H k_W, H_\text{out} W_\text{out})`
    """
    win = sliding_windows(x, kernel_size, stride, padding, dilation)  # (B, C, kh, kw, oh, ow)
    B, C, kh, kw, oh, ow = win.shape
    return win.reshape(B, C * kh * kw, oh * ow)  # copies: (B, C*kh*kw, L)


def _check_conv_args(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    if weight.dim() != 4:
        raise ValueError(f"weight must have shape (C_out, C_in, kH, kW), got shape {tuple(weight.shape)}")
    C_out, C_in = weight.shape[:2]
    if x.dim() != 4 or x.shape[1] != C_in:
        raise ValueError(f"expected input of shape (B, {C_in}, H, W), got shape {tuple(x.shape)}")
    if bias is not None and tuple(bias.shape) != (C_out,):
        raise ValueError(f"bias must have shape ({C_out},), got shape {tuple(bias.shape)}")


def conv2d_loops(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> torch.Tensor:
    r"""2-D convolution as the literal sum, one output position at a time (for teaching only).

    .. math::

        y_{b,o,i,j} = \beta_o + \sum_{c,u,v} W_{o,c,u,v}\, \tilde x_{b,c,\, s i + d u,\; s j + d v}

    Python loops over the :math:`H_\text{out} W_\text{out}` output positions; each step
    slices one window and sums its product with every filter. Fine for 8×8 digits, slow beyond.

    Shape:
        - x: :math:`(B, C_\text{in}, H, W)`; weight: :math:`(C_\text{out}, C_\text{in}, k_H, k_W)`;
          bias: :math:`(C_\text{out},)`
        - output: :math:`(B, C_\text{out}, H_\text{out}, W_\text{out})`
    """
    _check_conv_args(x, weight, bias)
    kh, kw = weight.shape[2:]
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    oh = conv_output_size(x.shape[2], kh, sh, ph, dh)
    ow = conv_output_size(x.shape[3], kw, sw, pw, dw)
    xp = F.pad(x, (pw, pw, ph, ph))  # zeros around: (B, C_in, H + 2ph, W + 2pw)
    rows = []
    for i in range(oh):
        cols = []
        for j in range(ow):
            r, c = i * sh, j * sw  # top-left corner of the window
            window = xp[:, :, r : r + dh * (kh - 1) + 1 : dh, c : c + dw * (kw - 1) + 1 : dw]  # (B, C_in, kh, kw)
            cols.append((window[:, None] * weight[None]).sum(dim=(2, 3, 4)))  # (B, 1, ...) * (1, C_out, ...) -> (B, C_out)
        rows.append(torch.stack(cols, dim=-1))  # (B, C_out, ow)
    y = torch.stack(rows, dim=-2)  # (B, C_out, oh, ow)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y


def conv2d_unfold(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> torch.Tensor:
    r"""2-D convolution as im2col plus one matrix product.

    .. math::

        \mathbf{Y} = \mathbf{W}_\text{flat}\, \mathbf{X}^\text{col} + \boldsymbol\beta\mathbf{1}^\top,
        \qquad \mathbf{W}_\text{flat} \in \mathbb{R}^{C_\text{out} \times C_\text{in} k_H k_W},
        \quad \mathbf{X}^\text{col} \in \mathbb{R}^{C_\text{in} k_H k_W \times B H_\text{out} W_\text{out}}

    Column :math:`(b, i, j)` of :math:`\mathbf{X}^\text{col}` holds the window that produces
    output position :math:`(i, j)` of image :math:`b`; one matmul then serves the whole batch.

    Shape:
        - x: :math:`(B, C_\text{in}, H, W)`; weight: :math:`(C_\text{out}, C_\text{in}, k_H, k_W)`;
          bias: :math:`(C_\text{out},)`
        - output: :math:`(B, C_\text{out}, H_\text{out}, W_\text{out})`
    """
    _check_conv_args(x, weight, bias)
    C_out = weight.shape[0]
    win = sliding_windows(x, weight.shape[2:], stride, padding, dilation)  # (B, C_in, kh, kw, oh, ow)
    B, _, _, _, oh, ow = win.shape
    cols = win.permute(1, 2, 3, 0, 4, 5).reshape(-1, B * oh * ow)  # im2col, batch folded in: (C_in*kh*kw, B*L)
    y = weight.reshape(C_out, -1) @ cols  # (C_out, C_in*kh*kw) @ (C_in*kh*kw, B*L) -> (C_out, B*L)
    if bias is not None:
        y = y + bias.view(-1, 1)
    return y.view(C_out, B, oh, ow).transpose(0, 1)  # (B, C_out, oh, ow), a view: no copy


class Conv2d(nn.Module):
    r"""A 2-D convolution layer computed by :func:`conv2d_unfold`.

    Parameters have ``torch.nn.Conv2d``'s names, shapes and default initialisation
    (:math:`\mathcal{U}(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})` with
    :math:`\text{fan\_in} = C_\text{in} k_H k_W`), so a state dict loads into either. Only
    ``groups=1`` and zero padding.

    Args:
        in_channels: :math:`C_\text{in}`.
        out_channels: :math:`C_\text{out}`.
        kernel_size, stride, padding, dilation: an int or an ``(H, W)`` pair each.
        bias: whether to add a learned per-channel bias.

    Shape:
        - input: :math:`(B, C_\text{in}, H, W)`
        - output: :math:`(B, C_\text{out}, H_\text{out}, W_\text{out})`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channel counts must be positive, got in={in_channels}, out={out_channels}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.dilation = _pair(dilation, "dilation", 1)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""torch's default: uniform in :math:`\pm 1/\sqrt{\text{fan\_in}}` for weight and bias."""
        bound = 1.0 / math.sqrt(self.weight[0].numel())  # fan_in = C_in * kh * kw
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_unfold(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}"
        )
