r"""Exercise checkers for chapter 21, "LLaMA from scratch" (topic prefix ``llama.``).

The number checkers recompute the answer with plain arithmetic; the function checker runs the
package's own tested attention layer (:class:`~dlscratch.layers.attention.modules.MultiHeadAttention`
with :class:`~dlscratch.layers.rope.RoPE`) on seeded random inputs and compares. A wrong answer
gets a hint. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

from typing import Any

import torch

from ..layers.attention.attend import PositionHook
from ..layers.attention.modules import MultiHeadAttention
from ..layers.rope import RoPE, apply_rope_interleaved, rope_angles
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "PARAMS_CONFIG",
    "CACHE_CONFIG",
    "check_num_parameters",
    "check_kv_cache_bytes",
    "check_attention",
]

# llama.num_parameters: the chapter's GPU preset (no biases, RMSNorm gains, untied head)
PARAMS_CONFIG = {"vocab_size": 65, "n_layer": 6, "n_head": 6, "n_kv_head": 2, "n_embd": 384, "ffn_hidden": 1024}
# llama.kv_cache_bytes: that model, 8 sequences, 256 positions cached, float32
CACHE_CONFIG = {"n_layer": 6, "n_head": 6, "n_kv_head": 2, "n_embd": 384, "batch_size": 8, "context": 256, "bytes_per_number": 4}


@exercise("llama.num_parameters")
def check_num_parameters(answer: Any) -> None:
    r"""Total parameters of ``PARAMS_CONFIG``: embedding, blocks, final RMSNorm, the untied head."""
    got = require_number(answer, "the number of parameters")
    V, L, nh, nkv, C, F = (PARAMS_CONFIG[k] for k in ("vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_hidden"))
    hs = C // nh
    per_block = 2 * C + C * C + 2 * C * nkv * hs + C * C + 3 * C * F  # 2 gains, W_Q, W_K and W_V, W_O, SwiGLU
    want = V * C + L * per_block + C + V * C  # embedding, blocks, final gain, head
    if got == want:
        return
    if got == want - V * C:
        raise AssertionError("LLaMA's head is its own (V, C) matrix, not the token embedding: count both.")
    if got == want + L * 2 * C * (nh - nkv) * hs:
        raise AssertionError(f"with grouped-query attention W_K and W_V map C -> n_kv_head * hs = {nkv * hs}, not C -> C.")
    if got == want - L * C * F:
        raise AssertionError("SwiGLU has three matrices (gate, up, down), not two.")
    if got == want - L * 2 * C - C:
        raise AssertionError("the RMSNorm gains are parameters too (two per block, one final).")
    raise AssertionError(
        f"{got:,.0f} is not it. Per block: two RMSNorm gains (C each), W_Q and W_O (C x C each), W_K and W_V "
        "(C x n_kv_head*hs each), SwiGLU's gate, up and down (3 x C x F); add the embedding, the final gain and the head."
    )


@exercise("llama.kv_cache_bytes")
def check_kv_cache_bytes(answer: Any) -> None:
    r"""Bytes of the K and V caches of ``CACHE_CONFIG`` with grouped-query attention."""
    got = require_number(answer, "the number of bytes")
    c = CACHE_CONFIG
    hs = c["n_embd"] // c["n_head"]
    per_head = c["batch_size"] * c["context"] * hs * c["bytes_per_number"]
    want = c["n_layer"] * 2 * c["n_kv_head"] * per_head  # keys and values, per layer, per kv head
    if got == want:
        return
    if got == want * c["n_head"] // c["n_kv_head"]:
        raise AssertionError("that is multi-head attention's cache: with GQA only the n_kv_head key/value heads are cached.")
    if got == want // 2:
        raise AssertionError("the cache holds keys and values: two tensors per layer.")
    if got == want // c["n_layer"]:
        raise AssertionError("every layer has its own cache.")
    raise AssertionError(
        f"{got:,.0f} is not it: per layer, keys and values, each (batch, n_kv_head, context, hs) numbers of 4 bytes."
    )


_ROPE = object()  # the default: the package's half-split RoPE


def _reference(x: torch.Tensor, w: dict[str, torch.Tensor], nh: int, nkv: int, base: float, hook: Any = _ROPE) -> torch.Tensor:
    C = x.size(-1)
    attn = MultiHeadAttention(C, nh, nkv, bias=False, causal=True, dtype=x.dtype)
    attn.positions = RoPE(C // nh, base).hook() if hook is _ROPE else hook
    with torch.no_grad():
        for name, lin in (("wq", attn.q_proj), ("wk", attn.k_proj), ("wv", attn.v_proj), ("wo", attn.out_proj)):
            lin.weight.copy_(w[name])
        return attn(x)[0]


@exercise("llama.attention")
def check_attention(answer: Any) -> None:
    r"""``answer(x, wq, wk, wv, wo, n_head, n_kv_head, base)``: LLaMA's causal rotary grouped-query self-attention."""
    fn = require_callable(answer, "my_llama_attention")
    gen = torch.Generator().manual_seed(21)
    for B, T, C, nh, nkv, base in ((2, 7, 16, 4, 2, 10000.0), (1, 1, 8, 2, 1, 100.0), (3, 9, 24, 3, 3, 500.0)):
        hs = C // nh
        x = torch.randn(B, T, C, generator=gen, dtype=torch.float64)
        w = {"wq": torch.randn(C, C, generator=gen, dtype=torch.float64) / C**0.5,
             "wk": torch.randn(nkv * hs, C, generator=gen, dtype=torch.float64) / C**0.5,
             "wv": torch.randn(nkv * hs, C, generator=gen, dtype=torch.float64) / C**0.5,
             "wo": torch.randn(C, C, generator=gen, dtype=torch.float64) / C**0.5}
        with torch.no_grad():
            got = fn(x, w["wq"], w["wk"], w["wv"], w["wo"], nh, nkv, base)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (B, T, C):
            raise AssertionError(f"return a tensor of shape (B, T, C) = {(B, T, C)}, got {getattr(got, 'shape', type(got).__name__)}")
        want = _reference(x, w, nh, nkv, base)
        if torch.allclose(got.double(), want, atol=1e-6, rtol=1e-5):
            continue
        for hint, hook in (
            ("that is attention without positions: rotate every head's queries and keys (RoPE) before the scores.", None),
            ("you rotated the interleaved pairs (x_2i, x_2i+1), the paper's convention; LLaMA in Hugging Face's "
             "format (and this book) rotates the half-split pairs (x_i, x_i+hs/2): use apply_rope.",
             PositionHook(rotate=lambda t, pos, hs=hs, base=base: apply_rope_interleaved(t, rope_angles(pos, hs, base)))),
        ):
            if torch.allclose(got.double(), _reference(x, w, nh, nkv, base, hook), atol=1e-6, rtol=1e-5):
                raise AssertionError(hint)
        if T > 1 and torch.allclose(got.double()[:, 0], want[:, 0], atol=1e-6, rtol=1e-5):
            raise AssertionError("position 0 is right but later ones are not: check the causal mask and the positions 0 ... T-1.")
        raise AssertionError(
            f"wrong values for B={B}, T={T}, C={C}, n_head={nh}, n_kv_head={nkv}. Project, split into heads (n_kv_head for "
            "keys and values), rotate q and k with the half-split RoPE (apply_rope), share each key/value head across "
            "n_head / n_kv_head query heads (repeat_kv), attend causally with 1/sqrt(hs), merge the heads and apply wo."
        )
