r"""Exercise checkers for chapter 19, "MQA, GQA and sliding-window attention" (topic prefix ``gqa.``).

The numeric checkers recompute the answer with plain arithmetic; the function checker calls the
package's own tested :func:`~dlscratch.layers.attention.receptive_field.measure_receptive_field`
(gradients through a real stack of windowed layers) on seeded random stacks. Each raises
:class:`AssertionError` with a hint when the answer differs. The reference solutions live in the
tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.attention.receptive_field import measure_receptive_field
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "ATTENTION_CONFIG",
    "BANDED_T",
    "BANDED_WINDOWS",
    "check_attention_params",
    "check_receptive_field",
    "check_banded_memory",
]

# gqa.attention_params: one attention layer of Llama-2-70B (no biases)
ATTENTION_CONFIG = {"hidden_size": 8192, "num_heads": 64, "num_kv_heads": 8}
# gqa.banded_memory: attend_banded at T = 4096 with the window raised from 256 to 1024
BANDED_T = 4096
BANDED_WINDOWS = (256, 1024)


@exercise("gqa.attention_params")
def check_attention_params(answer: Any) -> None:
    r"""Weights of one attention layer of ``ATTENTION_CONFIG``: the four projections, no biases."""
    got = require_number(answer, "the number of parameters")
    C, nh, nkv = (ATTENTION_CONFIG[k] for k in ("hidden_size", "num_heads", "num_kv_heads"))
    hs = C // nh
    q, k, v, o = C * C, C * nkv * hs, C * nkv * hs, C * C
    want = q + k + v + o
    if got == want:
        return
    if got == 4 * C * C:
        raise AssertionError("4 C^2 is multi-head attention; here the key and value maps output only nkv * hs channels.")
    if got == 2 * C * C + 2 * C * nkv:
        raise AssertionError("each key/value head has hs = C / nh channels: the K and V maps are (nkv * hs, C).")
    if got == 2 * C * C:
        raise AssertionError("you counted the query and output maps only; add the key and value maps.")
    raise AssertionError(f"count four matrices: W_Q and W_O are (C, C), W_K and W_V are (nkv * hs, C), with C = {C}.")


def _random_stacks() -> list[tuple[list[int | None], int]]:
    gen = torch.Generator().manual_seed(19)
    stacks: list[tuple[list[int | None], int]] = [([1], 5), ([4], 4), ([2, 2], 9), ([8] * 6, 24), ([3, None], 10)]
    for _ in range(6):
        T = int(torch.randint(8, 40, (1,), generator=gen))
        L = int(torch.randint(1, 5, (1,), generator=gen))
        windows: list[int | None] = [int(torch.randint(1, 9, (1,), generator=gen)) for _ in range(L)]
        stacks.append((windows, T))
    return stacks


@exercise("gqa.receptive_field")
def check_receptive_field(answer: Any) -> None:
    r"""``answer(windows, T)``: input positions the last output of a stack of windowed layers depends on."""
    require_callable(answer, "receptive_field")
    for windows, T in _random_stacks():
        got = answer(list(windows), T)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if not isinstance(got, int) or isinstance(got, bool):
            raise AssertionError(f"return a number of positions (an int), got {got!r}.")
        want = measure_receptive_field(windows, T)
        if got == want:
            continue
        finite = [w for w in windows if w is not None]
        if got == sum(finite) and None not in windows:
            raise AssertionError(f"windows={windows}, T={T}: each layer adds w - 1 positions, not w (the query itself is shared).")
        if want == T:
            raise AssertionError(f"windows={windows}, T={T}: the answer is {want}; there are only T positions to reach.")
        raise AssertionError(
            f"windows={windows}, T={T}: measured {want}, you gave {got}. Each layer of window w reaches w - 1 positions "
            "further back; a layer with window None sees all T."
        )


@exercise("gqa.banded_memory")
def check_banded_memory(answer: Any) -> None:
    r"""How many times more score entries :func:`attend_banded` forms at ``BANDED_T`` with the larger window."""
    got = require_number(answer, "the ratio")
    T, (w1, w2) = BANDED_T, BANDED_WINDOWS
    entries = [math.ceil(T / w) * w * 2 * w for w in (w1, w2)]  # n blocks of w queries by 2w keys
    want = entries[1] / entries[0]
    if math.isclose(got, want, rel_tol=1e-6):
        return
    if math.isclose(got, 1 / want, rel_tol=1e-6):
        raise AssertionError("that is the inverse: a wider window means more scores per query.")
    if math.isclose(got, (w2 / w1) ** 2, rel_tol=1e-6):
        raise AssertionError("each block is w x 2w, but there are T / w blocks: count n * w * 2w for both windows.")
    if math.isclose(got, 1.0, rel_tol=1e-6):
        raise AssertionError("the scores are about 2 T w: they do grow with the window.")
    raise AssertionError(f"count n * w * 2w score entries per head, n = ceil(T / w), for w = {w1} and w = {w2}.")
