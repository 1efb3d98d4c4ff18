r"""Exercise checkers for chapter 24, "FlashAttention and efficient attention" (topic prefix ``flash.``).

The function checker splits the keys of seeded random attention problems in two, runs the
package's own tested :func:`~dlscratch.layers.attention.flash.flash_forward` on each half and on
the whole, and compares the reader's merge of the halves with the whole. The number checkers
recompute the answer with plain arithmetic. A wrong answer gets a hint; the reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.attention.flash import flash_forward
from .answers import require_callable, require_number
from .core import exercise

__all__ = ["TILES_CONFIG", "STATE_CONFIG", "check_merge", "check_causal_tiles", "check_linear_state_bytes"]

# flash.causal_tiles: a causal tiled pass over T queries and T keys, square tiles
TILES_CONFIG = {"T": 1000, "block": 128}
# flash.linear_state_bytes: one causal linear-attention layer's recurrent state, one sequence, float32
STATE_CONFIG = {"n_head": 8, "head_size": 64, "bytes_per_number": 4}


def _halves(gen: torch.Generator, T: int, S: int, hs: int, scale: float) -> tuple[torch.Tensor, ...]:
    r"""Attention of T queries over S keys (the whole), and over the first and the second half of the keys."""
    q, k, v = (torch.randn(2, 3, n, hs, generator=gen, dtype=torch.float64) for n in (T, S, S))
    k[:, :, : S // 2] *= 3.0  # the two halves carry very different shares of the mass
    opts = {"causal": False, "mask": None, "scale": scale, "block_q": 16, "block_k": 16}
    half = S // 2
    return (*flash_forward(q, k[:, :, :half], v[:, :, :half], **opts), *flash_forward(q, k[:, :, half:], v[:, :, half:], **opts),
            *flash_forward(q, k, v, **opts))


@exercise("flash.merge")
def check_merge(answer: Any) -> None:
    r"""``answer(o1, lse1, o2, lse2) -> (o, lse)``: attention over all keys from attention over two halves."""
    fn = require_callable(answer, "merge")
    gen = torch.Generator().manual_seed(24)
    for T, S, hs, scale in ((5, 12, 8, 8**-0.5), (1, 2, 4, 0.5), (9, 31, 16, 100.0)):  # the last: lse in the thousands
        o1, lse1, o2, lse2, o, lse = _halves(gen, T, S, hs, scale)
        got = fn(o1.clone(), lse1.clone(), o2.clone(), lse2.clone())
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            raise AssertionError("return a pair of tensors (o, lse).")
        go, glse = got
        if tuple(go.shape) != tuple(o.shape) or tuple(glse.shape) != tuple(lse.shape):
            raise AssertionError(f"o must keep the shape {tuple(o.shape)} and lse {tuple(lse.shape)}.")
        ok_o = torch.allclose(go.double(), o, atol=1e-8, rtol=1e-6)
        ok_lse = torch.allclose(glse.double(), lse, atol=1e-8, rtol=1e-10)
        if ok_o and ok_lse:
            continue
        if torch.allclose(go.double(), (o1 + o2) / 2, atol=1e-8):
            raise AssertionError("the halves do not count equally: weigh each by its share of the softmax mass, exp(lse1) against exp(lse2).")
        if not ok_o and go.isnan().any():
            raise AssertionError(
                f"nan in o at scale {scale:g}, where lse reaches {lse.max().item():.0f}: exp(lse) overflows. "
                "Use exp(lse1 - lse) and exp(lse2 - lse) with lse = logaddexp(lse1, lse2)."
            )
        if not ok_o:
            raise AssertionError("o is wrong: o = (exp(lse1) o1 + exp(lse2) o2) / (exp(lse1) + exp(lse2)).")
        if torch.allclose(glse.double(), torch.maximum(lse1, lse2), atol=1e-8):
            raise AssertionError("lse is the log of the total mass, log(exp(lse1) + exp(lse2)), not the larger of the two.")
        raise AssertionError("o is right but lse is not: lse = log(exp(lse1) + exp(lse2)), computed stably (torch.logaddexp).")


@exercise("flash.causal_tiles")
def check_causal_tiles(answer: Any) -> None:
    r"""How many of the tiles a causal pass with ``TILES_CONFIG`` visits (the others are skipped)."""
    got = require_number(answer, "the number of tiles")
    n = -(-TILES_CONFIG["T"] // TILES_CONFIG["block"])
    want = n * (n + 1) // 2
    if got == want:
        return
    if got == n * n:
        raise AssertionError("that is every tile: a causal pass skips the tiles whose first key comes after their last query.")
    m = TILES_CONFIG["T"] // TILES_CONFIG["block"]
    if got == m * (m + 1) // 2:
        raise AssertionError(f"T / block is not a whole number: the last, partial tile row counts too (ceil({TILES_CONFIG['T']} / {TILES_CONFIG['block']}) rows).")
    if got == n * (n - 1) // 2:
        raise AssertionError("the tiles on the diagonal are computed too (with the mask inside them).")
    raise AssertionError(f"{got:g} is not it: with n = ceil(T / block) rows of tiles, row i visits tiles 0 ... i.")


@exercise("flash.linear_state_bytes")
def check_linear_state_bytes(answer: Any) -> None:
    r"""Bytes of the recurrent state (S and z) of one causal linear-attention layer with ``STATE_CONFIG``."""
    got = require_number(answer, "the number of bytes")
    nh, hs, b = STATE_CONFIG["n_head"], STATE_CONFIG["head_size"], STATE_CONFIG["bytes_per_number"]
    want = nh * (hs * hs + hs) * b
    if got == want:
        return
    if got == nh * hs * hs * b:
        raise AssertionError("the normaliser z (one vector of hs numbers per head) is part of the state too.")
    if got == (hs * hs + hs) * b:
        raise AssertionError("every head has its own state.")
    if got == nh * (hs * hs + hs):
        raise AssertionError("that is the number of numbers: each takes 4 bytes.")
    if math.isclose(got, 2 * nh * hs * b * 1024, rel_tol=0.01):
        raise AssertionError("that is a KV cache: linear attention keeps S = sum of phi(k) v^T and z = sum of phi(k), not every key and value.")
    raise AssertionError(f"{got:g} is not it: per head, S is hs x hs numbers and z is hs numbers.")
