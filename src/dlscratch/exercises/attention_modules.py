r"""Exercise checkers for chapter 12, "Attention as modules" (topic prefix ``mha.``).

Every checker recomputes the answer independently (``nn.MultiheadAttention``, plain loops,
arithmetic) and raises :class:`AssertionError` with a hint when the reader's answer differs. The
reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..layers.attention.modules import MultiHeadAttention
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "PARAM_COUNT_EMBED_DIM",
    "PARAM_COUNT_NUM_HEADS",
    "MEMORY_SHAPE",
    "check_param_count",
    "check_load_from_torch",
    "check_allowed_mask",
    "check_weights_memory",
]

# mha.param_count: MultiHeadAttention(embed_dim=48, num_heads=4, bias=True)
PARAM_COUNT_EMBED_DIM = 48
PARAM_COUNT_NUM_HEADS = 4

# mha.weights_memory: B, nh, T, S, C of a float32 self-attention call
MEMORY_SHAPE = {"B": 8, "nh": 8, "T": 1024, "S": 1024, "C": 512}


@exercise("mha.param_count")
def check_param_count(answer: Any) -> None:
    r"""The number of parameters of ``MultiHeadAttention(48, 4, bias=True)``."""
    got = require_number(answer, "the parameter count")
    C, nh = PARAM_COUNT_EMBED_DIM, PARAM_COUNT_NUM_HEADS
    want = sum(p.numel() for p in nn.MultiheadAttention(C, nh, bias=True).parameters())
    if got == want:
        return
    if got == 4 * C * C:
        raise AssertionError("that is the weights only: each of the four projections also has a bias of size C.")
    if got == 3 * C * C + 3 * C:
        raise AssertionError("you counted Q, K and V; the output projection W_O is a fourth (C, C) linear map.")
    if got in (4 * (C * C // nh) + 4 * C // nh, 4 * C * C * nh + 4 * C * nh, 4 * C * C // nh + 4 * C):
        raise AssertionError("the number of heads does not change the count: heads split the C channels, add none.")
    raise AssertionError("count four linear maps from C to C channels, each with a (C, C) weight and a (C,) bias.")


def _random_torch_mha(C: int, nh: int, seed: int) -> nn.MultiheadAttention:
    gen = torch.Generator().manual_seed(seed)
    mha = nn.MultiheadAttention(C, nh, bias=True, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for p in mha.parameters():  # random biases too (torch initialises them to zero)
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / C**0.5)
    return mha


@exercise("mha.load_from_torch")
def check_load_from_torch(answer: Any) -> None:
    r"""``answer(ours, mha)`` copies ``mha``'s weights into ``ours`` so that both compute the same."""
    require_callable(answer, "load_weights")
    C, nh = 12, 3
    mha = _random_torch_mha(C, nh, seed=5)
    ours = MultiHeadAttention(C, nh, dtype=torch.float64)
    with torch.no_grad():
        for p in ours.parameters():
            p.fill_(0.123)  # a constant nobody would copy by accident
    answer(ours, mha)
    x = torch.randn(2, 5, C, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        want, _ = mha(x, x, x)
        got, _ = ours(x)
    if torch.allclose(got, want, atol=1e-10, rtol=1e-8):
        return
    w_q, w_k, w_v = mha.in_proj_weight.detach().chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.detach().chunk(3)
    theirs = {"q_proj": (w_q, b_q), "k_proj": (w_k, b_k), "v_proj": (w_v, b_v)}
    theirs["out_proj"] = (mha.out_proj.weight.detach(), mha.out_proj.bias.detach())
    for name, (w, b) in theirs.items():
        lin = getattr(ours, name)
        if torch.equal(lin.weight, w.T) and not torch.equal(w, w.T):
            raise AssertionError(f"{name}.weight is transposed: nn.Linear and in_proj_weight store (out, in) alike.")
        if not torch.equal(lin.weight, w):
            stacked = [t for t in (w_q, w_k, w_v) if torch.equal(lin.weight, t)]
            if stacked:
                raise AssertionError(
                    f"{name}.weight holds the wrong block: in_proj_weight stacks [W_q; W_k; W_v], in that order."
                )
            raise AssertionError(f"{name}.weight differs from torch's: use in_proj_weight.chunk(3), out_proj.weight.")
        if not torch.equal(lin.bias, b):
            raise AssertionError(f"{name}.bias was not copied: the biases are in in_proj_bias and out_proj.bias.")
    raise AssertionError("the parameters match but the outputs do not: did you change anything else in the module?")


@exercise("mha.allowed_mask")
def check_allowed_mask(answer: Any) -> None:
    r"""``answer(key_padding_mask, T, is_causal)`` returns the ``(B, 1, T, S)`` mask, ``True`` = may attend."""
    require_callable(answer, "allowed_mask")
    pad = torch.tensor(
        [[False, False, False, False, False], [False, False, False, True, True], [False, True, False, False, True]]
    )  # (B=3, S=5), True = padding
    B, S = pad.shape
    for T, is_causal in ((4, True), (4, False), (6, True), (1, True)):
        # the definition, entry by entry: key j is allowed for query i if it is not padding and, when causal, j <= i
        want = torch.tensor(
            [[[[not pad[b, j] and (j <= i or not is_causal) for j in range(S)] for i in range(T)]] for b in range(B)]
        )  # (B, 1, T, S)
        got = answer(pad.clone(), T, is_causal)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a torch.Tensor, got {type(got).__name__}.")
        if got.dtype != torch.bool:
            raise AssertionError(f"return a bool tensor (True = may attend), got dtype {got.dtype}.")
        if tuple(got.shape) != (B, 1, T, S):
            raise AssertionError(
                f"for T={T} the mask should have shape (B, 1, T, S) = {(B, 1, T, S)}, got {tuple(got.shape)}; "
                "the 1 broadcasts over the heads."
            )
        if torch.equal(got, want):
            continue
        order = torch.tensor([[j <= i or not is_causal for j in range(S)] for i in range(T)])  # (T, S)
        keep = ~pad[:, None, None, :]  # (B, 1, 1, S)
        if torch.equal(got, ~want):
            raise AssertionError("your mask is inverted: True must mean 'may attend'.")
        if torch.equal(got, ~keep & order):
            raise AssertionError("key_padding_mask is True at padding, which must be blocked: negate it.")
        if torch.equal(got, order.expand(B, 1, T, S)):
            raise AssertionError("padding keys are still allowed: combine the causal part with ~key_padding_mask.")
        if is_causal and torch.equal(got, keep.expand(B, 1, T, S)):
            raise AssertionError("with is_causal=True, query i may only see keys j <= i.")
        if is_causal and torch.equal(got, keep & ~order | keep & torch.eye(T, S, dtype=torch.bool)):
            raise AssertionError("rows are queries and columns keys: the causal part is the lower triangle j <= i.")
        raise AssertionError(
            f"wrong for T={T}, is_causal={is_causal}: entry (b, 0, i, j) is 'not pad[b, j]' and, when causal, j <= i."
        )


@exercise("mha.weights_memory")
def check_weights_memory(answer: Any) -> None:
    r"""Bytes of the per-head float32 attention weights for ``MEMORY_SHAPE``."""
    got = require_number(answer, "the number of bytes")
    s = MEMORY_SHAPE
    want = s["B"] * s["nh"] * s["T"] * s["S"] * torch.finfo(torch.float32).bits // 8
    if got == want:
        return
    if got == want / 4:
        raise AssertionError("that is the number of entries; each float32 takes 4 bytes.")
    if got == want / s["nh"]:
        raise AssertionError("every head has its own (T, S) weight matrix: multiply by nh.")
    if got in (s["B"] * s["T"] * s["C"] * 4, s["B"] * s["nh"] * s["T"] * s["C"] * 4):
        raise AssertionError("that is the size of an activation; the weights are (B, nh, T, S), independent of C.")
    if got == want * 2:
        raise AssertionError("float32 is 4 bytes per entry, not 8.")
    raise AssertionError("the weights tensor has shape (B, nh, T, S); count its entries, then the bytes per entry.")
