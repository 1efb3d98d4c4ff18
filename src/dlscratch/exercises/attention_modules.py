r"""Exercise checkers for chapter 12, "Attention as modules" (topic prefix ``mha.``).

Every checker recomputes the answer with the package's tested
:class:`~dlscratch.layers.attention.modules.MultiHeadAttention` (its parameters, its per-head
weights, its output) or torch's own modules, and raises :class:`AssertionError` with a hint when
the reader's answer differs. The reference solutions live in the tests, not here and not on the
page.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..layers.attention.functional import split_heads
from ..layers.attention.modules import MultiHeadAttention
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "RETRIEVER_SIZES",
    "SHARP_C",
    "SHARP_HEADS",
    "SHARP_SHAPE",
    "check_retriever_params",
    "check_head_contributions",
    "check_head_sharpness",
]

# mha.retriever_params: the chapter's Retriever(n_keys, n_values, d_model, n_head)
RETRIEVER_SIZES = {"n_keys": 64, "n_values": 64, "d_model": 32, "n_head": 4}

# mha.head_sharpness: MultiHeadAttention(SHARP_C, nh) at initialisation for nh in SHARP_HEADS,
# self-attention on x = torch.randn(*SHARP_SHAPE)
SHARP_C = 64
SHARP_HEADS = (1, 16)
SHARP_SHAPE = (256, 16, SHARP_C)


@exercise("mha.retriever_params")
def check_retriever_params(answer: Any) -> None:
    r"""The number of parameters of the chapter's ``Retriever`` with ``RETRIEVER_SIZES``."""
    got = require_number(answer, "the parameter count")
    K, V, C, nh = (RETRIEVER_SIZES[k] for k in ("n_keys", "n_values", "d_model", "n_head"))
    parts = {
        "key_emb": nn.Embedding(K, C),
        "value_emb": nn.Embedding(V, C),
        "attn": MultiHeadAttention(C, nh),
        "head": nn.Linear(C, V),
    }
    n = {name: sum(p.numel() for p in m.parameters()) for name, m in parts.items()}
    want = sum(n.values())
    if got == want:
        return
    if got == want + n["key_emb"]:
        raise AssertionError("the query is embedded with the same key table: key_emb is counted once.")
    if got == want - n["key_emb"] - n["value_emb"]:
        raise AssertionError("count the two embedding tables too (n_keys x C and n_values x C).")
    if got == want - 4 * C - V:
        raise AssertionError("each of the four attention projections and the output head has a bias.")
    if got in (want - n["attn"] + nh * n["attn"], want - n["attn"] + n["attn"] // nh):
        raise AssertionError("the heads split the C channels: the attention has 4C^2 + 4C parameters whatever nh is.")
    if got == n["attn"]:
        raise AssertionError("that is the attention layer alone; add the embeddings and the output head.")
    raise AssertionError("add up key_emb (n_keys x C), value_emb (n_values x C), the attention (4C^2 + 4C) and head (C x n_values + n_values).")


def _random_mha(C: int, nh: int, gen: torch.Generator) -> MultiHeadAttention:
    mha = MultiHeadAttention(C, nh, dtype=torch.float64)
    with torch.no_grad():
        for p in mha.parameters():  # random biases too: a zero bias would hide where it is added
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / C**0.5)
    return mha


def _head_contributions(mha: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    r"""``(B, nh, T, C)``: head h's weights times its values times its ``hs`` columns of ``W_O``."""
    nh, hs = mha.num_heads, mha.embed_dim // mha.num_heads
    _, w = mha(x, average_attn_weights=False)  # (B, nh, T, T), from the tested module
    heads = w @ split_heads(mha.v_proj(x), nh)  # (B, nh, T, hs)
    w_o = mha.out_proj.weight.view(mha.embed_dim, nh, hs).permute(1, 2, 0)  # (nh, hs, C): W_O's columns by head
    return heads @ w_o  # (B, nh, T, C)


@exercise("mha.head_contributions")
def check_head_contributions(answer: Any) -> None:
    r"""``answer(mha, x)`` returns each head's additive share :math:`(B, n_h, T, C)` of the output.

    The shares plus ``out_proj.bias`` must sum to ``mha(x)[0]``, and share h must be head h's
    output mapped through its columns of :math:`W_O`; checked on seeded random modules and inputs.
    """
    fn = require_callable(answer, "head_contributions(mha, x)")
    gen = torch.Generator().manual_seed(12)
    for B, T, C, nh in ((2, 5, 12, 3), (1, 4, 16, 4), (2, 3, 8, 1)):
        mha = _random_mha(C, nh, gen)
        x = torch.randn(B, T, C, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            got = fn(mha, x.clone())
            want = _head_contributions(mha, x)
            out = mha(x)[0]
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a torch.Tensor, got {type(got).__name__}.")
        if tuple(got.shape) != (B, nh, T, C):
            hint = " Map each head's (T, hs) output through its hs columns of W_O." if got.shape[-1:] == (C // nh,) else ""
            raise AssertionError(f"the shares have shape (B, nh, T, C) = {(B, nh, T, C)}, got {tuple(got.shape)}.{hint}")
        got = got.detach().to(torch.float64)
        if torch.allclose(got, want, atol=1e-10, rtol=1e-8):
            continue
        bias = mha.out_proj.bias.detach()
        if torch.allclose(got, want + bias, atol=1e-10, rtol=1e-8):
            raise AssertionError("out_proj's bias is added once, after the sum over heads, not to every head's share.")
        if torch.allclose(got.sum(1), out, atol=1e-10, rtol=1e-8) or torch.allclose(got.sum(1) + bias, out, atol=1e-10, rtol=1e-8):
            if torch.allclose(got, (out / nh)[:, None].expand_as(got), atol=1e-10) or torch.allclose(
                got, ((out - bias) / nh)[:, None].expand_as(got), atol=1e-10
            ):
                raise AssertionError("an equal split of the output sums correctly but says nothing about the heads.")
            raise AssertionError("the shares add up to the output, but they are not split by head.")
        rows = mha.out_proj.weight.view(nh, C // nh, C)  # rows of W_O by head: the wrong slice
        heads = mha(x, average_attn_weights=False)[1] @ split_heads(mha.v_proj(x), nh)
        if nh > 1 and torch.allclose(got, heads @ rows, atol=1e-10, rtol=1e-8):
            raise AssertionError(
                "Y = concat(heads) @ W_O^T, so head h meets the *columns* h*hs:(h+1)*hs of out_proj.weight, not its rows."
            )
        raise AssertionError(
            f"wrong shares for (B, T, C, nh) = {(B, T, C, nh)}: head h's share is (A_h @ V_h) @ W_O[:, h*hs:(h+1)*hs].T, "
            "with A_h the per-head weights and V_h = split_heads(v_proj(x))."
        )


def _sharpness(nh: int, seed: int, average: bool = False) -> float:
    with torch.random.fork_rng():  # leave the reader's random stream alone
        torch.manual_seed(seed)
        mha = MultiHeadAttention(SHARP_C, nh)
        x = torch.randn(*SHARP_SHAPE)
        with torch.no_grad():
            _, w = mha(x, average_attn_weights=average)
    return w.max(-1).values.mean().item()


@exercise("mha.head_sharpness")
def check_head_sharpness(answer: Any) -> None:
    r"""``(one head, sixteen heads)``: the mean largest per-head attention weight at initialisation."""
    if not (isinstance(answer, (tuple, list)) and len(answer) == 2):
        raise AssertionError(f"give a pair (with {SHARP_HEADS[0]} head, with {SHARP_HEADS[1]} heads), got {answer!r}.")
    got = [require_number(a, "each mean largest weight") for a in answer]
    want = [sum(_sharpness(nh, s) for s in range(2)) / 2 for nh in SHARP_HEADS]
    if all(abs(g - w) <= 0.01 for g, w in zip(got, want)):
        return
    T = SHARP_SHAPE[1]
    if any(abs(g - 1 / T) <= 0.005 for g in got):
        raise AssertionError(
            f"1/T = {1 / T:g} would be exactly uniform weights. At initialisation the logits are small but not "
            "zero, so the largest of each row is clearly above it. Measure it."
        )
    if abs(got[0] - want[0]) <= 0.01 and abs(got[1] - _sharpness(SHARP_HEADS[1], 0, average=True)) <= 0.01:
        raise AssertionError("for 16 heads you took the head-averaged weights; ask for them per head (average_attn_weights=False).")
    if got[1] > got[0] + 0.05 or got[1] < got[0] - 0.05:
        raise AssertionError(
            "heads with 4 channels each are not sharper or flatter than one head with 64: the logits are divided by "
            "sqrt(hs), which keeps their variance the same whatever hs. Measure both."
        )
    raise AssertionError(
        f"measure it: MultiHeadAttention({SHARP_C}, nh), x = torch.randn{SHARP_SHAPE}, "
        "_, w = mha(x, average_attn_weights=False), then w.max(-1).values.mean(), for nh = 1 and 16."
    )
