"""State-space layers: the scans equal the recurrence, ZOH and Euler, S4's convolution equals its recurrence, the selective scan, bad input."""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers.scan import SCANS, blelloch_scan, hillis_steele_scan, sequential_scan
from dlscratch.layers.ssm import (
    causal_convolution,
    discretize_euler,
    discretize_zoh,
    s4d_real,
    selective_scan,
    ssm_kernel,
    ssm_recurrence,
)


def loop_recurrence(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """An independent formulation: h_t written element by element in Python floats' order."""
    h, out = torch.zeros_like(b[:, 0]), torch.empty_like(b)
    for t in range(b.size(1)):
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


@pytest.mark.parametrize("name", list(SCANS))
@pytest.mark.parametrize("shape", [(2, 1, 3), (1, 2, 1), (3, 7, 2, 5), (2, 16, 4), (1, 33, 3, 2)])
def test_scans_equal_the_recurrence_values_and_gradients(name: str, shape: tuple[int, ...]) -> None:
    a = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    b = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    a2, b2 = (t.detach().clone().requires_grad_() for t in (a, b))
    h, ref = SCANS[name](a, b), loop_recurrence(a2, b2)
    torch.testing.assert_close(h, ref, atol=1e-12, rtol=1e-10)
    g = torch.randn(shape, dtype=torch.float64)
    (h * g).sum().backward()
    (ref * g).sum().backward()
    a_grad = torch.zeros_like(a) if a.grad is None else a.grad  # T = 1: h_1 = b_1 does not use a
    torch.testing.assert_close(a_grad, a2.grad, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(b.grad, b2.grad, atol=1e-12, rtol=1e-10)


def test_parallel_scans_match_in_float32_to_1e_5() -> None:
    a = torch.rand(4, 128, 8, 4) * 0.5 + 0.5
    b = torch.randn(4, 128, 8, 4)
    ref = sequential_scan(a, b)
    for scan in (hillis_steele_scan, blelloch_scan):
        assert (scan(a, b) - ref).abs().max().item() <= 1e-5


def test_scan_bad_input() -> None:
    with pytest.raises(ValueError, match=r"a \(2, 3\) and b \(2, 4\)"):
        sequential_scan(torch.ones(2, 3), torch.ones(2, 4))


def test_zoh_is_exact_for_a_constant_input_and_euler_is_its_first_order() -> None:
    A = torch.tensor([[-0.5, -2.0]], dtype=torch.float64)
    B = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    dt = torch.tensor(0.3, dtype=torch.float64)
    A_bar, B_bar = discretize_zoh(A, B, dt)
    # exact solution of h' = A h + B u, h(0) = h0, u = 1 constant: h(t) = e^{At} h0 + (e^{At} - 1)/A B
    h0 = torch.tensor([[0.7, -0.2]], dtype=torch.float64)
    exact = torch.exp(A * dt) * h0 + (torch.exp(A * dt) - 1) / A * B
    torch.testing.assert_close(A_bar * h0 + B_bar, exact)
    A_e, B_e = discretize_euler(A, B, dt)
    torch.testing.assert_close(A_e, 1 + dt * A)
    torch.testing.assert_close(B_e, dt * B)
    small = torch.tensor(1e-4, dtype=torch.float64)  # for a small step the two agree to O(dt^2)
    (za, zb), (ea, eb) = discretize_zoh(A, B, small), discretize_euler(A, B, small)
    assert (za - ea).abs().max() < 1e-7 and (zb - eb).abs().max() < 1e-7


def test_s4d_real() -> None:
    A = s4d_real(3, 4)
    assert A.shape == (3, 4)
    torch.testing.assert_close(A[2], torch.tensor([-1.0, -2.0, -3.0, -4.0]))


@pytest.mark.parametrize("N", [0, -3, 2.5, True])
def test_state_size_must_be_positive(N: object) -> None:
    with pytest.raises(ValueError, match=f"state_size={N!r}"):
        s4d_real(4, N)  # type: ignore[arg-type]


@pytest.mark.parametrize("T", [1, 5, 16])
def test_s4_convolution_equals_its_recurrence(T: int) -> None:
    D, N = 3, 4
    A = s4d_real(D, N, dtype=torch.float64) * torch.rand(D, 1, dtype=torch.float64)
    B, C = torch.randn(D, N, dtype=torch.float64), torch.randn(D, N, dtype=torch.float64)
    A_bar, B_bar = discretize_zoh(A, B, torch.full((D, 1), 0.1, dtype=torch.float64))
    u = torch.randn(2, T, D, dtype=torch.float64)
    K = ssm_kernel(A_bar, B_bar, C, T)
    # the kernel from its definition, K_k = C A_bar^k B_bar, one matrix power at a time
    for k in range(T):
        want = (C * torch.matrix_power(torch.diag_embed(A_bar), k).diagonal(dim1=-2, dim2=-1) * B_bar).sum(-1)
        torch.testing.assert_close(K[:, k], want)
    conv = causal_convolution(u, K)
    direct = torch.stack([sum(K[:, k] * u[:, t - k] for k in range(t + 1)) for t in range(T)], dim=1)
    torch.testing.assert_close(conv, direct)
    for scan in SCANS.values():
        torch.testing.assert_close(ssm_recurrence(u, A_bar, B_bar, C, scan=scan), conv)


def test_selective_scan_step_by_step_and_from_a_state() -> None:
    Bsz, T, D, N = 2, 9, 3, 4
    u, delta = torch.randn(Bsz, T, D, dtype=torch.float64), torch.rand(Bsz, T, D, dtype=torch.float64)
    A = -torch.rand(D, N, dtype=torch.float64) - 0.1
    Bt, Ct = torch.randn(Bsz, T, 1, N, dtype=torch.float64), torch.randn(Bsz, T, 1, N, dtype=torch.float64)
    Dskip = torch.randn(D, dtype=torch.float64)
    y, hT = selective_scan(u, delta, A, Bt, Ct, Dskip)
    h = torch.zeros(Bsz, D, N, dtype=torch.float64)
    for t in range(T):  # the recurrence written out
        h = torch.exp(delta[:, t, :, None] * A) * h + delta[:, t, :, None] * Bt[:, t] * u[:, t, :, None]
        torch.testing.assert_close(y[:, t], (h * Ct[:, t]).sum(-1) + Dskip * u[:, t])
    torch.testing.assert_close(hT, h)
    # split the sequence anywhere: the second half from the first half's state gives the same outputs
    y1, h1 = selective_scan(u[:, :4], delta[:, :4], A, Bt[:, :4], Ct[:, :4], Dskip)
    y2, h2 = selective_scan(u[:, 4:], delta[:, 4:], A, Bt[:, 4:], Ct[:, 4:], Dskip, h0=h1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    torch.testing.assert_close(h2, hT)


def test_time_invariant_selective_scan_is_the_s4_recurrence_with_eulers_b() -> None:
    D, N, T = 3, 4, 7
    A = -torch.rand(D, N, dtype=torch.float64) - 0.1
    B, C = torch.randn(D, N, dtype=torch.float64), torch.randn(D, N, dtype=torch.float64)
    dt = torch.rand(D, dtype=torch.float64)
    u = torch.randn(2, T, D, dtype=torch.float64)
    y, _ = selective_scan(u, dt, A, B, C)
    torch.testing.assert_close(y, ssm_recurrence(u, torch.exp(dt[:, None] * A), dt[:, None] * B, C))
