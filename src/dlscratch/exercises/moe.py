r"""Exercise checkers for chapter 22, "Mixture of Experts" (topic prefix ``moe.``).

The function checker runs the package's own tested :func:`~dlscratch.layers.moe.load_balancing_loss`
on seeded random router logits and compares; the number checkers recompute the answer with plain
arithmetic. A wrong answer gets a hint. The reference solutions live in the tests, not here and
not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.moe import load_balancing_loss, route
from .answers import require_callable, require_number
from .core import exercise

__all__ = ["MIXTRAL_CONFIG", "COLLAPSE_SETTING", "check_load_balancing_loss", "check_mixtral_parameters", "check_collapse_drop"]

# moe.mixtral_parameters: Mixtral 8x7B's published sizes (Jiang et al., 2024)
MIXTRAL_CONFIG = {"vocab_size": 32000, "n_layer": 32, "n_head": 32, "n_kv_head": 8, "n_embd": 4096, "ffn_hidden": 14336,
                  "num_experts": 8, "top_k": 2}
# moe.collapse_drop: every token of a batch routed to the same expert, top-1
COLLAPSE_SETTING = {"num_tokens": 4096, "num_experts": 8, "top_k": 1, "capacity_factor": 1.25}


@exercise("moe.load_balancing_loss")
def check_load_balancing_loss(answer: Any) -> None:
    r"""``answer(logits, top_k)``: Switch's :math:`E \sum_i f_i P_i`, :math:`f_i` over the :math:`kN` assignments."""
    fn = require_callable(answer, "my_load_balancing_loss")
    gen = torch.Generator().manual_seed(22)
    for N, E, k in ((64, 4, 1), (33, 8, 2), (10, 3, 3), (1, 5, 2)):
        logits = 2.0 * torch.randn(N, E, generator=gen, dtype=torch.float64)
        got = fn(logits, k)
        got = require_number(got, "the loss (a scalar)")
        probs, _, experts = route(logits, k)
        want = load_balancing_loss(probs, experts).item()
        if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            continue
        f = torch.bincount(experts.reshape(-1), minlength=E).double() / experts.numel()
        if k > 1 and math.isclose(got, k * want, rel_tol=1e-6):
            raise AssertionError(f"that is {k} times the answer: f_i is the share of the k*N assignments "
                                 "(they sum to 1), not the number of assignments per token.")
        if math.isclose(got, want / E, rel_tol=1e-6):
            raise AssertionError("multiply by E, so that the loss is 1 at uniform load whatever the number of experts.")
        if math.isclose(got, E * (f * f).sum().item(), rel_tol=1e-6):
            raise AssertionError("P_i is the mean router *probability* of expert i (differentiable), not its share of the assignments.")
        if math.isclose(got, E * (f * logits.mean(0)).sum().item(), rel_tol=1e-6):
            raise AssertionError("take the softmax of the logits before averaging: P_i is a mean probability.")
        raise AssertionError(
            f"wrong value for N={N}, E={E}, top_k={k}: got {got:.6g}, expected {want:.6g}. Softmax the logits, take "
            "each token's top_k experts, f_i = (assignments to i) / (k N), P_i = mean over tokens of p_i, loss = E sum_i f_i P_i."
        )


def _mixtral_counts() -> tuple[int, int]:
    c = MIXTRAL_CONFIG
    V, L, nh, nkv, C, F, E, k = (c[n] for n in ("vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_hidden", "num_experts", "top_k"))
    hs = C // nh
    expert = 3 * C * F  # a SwiGLU: gate, up, down
    shared = 2 * C + 2 * C * C + 2 * C * nkv * hs + E * C  # two RMSNorm gains, W_Q and W_O, W_K and W_V, the router
    total = V * C + L * (shared + E * expert) + C + V * C  # embedding, blocks, final gain, untied head
    return total, total - L * (E - k) * expert


@exercise("moe.mixtral_parameters")
def check_mixtral_parameters(answer: Any) -> None:
    r"""``(total, active)`` parameters of ``MIXTRAL_CONFIG``: all of them, and those one token uses."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise AssertionError(f"give a pair (total, active), got {answer!r}.")
    total, active = (require_number(a, "a parameter count") for a in answer)
    want_total, want_active = _mixtral_counts()
    c = MIXTRAL_CONFIG
    L, C, F, E, k = c["n_layer"], c["n_embd"], c["ffn_hidden"], c["num_experts"], c["top_k"]
    if total == want_total and active == want_active:
        return
    if (total, active) == (want_active, want_total):
        raise AssertionError("the pair is the wrong way round: total first, then active.")
    if total == want_total - L * E * C or active == want_active - L * E * C:
        raise AssertionError("the router (an E x C matrix per layer) is a parameter too, and every token uses it.")
    if total == want_total and active == want_active - L * k * 3 * C * F + L * 3 * C * F:
        raise AssertionError(f"each token goes through top_k = {k} experts, not one.")
    if total == want_total and active == want_total:
        raise AssertionError("active parameters leave out the experts a token does not use: E - k of them per layer.")
    if total == want_total - c["vocab_size"] * C:
        raise AssertionError("Mixtral's head is its own (V, C) matrix, not the token embedding: count both.")
    raise AssertionError(
        f"({total:,.0f}, {active:,.0f}) is not it. Per layer: two RMSNorm gains, W_Q and W_O (C x C), W_K and W_V "
        "(C x n_kv_head*hs), the router (E x C) and E SwiGLU experts (3 x C x F each); add the embedding, the final gain "
        "and the head. Active: drop E - top_k experts per layer."
    )


@exercise("moe.collapse_drop")
def check_collapse_drop(answer: Any) -> None:
    r"""The share of ``COLLAPSE_SETTING``'s assignments dropped when every token picks the same expert."""
    got = require_number(answer, "the dropped fraction")
    s = COLLAPSE_SETTING
    N, E, k, cf = s["num_tokens"], s["num_experts"], s["top_k"], s["capacity_factor"]
    cap = math.ceil(cf * k * N / E)
    want = (N * k - cap) / (N * k)
    if math.isclose(got, want, rel_tol=1e-9):
        return
    if math.isclose(got, 1 - want, rel_tol=1e-9):
        raise AssertionError("that is the share kept; the question asks for the share dropped.")
    if math.isclose(got, (E - 1) / E, rel_tol=1e-9):
        raise AssertionError(f"that is the answer at capacity factor 1; here it is {cf}, so the expert takes {cf} times its fair share.")
    if math.isclose(got, 100 * want, rel_tol=1e-9):
        raise AssertionError("give a fraction between 0 and 1, not a percentage.")
    raise AssertionError(
        f"{got:.6g} is not it: one expert accepts ceil(capacity_factor * k * N / E) assignments; all N * k go to it."
    )
