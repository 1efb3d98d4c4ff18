r"""State-space models: discretisation, the S4 convolution and recurrence, the selective scan.

A (diagonal) linear state-space model maps an input signal :math:`u(t)` to an output
:math:`y(t)` through a state :math:`h(t) \in \mathbb{R}^N` per channel:

.. math::

    h'(t) = A h(t) + B u(t), \qquad y(t) = C h(t).

Sampled with a step :math:`\Delta` it becomes the recurrence
:math:`h_k = \bar{A} h_{k-1} + \bar{B} u_k`, :math:`y_k = C h_k` (:func:`discretize_zoh`,
:func:`discretize_euler`); unrolled, a causal convolution with the kernel
:math:`\bar{K} = (C\bar{B}, C\bar{A}\bar{B}, C\bar{A}^2\bar{B}, \ldots)` (:func:`ssm_kernel`,
:func:`causal_convolution`). That is S4 with a diagonal :math:`A` (S4D, :func:`s4d_real`).
Mamba's selective SSM lets :math:`\Delta`, :math:`B` and :math:`C` depend on the input at each
step, which rules out the convolution and leaves the recurrence (:func:`selective_scan`).

Shapes: B batch, T time, D channels (independent SSMs), N state size. :math:`A` is diagonal,
stored as its :math:`(D, N)` diagonals. Introduced in chapter 25, *State-space models and Mamba*.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .checks import check_positive_int
from .scan import blelloch_scan

__all__ = [
    "check_state_size",
    "discretize_zoh",
    "discretize_euler",
    "s4d_real",
    "ssm_kernel",
    "causal_convolution",
    "ssm_recurrence",
    "selective_scan",
]

Scan = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_state_size(N: int) -> None:
    r"""Raise ``ValueError`` naming the value unless the state size is a positive integer."""
    if isinstance(N, bool) or not isinstance(N, int) or N < 1:
        raise ValueError(f"the state size N must be a positive integer (N >= 1), got state_size={N!r}")


def discretize_zoh(A: torch.Tensor, B: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Zero-order hold: the exact solution of :math:`h' = Ah + Bu` over a step :math:`\Delta` with :math:`u` held constant.

    .. math::

        \bar{A} = e^{\Delta A}, \qquad \bar{B} = (\Delta A)^{-1}(e^{\Delta A} - I)\, \Delta B
        = \frac{e^{\Delta A} - 1}{A} B \quad \text{(diagonal } A\text{)}

    Args:
        A: the diagonal of :math:`A`, nonzero.
        B: the input vector, broadcastable against ``A``.
        delta: the step :math:`\Delta > 0`, broadcastable against ``A``.

    Shape:
        - A: :math:`(D, N)`; B: :math:`(D, N)` or :math:`(N,)`; delta: :math:`(D, 1)` or a scalar; outputs: broadcast shape
    """
    dA = delta * A  # (D, N)
    return torch.exp(dA), torch.expm1(dA) / A * B  # A_bar, B_bar


def discretize_euler(A: torch.Tensor, B: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Forward Euler: :math:`h_k = h_{k-1} + \Delta (A h_{k-1} + B u_k)`, the first-order approximation of :func:`discretize_zoh`.

    .. math::

        \bar{A} = I + \Delta A, \qquad \bar{B} = \Delta B

    Stable only while :math:`|1 + \Delta A| < 1`, that is :math:`\Delta < 2 / |A|` for real negative :math:`A`.

    Shape:
        - as :func:`discretize_zoh`
    """
    return 1 + delta * A, delta * B * torch.ones_like(A)


def s4d_real(D: int, N: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    r"""S4D-Real initialisation (Gu et al., 2022): every channel's diagonal is :math:`A_n = -(n + 1)`.

    .. math::

        A = -\operatorname{diag}(1, 2, \ldots, N)

    Real, negative (a decaying, stable state) and spread over time scales :math:`1/n`: the
    diagonal of the HiPPO-LegS matrix's real part that Mamba keeps (as ``A_log = log(-A)``).

    Shape:
        - output: :math:`(D, N)`
    """
    check_positive_int("D", D)
    check_state_size(N)
    return -torch.arange(1, N + 1, dtype=dtype or torch.get_default_dtype()).repeat(D, 1)  # (D, N)


def ssm_kernel(A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, T: int) -> torch.Tensor:
    r"""The S4 convolution kernel of a diagonal discrete SSM, :math:`\bar{K}_k = C \bar{A}^k \bar{B}`.

    .. math::

        \bar{K}_{d,k} = \sum_{n=1}^{N} C_{d,n}\, \bar{A}_{d,n}^{\,k}\, \bar{B}_{d,n}, \qquad k = 0, \ldots, T-1

    (a Vandermonde product: the powers of each diagonal entry).

    Shape:
        - A_bar, B_bar, C: :math:`(D, N)`; output: :math:`(D, T)`
    """
    check_positive_int("T", T)
    k = torch.arange(T, dtype=A_bar.dtype, device=A_bar.device)  # (T,)
    powers = A_bar.unsqueeze(-1) ** k  # (D, N, T): A_bar^k
    return torch.einsum("dn,dnt,dn->dt", C, powers, B_bar)  # (D, T)


def causal_convolution(u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    r"""Apply each channel's kernel causally, :math:`y_t = \sum_{k=0}^{t} \bar{K}_k u_{t-k}`, with the FFT in :math:`O(T \log T)`.

    Both signals are zero-padded to :math:`2T`, so the FFT's circular convolution is the linear one.

    Shape:
        - u: :math:`(B, T, D)`; K: :math:`(D, T)`; output: :math:`(B, T, D)`
    """
    T = u.size(1)
    if K.shape != (u.size(2), T):
        raise ValueError(f"K must be (D, T) = {(u.size(2), T)} for u of shape {tuple(u.shape)}, got {tuple(K.shape)}")
    u_f = torch.fft.rfft(u.transpose(1, 2), n=2 * T)  # (B, D, T + 1) complex
    K_f = torch.fft.rfft(K, n=2 * T)  # (D, T + 1)
    return torch.fft.irfft(u_f * K_f, n=2 * T)[..., :T].transpose(1, 2)  # (B, T, D)


def ssm_recurrence(u: torch.Tensor, A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, scan: Scan = blelloch_scan) -> torch.Tensor:
    r"""The same time-invariant SSM as a recurrence: :math:`h_t = \bar{A} h_{t-1} + \bar{B} u_t`, :math:`y_t = C h_t`, :math:`h_0 = 0`.

    Shape:
        - u: :math:`(B, T, D)`; A_bar, B_bar, C: :math:`(D, N)`; output: :math:`(B, T, D)`
    """
    a = A_bar.expand(u.size(0), u.size(1), *A_bar.shape)  # (B, T, D, N): the same step at every t
    h = scan(a, B_bar * u.unsqueeze(-1))  # (B, T, D, N)
    return (h * C).sum(-1)  # (B, T, D)


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    h0: torch.Tensor | None = None,
    scan: Scan = blelloch_scan,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mamba's selective SSM: per step, :math:`\Delta_t`, :math:`B_t` and :math:`C_t` come from the input.

    .. math::

        \bar{A}_t = e^{\Delta_t A}, \quad \bar{B}_t = \Delta_t B_t, \quad
        h_t = \bar{A}_t \odot h_{t-1} + \bar{B}_t u_t, \quad y_t = C_t h_t + D \odot u_t

    :math:`\bar{A}` is the zero-order hold of :func:`discretize_zoh`; :math:`\bar{B}` its Euler
    simplification, as in Mamba (and Hugging Face's ``MambaMixer``). :math:`B_t` and
    :math:`C_t` may be shared by all channels (selective: one per token) or be one per channel
    and the same at every step (time-invariant): any shape that broadcasts to :math:`(B, T, D, N)`;
    so may :math:`\Delta` to :math:`(B, T, D)`.

    Args:
        u: the input :math:`u`.
        delta: the positive steps :math:`\Delta`.
        A: the diagonal of :math:`A` (negative).
        B, C: broadcastable to :math:`(B, T, D, N)`, e.g. :math:`(B, T, 1, N)` or :math:`(1, 1, D, N)`.
        D: the skip connection, or ``None``.
        h0: the state before the first step (decoding from a cache), or ``None`` for zeros.
        scan: a scan of :mod:`dlscratch.layers.scan` (the recurrence over time).

    Returns:
        ``(y, h_T)``: the outputs and the last state.

    Shape:
        - u: :math:`(B, T, D)`; delta: broadcastable to it; A: :math:`(D, N)`; h0: :math:`(B, D, N)`
        - y: :math:`(B, T, D)`; h_T: :math:`(B, D, N)`
    """
    dt = delta.unsqueeze(-1)  # (B, T, D, 1)
    a = torch.exp(dt * A)  # (B, T, D, N): A_bar_t
    b = (delta * u).unsqueeze(-1) * B  # (B, T, D, N): B_bar_t u_t = Delta_t u_t B_t
    a, b = torch.broadcast_tensors(a, b)  # a time-invariant A_bar: the same (D, N) at every (batch, t)
    if h0 is not None:
        b = torch.cat([b[:, :1] + a[:, :1] * h0.unsqueeze(1), b[:, 1:]], dim=1)  # fold h0 into step 1
    h = scan(a, b)  # (B, T, D, N): h_1 ... h_T
    if C.dim() == 4 and C.size(-2) == 1:  # one C_t per token, shared by the channels: a matmul
        y = (h @ C.transpose(-1, -2)).squeeze(-1)  # (B, T, D, N) @ (B, T, N, 1) -> (B, T, D)
    else:
        y = (h * C).sum(-1)  # (B, T, D): C h_t, one C per channel
    if D is not None:
        y = y + D * u  # (B, T, D)
    return y, h[:, -1]
