r"""Exercise checkers for chapter 5, "WaveNet" (topic prefix ``wavenet.``).

Every checker recomputes the answer independently (torch's own layers, plain slicing) and raises
:class:`AssertionError` with a hint when the reader's answer differs. The reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .answers import require_callable
from .core import NotAttempted, exercise

__all__ = [
    "EX_BLOCK",
    "EX_EMBD",
    "EX_HIDDEN",
    "RF_LEVEL",
    "RF_POSITION",
    "check_param_count",
    "check_flatten_consecutive",
    "check_receptive_field",
    "check_batchnorm_3d",
]

# wavenet.param_count: a hierarchical model fusing pairs, with these sizes and V = 27
EX_BLOCK = 16
EX_EMBD = 10
EX_HIDDEN = 64
# wavenet.receptive_field: which of the 8 input characters reach this position of this level
RF_LEVEL = 2  # output of the second FlattenConsecutive -> Linear -> BatchNorm1d -> Tanh, shape (B, 2, H)
RF_POSITION = 1


@exercise("wavenet.param_count")
def check_param_count(answer: Any) -> None:
    r"""Parameters of the WaveNet-style model with ``block_size=EX_BLOCK`` (pairs fused), ``EX_EMBD``, ``EX_HIDDEN``."""
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise AssertionError(f"give the count as an int, got {answer!r}.")
    modules = [nn.Embedding(27, EX_EMBD)]
    width, t = EX_EMBD, EX_BLOCK
    while t > 1:
        modules += [nn.Linear(2 * width, EX_HIDDEN, bias=False), nn.BatchNorm1d(EX_HIDDEN)]
        width, t = EX_HIDDEN, t // 2
    modules.append(nn.Linear(EX_HIDDEN, 27))
    want = sum(p.numel() for m in modules for p in m.parameters())
    levels = (len(modules) - 2) // 2
    if answer == want:
        return
    if answer == want + levels * EX_HIDDEN:
        raise AssertionError("the Linear before each batch norm has no bias.")
    if answer == want - levels * 2 * EX_HIDDEN:
        raise AssertionError("each batch norm trains a gain and a bias per channel: count them.")
    if answer == want - (levels - 1) * 2 * EX_HIDDEN * EX_HIDDEN:
        raise AssertionError(f"{EX_BLOCK} characters need {levels} levels of pairwise fusion, not one.")
    raise AssertionError(
        f"log2({EX_BLOCK}) = {levels} levels: the first Linear sees 2 x n_embd inputs, the others 2 x n_hidden; "
        "add the table, the batch norms and the output layer."
    )


def _reference_flatten(x: torch.Tensor, n: int) -> torch.Tensor:
    B, T, C = x.shape
    groups = [torch.cat([x[:, t + k] for k in range(n)], dim=-1) for t in range(0, T, n)]  # each (B, n*C)
    out = torch.stack(groups, dim=1)  # (B, T/n, n*C)
    return out[:, 0] if out.shape[1] == 1 else out


@exercise("wavenet.flatten_consecutive")
def check_flatten_consecutive(answer: Any) -> None:
    r"""``answer(x, n)``: ``(B, T, C) → (B, T/n, nC)``, dropping the time dimension when it becomes 1."""
    fn = require_callable(answer, "flatten_consecutive")
    g = torch.Generator().manual_seed(3)
    for B, T, C, n in [(4, 8, 3, 2), (2, 8, 5, 8), (3, 6, 2, 3), (2, 2, 7, 2)]:
        x = torch.randn(B, T, C, generator=g)
        got = fn(x.clone(), n)
        if got is None:
            raise NotAttempted
        want = _reference_flatten(x, n)
        if tuple(got.shape) != tuple(want.shape):
            if got.ndim == 3 and got.shape[1] == 1:
                raise AssertionError(f"for T = n = {n} drop the time dimension: expected {tuple(want.shape)}.")
            raise AssertionError(f"for x of shape {(B, T, C)} and n={n} expected shape {tuple(want.shape)}, got {tuple(got.shape)}.")
        if not torch.equal(got, want):
            raise AssertionError("right shape, wrong values: group k must hold positions k*n ... k*n+n-1 side by side.")
    x = torch.randn(2, 5, 8, generator=g).transpose(1, 2)  # (2, 8, 5), not contiguous
    try:
        got = fn(x, 2)
    except RuntimeError as err:
        raise AssertionError(f"your function fails on a non-contiguous input ({err}); use .reshape instead of .view.") from err
    if not torch.equal(got, _reference_flatten(x, 2)):
        raise AssertionError("wrong values for a non-contiguous (transposed) input.")


@exercise("wavenet.receptive_field")
def check_receptive_field(answer: Any) -> None:
    r"""The input positions (0-7) that position ``RF_POSITION`` of level ``RF_LEVEL`` depends on."""
    if isinstance(answer, (int, str)) or not hasattr(answer, "__iter__"):
        raise AssertionError(f"give the positions as a tuple of ints, e.g. (0, 1), not {answer!r}.")
    got = tuple(sorted(int(i) for i in answer))
    pos = torch.arange(8).view(1, 8, 1)  # each position carries its own index
    for _ in range(RF_LEVEL):
        pos = pos.reshape(1, pos.shape[1] // 2, -1)  # a level fuses neighbouring pairs
    want = tuple(pos[0, RF_POSITION].tolist())
    if got == want:
        return
    if len(got) != len(want):
        raise AssertionError(f"each level doubles the span: after {RF_LEVEL} levels a position sees {len(want)} characters.")
    raise AssertionError("right span, wrong place: positions are numbered from 0 and groups do not overlap.")


@exercise("wavenet.batchnorm_3d")
def check_batchnorm_3d(answer: Any) -> None:
    r"""``answer(x, gamma, beta, eps)``: training-mode batch norm of ``(N, C, L)`` input (torch's layout), one statistic per channel."""
    fn = require_callable(answer, "batchnorm_3d")
    g = torch.Generator().manual_seed(9)
    x = torch.randn(6, 5, 4, generator=g, dtype=torch.float64) * torch.linspace(1, 3, 4, dtype=torch.float64) + torch.arange(4.0, dtype=torch.float64)  # (N, C, L)
    gamma = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
    beta = torch.randn(5, generator=g, dtype=torch.float64)
    got = fn(x.clone(), gamma.clone(), beta.clone(), 1e-5)
    if got is None:
        raise NotAttempted
    got = torch.as_tensor(got, dtype=torch.float64)
    want = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)
    gamma, beta = gamma[:, None], beta[:, None]  # (C, 1): broadcast over the positions, for the hints
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"the output has the shape of the input {tuple(x.shape)}, got {tuple(got.shape)}.")
    if torch.allclose(got, want, atol=1e-8):
        return
    mean, var = x.mean(0, keepdim=True), x.var(0, keepdim=True, unbiased=False)
    if torch.allclose(got, gamma * (x - mean) / torch.sqrt(var + 1e-5) + beta, atol=1e-8):
        raise AssertionError("you reduced over dim 0 only: each position got its own statistics. Reduce over (0, 2).")
    unbiased = x.var((0, 2), keepdim=True, unbiased=True)
    if torch.allclose(got, gamma * (x - x.mean((0, 2), keepdim=True)) / torch.sqrt(unbiased + 1e-5) + beta, atol=1e-8):
        raise AssertionError("normalise with the biased variance (unbiased=False), as torch does in training mode.")
    raise AssertionError("compute the mean and biased variance over dims (0, 2), normalise, then scale by gamma and add beta.")
