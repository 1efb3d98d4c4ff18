"""Every hand-written backward pass of chapter 4 against autograd, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.autograd.manual import (
    batchnorm_backward,
    cross_entropy_backward,
    embedding_backward,
    linear_backward,
    tanh_backward,
)

f64 = torch.float64
TOL = {"atol": 1e-12, "rtol": 1e-10}


def leaf(*shape: int, scale: float = 1.0) -> torch.Tensor:
    return (scale * torch.randn(*shape, dtype=f64)).requires_grad_()


@pytest.mark.parametrize(("N", "V"), [(1, 2), (7, 27), (32, 5)])
def test_cross_entropy_backward(N: int, V: int) -> None:
    logits = leaf(N, V, scale=3.0)
    y = torch.randint(0, V, (N,))
    F.cross_entropy(logits, y).backward()
    torch.testing.assert_close(cross_entropy_backward(logits.detach(), y), logits.grad, **TOL)


def test_cross_entropy_backward_rows_sum_to_zero() -> None:
    d = cross_entropy_backward(torch.randn(9, 4, dtype=f64), torch.randint(0, 4, (9,)))
    torch.testing.assert_close(d.sum(1), torch.zeros(9, dtype=f64), **TOL)


@pytest.mark.parametrize(("N", "fan_in", "fan_out"), [(1, 3, 2), (10, 30, 200), (5, 1, 1)])
def test_linear_backward(N: int, fan_in: int, fan_out: int) -> None:
    x, w, b = leaf(N, fan_in), leaf(fan_in, fan_out), leaf(fan_out)
    g = torch.randn(N, fan_out, dtype=f64)
    ((x @ w + b) * g).sum().backward()
    dx, dw, db = linear_backward(g, x.detach(), w.detach())
    torch.testing.assert_close(dx, x.grad, **TOL)
    torch.testing.assert_close(dw, w.grad, **TOL)
    torch.testing.assert_close(db, b.grad, **TOL)


def test_tanh_backward() -> None:
    a = leaf(6, 5, scale=2.0)
    g = torch.randn(6, 5, dtype=f64)
    h = torch.tanh(a)
    (h * g).sum().backward()
    torch.testing.assert_close(tanh_backward(g, h.detach()), a.grad, **TOL)


@pytest.mark.parametrize(("N", "C"), [(2, 1), (32, 200), (5, 3)])
def test_batchnorm_backward(N: int, C: int) -> None:
    x = (2.0 + 3.0 * torch.randn(N, C, dtype=f64)).requires_grad_()
    gamma, beta = leaf(C), leaf(C)
    out = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)
    g = torch.randn(N, C, dtype=f64)
    (out * g).sum().backward()
    with torch.no_grad():
        mean, var = x.mean(0), x.var(0, unbiased=False)
        inv_std = (var + 1e-5) ** -0.5
        xhat = (x - mean) * inv_std
    dx, dgamma, dbeta = batchnorm_backward(g, xhat, inv_std, gamma.detach())
    torch.testing.assert_close(dx, x.grad, **TOL)
    torch.testing.assert_close(dgamma, gamma.grad, **TOL)
    torch.testing.assert_close(dbeta, beta.grad, **TOL)


@pytest.mark.parametrize("ix_shape", [(1,), (32, 3), (4, 8)])
def test_embedding_backward(ix_shape: tuple[int, ...]) -> None:
    table = leaf(27, 10)
    ix = torch.randint(0, 27, ix_shape)
    ix.view(-1)[0] = ix.view(-1)[-1]  # a repeated row accumulates
    g = torch.randn(*ix_shape, 10, dtype=f64)
    (table[ix] * g).sum().backward()
    torch.testing.assert_close(embedding_backward(g, ix, 27), table.grad, **TOL)


def test_whole_mlp_backward_matches_autograd() -> None:
    """Chaining the five functions reproduces loss.backward() for the chapter-4 model."""
    N, T, V, E, H = 32, 3, 27, 10, 64
    C, W1, gamma, beta, W2, b2 = leaf(V, E), leaf(T * E, H, scale=0.3), leaf(H), leaf(H), leaf(H, V, scale=0.1), leaf(V)
    X, Y = torch.randint(0, V, (N, T)), torch.randint(0, V, (N,))
    emb = C[X]  # (N, T, E)
    embcat = emb.view(N, -1)  # (N, T*E)
    hprebn = embcat @ W1  # (N, H)
    mean, var = hprebn.mean(0), hprebn.var(0, unbiased=False)
    inv_std = (var + 1e-5) ** -0.5
    xhat = (hprebn - mean) * inv_std
    h = torch.tanh(gamma * xhat + beta)
    logits = h @ W2 + b2
    F.cross_entropy(logits, Y).backward()
    with torch.no_grad():
        dlogits = cross_entropy_backward(logits, Y)
        dh, dW2, db2 = linear_backward(dlogits, h, W2)
        dhpre = tanh_backward(dh, h)
        dhprebn, dgamma, dbeta = batchnorm_backward(dhpre, xhat, inv_std, gamma)
        dembcat, dW1, _ = linear_backward(dhprebn, embcat, W1)
        dC = embedding_backward(dembcat.view(N, T, E), X, V)
    for ours, param in [(dC, C), (dW1, W1), (dgamma, gamma), (dbeta, beta), (dW2, W2), (db2, b2)]:
        assert (ours - param.grad).abs().max().item() <= 1e-6
        torch.testing.assert_close(ours, param.grad, **TOL)
