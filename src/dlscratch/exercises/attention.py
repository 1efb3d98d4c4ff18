r"""Exercise checkers for chapter 11, "Attention from scratch" (topic prefix ``attention.``).

Every checker recomputes the answer (plain loops, Python's ``math``, torch's own softmax, or
autograd through the package's tested :func:`~dlscratch.layers.activations.softmax` and
:func:`~dlscratch.layers.attention.functional.scaled_dot_product_attention`) and raises :class:`AssertionError` with a hint when
the reader's answer differs. The reference solutions live in the tests, not here and not on the
page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.activations import softmax
from ..layers.attention.functional import scaled_dot_product_attention
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "PREDICT_Q",
    "PREDICT_K",
    "LOGIT_SCALE_D",
    "LOGIT_SCALE_VAR_Q",
    "LOGIT_SCALE_VAR_K",
    "SELF_BATCH",
    "SELF_T",
    "SELF_D",
    "check_softmax_backward",
    "check_self_weight",
    "check_predict_weights",
    "check_padding_mask",
    "check_logit_scale",
]

# attention.predict_weights: causal self-attention weights softmax(Q K^T / sqrt(4)) with these
PREDICT_Q = ((0.0, 4.0, 0.0, 0.0), (2.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0))  # (T=3, hs=4)
PREDICT_K = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (-1.0, 0.0, 0.0, 0.0))  # (S=3, hs=4)

# attention.logit_scale: head size and the variances of the query and key entries
LOGIT_SCALE_D = 64
LOGIT_SCALE_VAR_Q = 4.0
LOGIT_SCALE_VAR_K = 1.0

# attention.self_weight: x = torch.randn(SELF_BATCH, SELF_T, SELF_D), self-attention with q = k = v = x
SELF_BATCH, SELF_T, SELF_D = 1000, 16, 16


def _as_matrix(answer: Any, shape: tuple[int, int]) -> torch.Tensor:
    try:
        got = torch.as_tensor(answer, dtype=torch.float64).cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise AssertionError(f"give a {shape} tensor or a nested list of numbers, got {answer!r}.") from err
    if tuple(got.shape) != shape:
        raise AssertionError(f"the weights form a {shape} matrix (queries x keys), got shape {tuple(got.shape)}.")
    return got


@exercise("attention.predict_weights")
def check_predict_weights(answer: Any) -> None:
    r"""The causal attention weights for ``PREDICT_Q`` and ``PREDICT_K`` (default scale)."""
    got = _as_matrix(answer, (3, 3))
    hs = len(PREDICT_Q[0])

    def weights(scale: float, causal: bool) -> torch.Tensor:
        rows = []
        for i, q in enumerate(PREDICT_Q):
            keys = range(i + 1) if causal else range(len(PREDICT_K))
            logits = {j: scale * sum(a * b for a, b in zip(q, PREDICT_K[j])) for j in keys}
            z = sum(math.exp(s) for s in logits.values())
            rows.append([math.exp(logits[j]) / z if j in logits else 0.0 for j in range(len(PREDICT_K))])
        return torch.tensor(rows, dtype=torch.float64)

    want = weights(1 / math.sqrt(hs), causal=True)
    if torch.allclose(got, want, atol=1e-3, rtol=0):
        return
    if not torch.allclose(got.sum(-1), torch.ones(3, dtype=torch.float64), atol=1e-3):
        raise AssertionError(f"each row is a softmax, so it must sum to 1; your rows sum to {got.sum(-1).tolist()}.")
    if got.triu(1).abs().max() > 1e-3:
        raise AssertionError("the attention is causal: query i gets zero weight on keys j > i (upper triangle).")
    if torch.allclose(got, weights(1.0, causal=True), atol=1e-3, rtol=0):
        raise AssertionError(f"you forgot the scale: divide the dot products by sqrt(hs) = sqrt({hs}) first.")
    raise AssertionError(
        "not quite. For each query compute q . k_j / sqrt(hs) for the allowed keys j <= i, then softmax "
        "that row (a zero query gives equal logits)."
    )


@exercise("attention.padding_mask")
def check_padding_mask(answer: Any) -> None:
    r"""``answer(q, k, v, lengths)``: attention where keys at positions ``>= lengths[b]`` get weight 0."""
    require_callable(answer, "attention_with_padding")
    gen = torch.Generator().manual_seed(11)
    B, T, S, hs, hs_v = 3, 4, 5, 8, 2
    q = torch.randn(B, T, hs, generator=gen, dtype=torch.float64)
    k = torch.randn(B, S, hs, generator=gen, dtype=torch.float64)
    v = torch.randn(B, S, hs_v, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([5, 3, 1])
    want = torch.stack(
        [torch.softmax(q[b] @ k[b, :L].T / math.sqrt(hs), dim=-1) @ v[b, :L] for b, L in enumerate(lengths.tolist())]
    )  # (B, T, hs_v): keys past the length simply do not exist
    got = answer(q.clone(), k.clone(), v.clone(), lengths.clone())
    if isinstance(got, tuple):
        raise AssertionError("return only the output tensor (B, T, hs_v), not a tuple; take [0] of sdpa's result.")
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"return a torch.Tensor, got {type(got).__name__}.")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"the output should have shape (B, T, hs_v) = {tuple(want.shape)}: got {tuple(got.shape)}")
    got = got.detach().cpu().to(torch.float64)
    if torch.isnan(got).any():
        raise AssertionError("your output has nan: some query row lost every key. Mask keys j >= length only.")
    if torch.allclose(got, want, atol=1e-8, rtol=1e-6):
        return
    unmasked = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), dim=-1) @ v
    if torch.allclose(got, unmasked, atol=1e-8, rtol=1e-6):
        raise AssertionError("your output ignores `lengths`: padded keys still receive attention weight.")
    raise AssertionError(
        "not quite. Build a (B, 1, S) bool mask, True where key position j < lengths[b], so it broadcasts over "
        "the T queries, and set the blocked logits to -inf before the softmax."
    )


@exercise("attention.logit_scale")
def check_logit_scale(answer: Any) -> None:
    r"""The logit scale that gives unit-variance logits for the given head size and variances."""
    answer = require_number(answer, "the scale")
    var_logit = LOGIT_SCALE_D * LOGIT_SCALE_VAR_Q * LOGIT_SCALE_VAR_K  # Var(sum_i q_i k_i) for independent entries
    want = 1 / math.sqrt(var_logit)
    if math.isclose(answer, want, rel_tol=1e-3):
        return
    if math.isclose(answer, 1 / math.sqrt(LOGIT_SCALE_D), rel_tol=1e-3):
        raise AssertionError("1/sqrt(d) assumes unit-variance entries; here the query entries have variance 4.")
    if math.isclose(answer, 1 / var_logit, rel_tol=1e-3):
        raise AssertionError("multiplying a logit by s multiplies its variance by s**2, not by s.")
    raise AssertionError("first compute Var(q . k) for independent zero-mean entries, then pick s with s**2 Var = 1.")


@exercise("attention.softmax_backward")
def check_softmax_backward(answer: Any) -> None:
    r"""``answer(p, grad_p)`` returns :math:`\partial L / \partial z` for :math:`p = \mathrm{softmax}(z)` over the last dim.

    Compared with autograd through the package's :func:`~dlscratch.layers.activations.softmax` on
    seeded random logits and upstream gradients, float64.
    """
    require_callable(answer, "softmax_backward")
    gen = torch.Generator().manual_seed(12)
    for shape in ((4, 7), (2, 3, 5), (1, 1), (3, 2)):
        z = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2).requires_grad_()
        g = torch.randn(shape, generator=gen, dtype=torch.float64)
        p = softmax(z)
        (p * g).sum().backward()
        want = z.grad
        p = p.detach()
        got = answer(p.clone(), g.clone())
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a torch.Tensor, got {type(got).__name__}.")
        if tuple(got.shape) != tuple(shape):
            raise AssertionError(f"the gradient has the logits' shape {tuple(shape)}, got {tuple(got.shape)}.")
        got = got.detach().to(torch.float64)
        if torch.allclose(got, want, atol=1e-10, rtol=1e-8):
            continue
        if torch.allclose(got, p * g, atol=1e-10, rtol=1e-8):
            raise AssertionError("you kept only diag(p) of the Jacobian; the - p p^T term subtracts p * sum_j(p_j g_j).")
        if torch.allclose(got, p * (g - g.mean(-1, keepdim=True)), atol=1e-10, rtol=1e-8):
            raise AssertionError("the subtracted average is weighted by p: sum_j p_j g_j, not the plain mean of g.")
        if torch.allclose(got, p * (g - (g * p).sum()), atol=1e-10, rtol=1e-8):
            raise AssertionError("sum p_j g_j over the last dimension only, one sum per row (keepdim=True).")
        if torch.allclose(got, g - (g * p).sum(-1, keepdim=True), atol=1e-10, rtol=1e-8):
            raise AssertionError("the Jacobian diag(p) - p p^T has a factor p_i in every row: multiply by p.")
        raise AssertionError(
            f"wrong gradient for logits of shape {tuple(shape)}: use J = diag(p) - p p^T of eq. (jacobian), "
            "which is symmetric, and write J @ grad_p without building J."
        )


def _self_weight(seed: int, scale: float | None = None) -> float:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(SELF_BATCH, SELF_T, SELF_D, generator=gen)
    _, w = scaled_dot_product_attention(x, x, x, scale=scale)  # (B, T, T)
    return w.diagonal(dim1=-2, dim2=-1).mean().item()


@exercise("attention.self_weight")
def check_self_weight(answer: Any) -> None:
    r"""Mean weight a token gives itself in scaled self-attention with :math:`Q = K = V = X`, :math:`X \sim \mathcal{N}(0, 1)`."""
    got = require_number(answer, "the mean weight on the diagonal")
    want = sum(_self_weight(s) for s in range(3)) / 3
    if abs(got - want) <= 0.02:
        return
    if abs(got - 1 / SELF_T) <= 0.02:
        raise AssertionError(
            f"1/T = {1 / SELF_T:g} is the uniform guess. But q_i . k_i = |x_i|**2, about d, is much larger "
            "than q_i . k_j for j != i, which is about N(0, d). Measure it."
        )
    if abs(got - _self_weight(0, scale=1.0)) <= 0.02:
        raise AssertionError(f"that is without the 1/sqrt(d) scale; scaled_dot_product_attention divides by sqrt({SELF_D}).")
    if got >= 0.9:
        raise AssertionError(
            f"the scaled self logit is about d / sqrt(d) = {math.sqrt(SELF_D):g}, but there are {SELF_T - 1} "
            "competing keys with logits of spread 1. Measure it."
        )
    raise AssertionError(
        f"measure it: x = torch.randn({SELF_BATCH}, {SELF_T}, {SELF_D}), _, w = scaled_dot_product_attention(x, x, x), "
        "then the mean of w's diagonal, w.diagonal(dim1=-2, dim2=-1).mean()."
    )
