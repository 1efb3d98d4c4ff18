r"""GPTQ (Frantar et al., 2023): quantise a weight matrix column by column, pushing each column's error onto the rest.

* :func:`gptq_hessian`: :math:`H = \frac{2}{n} X^\top X` from a layer's calibration inputs.
* :func:`gptq_quantize`: damping, the upper Cholesky factor of :math:`H^{-1}`, and the
  column-by-column error feedback in lazy blocks; it returns a
  :class:`~dlscratch.layers.quant_int.QuantizedTensor` that
  :class:`~dlscratch.layers.quant_int.QuantLinear` stores.
* :func:`obq_quantize`: the same greedy order with :math:`H^{-1}` of the remaining columns
  recomputed by explicit inversion at every step (Optimal Brain Quantisation's formula); slow,
  and the independent check of the fast version.
* :func:`layer_error`: the objective both minimise, :math:`\lVert (W - \hat W) X^\top \rVert_F^2 / n`.

Introduced in chapter 36, *Model compression*.
"""

from __future__ import annotations

import torch

from .checks import check_positive_int
from .quant_int import QuantizedTensor, code_range, grid_params, quantize_with

__all__ = ["gptq_hessian", "gptq_quantize", "obq_quantize", "layer_error"]


def gptq_hessian(x: torch.Tensor) -> torch.Tensor:
    r"""The Hessian of the layer-wise squared error with respect to one row of :math:`W`: :math:`H = \frac{2}{n} X^\top X`.

    Shape:
        - x: :math:`(*, d_{in})`, :math:`n` inputs in all; output: :math:`(d_{in}, d_{in})` float64
    """
    flat = x.detach().reshape(-1, x.shape[-1]).double()  # (n, d_in)
    return 2 * flat.t() @ flat / flat.shape[0]  # (d_in, d_in)


def layer_error(w: torch.Tensor, w_hat: torch.Tensor, x: torch.Tensor) -> float:
    r""":math:`\frac{1}{n}\lVert (W - \hat W) X^\top \rVert_F^2`: how far the quantised layer's outputs move on inputs ``x``."""
    flat = x.detach().reshape(-1, x.shape[-1]).double()  # (n, d_in)
    return ((flat @ (w.double() - w_hat.double()).t()) ** 2).sum().item() / flat.shape[0]


def _check(w: torch.Tensor, h: torch.Tensor, bits: int, group_size: int | None, damp: float) -> None:
    code_range(bits)
    if w.dim() != 2 or h.shape != (w.shape[1], w.shape[1]):
        raise ValueError(f"need a weight (d_out, d_in) and a Hessian (d_in, d_in), got {tuple(w.shape)} and {tuple(h.shape)}")
    if group_size is not None:
        check_positive_int("group_size", group_size)
        if w.shape[1] % group_size:
            raise ValueError(f"group_size={group_size} does not divide the row of {w.shape[1]} weights "
                             f"({w.shape[1]} % {group_size} = {w.shape[1] % group_size})")
    if not damp >= 0:
        raise ValueError(f"damp must be >= 0, got damp={damp!r}")


def _damped(w: torch.Tensor, h: torch.Tensor, damp: float) -> tuple[torch.Tensor, torch.Tensor]:
    W, H = w.detach().double().clone(), h.double().clone()  # (d_out, d_in), (d_in, d_in)
    dead = torch.diagonal(H) == 0  # inputs that are always 0: their weights do not matter
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * torch.diagonal(H).mean() * torch.eye(H.shape[0], dtype=H.dtype)  # lambda = damp * mean diag(H)
    return W, H


def _result(Q: torch.Tensor, scales: list[torch.Tensor], zeros: list[torch.Tensor], bits: int, scheme: str,
            group_size: int | None, dtype: torch.dtype) -> QuantizedTensor:
    scale = torch.stack(scales, dim=1).reshape(-1, 1)  # (d_out * n_groups, 1): row-major, as scale_rows
    zero = torch.stack(zeros, dim=1).reshape(-1, 1)
    granularity = "channel" if group_size is None else "group"
    return QuantizedTensor(Q.to(torch.int16), scale.to(dtype), zero.to(dtype), bits, scheme, granularity, group_size)


def gptq_quantize(w: torch.Tensor, h: torch.Tensor, bits: int = 4, group_size: int | None = None, *,
                  scheme: str = "absmax", damp: float = 0.01, block_size: int = 128) -> QuantizedTensor:
    r"""GPTQ: round the columns of :math:`W` in order, each error compensated on the columns not yet rounded.

    With :math:`U` the upper Cholesky factor of :math:`(H + \lambda I)^{-1} = U^\top U` and
    :math:`\lambda` = ``damp`` times the mean of :math:`\operatorname{diag} H`, column :math:`j` is
    rounded and the remaining columns absorb its error:

    .. math::

        \hat{\mathbf w}_{:,j} = \operatorname{quant}(\mathbf w_{:,j}), \qquad
        \mathbf e = \frac{\mathbf w_{:,j} - \hat{\mathbf w}_{:,j}}{U_{jj}}, \qquad
        \mathbf w_{:,k} \leftarrow \mathbf w_{:,k} - \mathbf e\, U_{jk} \quad (k > j)

    The updates inside a block of ``block_size`` columns are applied at once; the columns after
    the block receive the block's errors in one matrix product (the lazy batch). With groups,
    each group's scale is fixed from the updated weights when its first column comes up.

    Raises:
        ValueError: on a bit width outside {2, 3, 4, 8}, a ``group_size`` that does not divide the
            row, shapes that do not match, or a negative ``damp``.

    Shape:
        - w: :math:`(d_{out}, d_{in})`; h: :math:`(d_{in}, d_{in})`
    """
    _check(w, h, bits, group_size, damp)
    check_positive_int("block_size", block_size)
    W, H = _damped(w, h, damp)
    d_in = W.shape[1]
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)  # H^-1 = U^T U
    Q = torch.zeros_like(W)
    g = d_in if group_size is None else group_size
    scales: list[torch.Tensor] = []
    zeros: list[torch.Tensor] = []
    for i1 in range(0, d_in, block_size):
        i2 = min(i1 + block_size, d_in)
        W1, E1, U1 = W[:, i1:i2].clone(), torch.zeros_like(W[:, i1:i2]), U[i1:i2, i1:i2]  # (d_out, blk), (blk, blk)
        for i in range(i2 - i1):
            j = i1 + i
            if j % g == 0:  # a new group: its scale from the weights as updated so far
                rest = W[:, i2 : i2 + g] - E1[:, :i] @ U[i1:j, i2 : i2 + g]  # columns past the block, with this block's errors so far
                ahead = torch.cat([W1[:, i:], rest], dim=1)[:, :g]  # (d_out, g)
                s, z = grid_params(ahead, bits, scheme)  # (d_out, 1)
                scales.append(s[:, 0])
                zeros.append(z[:, 0])
            s, z = scales[-1][:, None], zeros[-1][:, None]
            q = quantize_with(W1[:, i : i + 1], s, z, bits, scheme)  # (d_out, 1) codes
            Q[:, j : j + 1] = q
            e = (W1[:, i : i + 1] - s * (q - z)) / U1[i, i]  # (d_out, 1)
            W1[:, i:] -= e @ U1[i : i + 1, i:]  # (d_out, 1) @ (1, blk - i)
            E1[:, i : i + 1] = e
        W[:, i2:] -= E1 @ U[i1:i2, i2:]  # the lazy batch: (d_out, blk) @ (blk, d_in - i2)
    return _result(Q, scales, zeros, bits, scheme, group_size, w.dtype)


def obq_quantize(w: torch.Tensor, h: torch.Tensor, bits: int = 4, group_size: int | None = None, *,
                 scheme: str = "absmax", damp: float = 0.01) -> QuantizedTensor:
    r"""The same greedy left-to-right quantisation with the Optimal Brain Quantiser's update, by explicit inverses.

    With :math:`F` the columns not yet quantised and :math:`H_F^{-1}` the inverse of the damped
    Hessian restricted to them (recomputed by ``torch.linalg.inv`` at every step),

    .. math::

        \boldsymbol\delta_F = -\frac{w_j - \operatorname{quant}(w_j)}{[H_F^{-1}]_{jj}}\, (H_F^{-1})_{:, j}

    is added to every row. :func:`gptq_quantize` must give the same codes: a test.
    """
    _check(w, h, bits, group_size, damp)
    W, H = _damped(w, h, damp)
    d_in = W.shape[1]
    g = d_in if group_size is None else group_size
    Q = torch.zeros_like(W)
    scales: list[torch.Tensor] = []
    zeros: list[torch.Tensor] = []
    for j in range(d_in):
        if j % g == 0:
            s, z = grid_params(W[:, j : j + g], bits, scheme)
            scales.append(s[:, 0])
            zeros.append(z[:, 0])
        s, z = scales[-1][:, None], zeros[-1][:, None]
        Hinv = torch.linalg.inv(H[j:, j:])  # (|F|, |F|): the remaining columns j..d_in-1
        q = quantize_with(W[:, j : j + 1], s, z, bits, scheme)  # (d_out, 1)
        Q[:, j : j + 1] = q
        err = (W[:, j : j + 1] - s * (q - z)) / Hinv[0, 0]  # (d_out, 1)
        W[:, j:] -= err @ Hinv[0:1, :]  # (d_out, 1) @ (1, |F|); column j becomes its quantised value
    return _result(Q, scales, zeros, bits, scheme, group_size, w.dtype)

