r"""Exercise checkers for chapter 5, "WaveNet" (topic prefix ``wavenet.``).

Every checker recomputes the answer with the package's tested code (``FlattenConsecutive`` and
``Linear`` of :mod:`dlscratch.layers.mini_nn`, :class:`~dlscratch.models.WaveNet` and the
``num_params`` of its config and of :class:`~dlscratch.models.MLPLMConfig`) and raises
:class:`AssertionError` with a hint when the reader's answer differs. The reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..layers.mini_nn import FlattenConsecutive, Linear
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "LEAK_LEVEL",
    "LEAK_POSITION",
    "CROSSOVER_CONTEXTS",
    "check_conv_weight",
    "check_gradient_leak",
    "check_param_crossover",
    "gradient_positions",
    "param_crossover",
]

# wavenet.gradient_leak: backpropagate from position LEAK_POSITION of level LEAK_LEVEL, example 0
LEAK_LEVEL = 2
LEAK_POSITION = 1
CROSSOVER_CONTEXTS = tuple(2**k for k in range(1, 13))  # wavenet.param_crossover: the contexts compared


@exercise("wavenet.conv_weight")
def check_conv_weight(answer: Any) -> None:
    r"""``answer(W, C)`` turns a level's ``(2C, H)`` Linear weight into the ``(H, C, 2)`` weight of an equivalent
    ``F.conv1d(..., stride=2)``; checked against the package's ``FlattenConsecutive(2)`` and ``Linear``."""
    fn = require_callable(answer, "conv_weight")
    gen = torch.Generator().manual_seed(5)
    for B, T, C, H in ((3, 8, 4, 6), (2, 2, 5, 3), (1, 4, 1, 2)):
        lin = Linear(2 * C, H, bias=False, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(2 * C, H, generator=gen, dtype=torch.float64))
        W = lin.weight.detach()
        h = torch.randn(B, T, C, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            want = lin(FlattenConsecutive(2)(h))  # (B, T/2, H) or (B, H)
        k = fn(W.clone(), C)
        if not isinstance(k, torch.Tensor):
            raise AssertionError(f"return a tensor, got {type(k).__name__}.")
        if tuple(k.shape) != (H, C, 2):
            raise AssertionError(
                f"F.conv1d wants (out_channels, in_channels, kernel_size) = ({H}, {C}, 2) for C = {C}, H = {H}; "
                f"got {tuple(k.shape)}."
            )
        k = k.detach().to(torch.float64)
        got = F.conv1d(h.transpose(1, 2), k, stride=2).transpose(1, 2)  # (B, C, T) -> (B, H, T/2) -> (B, T/2, H)
        if torch.allclose(got.reshape(want.shape), want, atol=1e-10):
            continue
        if torch.allclose(k, W.T.reshape(H, C, 2), atol=1e-12) and C > 1:
            raise AssertionError(
                "row k*C + c of W belongs to kernel tap k and channel c (positions are side by side, channels "
                "inside): reshape W.T to (H, 2, C) first, then swap the last two dimensions."
            )
        if torch.allclose(k.flip(-1), W.T.reshape(H, 2, C).transpose(1, 2), atol=1e-12):
            raise AssertionError("the kernel taps are swapped: conv1d does not flip its kernel, tap 0 multiplies position 2t.")
        raise AssertionError(
            f"wrong weights for C = {C}, H = {H}: tap k, channel c of output unit j must hold W[k * C + c, j]."
        )


def gradient_positions(training: bool, batch: int = 32, seed: int = 0) -> tuple[int, ...]:
    r"""Positions of example 0 whose embedding gets a nonzero gradient from ``h[0, LEAK_POSITION]`` of level ``LEAK_LEVEL``."""
    from ..models.wavenet import WaveNet, WaveNetConfig

    torch.manual_seed(seed)
    model = WaveNet(WaveNetConfig())
    model.train(training)
    x = torch.randint(0, 27, (batch, 8))
    outs = model.layers.outputs(x)
    emb = outs[0]  # (B, 8, E)
    emb.retain_grad()
    tanhs = [o for layer, o in zip(model.layers, outs) if type(layer).__name__ == "Tanh"]
    tanhs[LEAK_LEVEL - 1][0, LEAK_POSITION].sum().backward()
    return tuple((emb.grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist())


def _positions(value: Any, key: str) -> tuple[int, ...]:
    if isinstance(value, (int, str)) or not hasattr(value, "__iter__"):
        raise AssertionError(f"answer[{key!r}]: give the positions as a tuple of ints, e.g. (0, 1), not {value!r}.")
    try:
        return tuple(sorted(int(i) for i in value))
    except (TypeError, ValueError) as err:
        raise AssertionError(f"answer[{key!r}]: every position is an int from 0 to 7, got {value!r}.") from err


@exercise("wavenet.gradient_leak")
def check_gradient_leak(answer: Any) -> None:
    r"""``{"train": ..., "eval": ...}``: the input positions of example 0 that position 1 of level 2 depends on, by mode."""
    if not isinstance(answer, dict) or set(answer) != {"train", "eval"}:
        raise AssertionError('give a dict {"train": positions, "eval": positions}, each a tuple of ints.')
    got = {k: _positions(answer[k], k) for k in ("train", "eval")}
    want = {"train": gradient_positions(True), "eval": gradient_positions(False)}
    if got == want:
        return
    if got["eval"] != want["eval"]:
        raise AssertionError(
            "eval: with fixed running statistics every position depends only on the characters below it in the tree, "
            "eq. (receptive): 2^l * t up to 2^l * (t + 1) - 1."
        )
    raise AssertionError(
        "train: batch norm computes its mean and variance over the batch and the positions, so every position of "
        "every example feeds into the statistics that normalise this one. Measure it: the gradient is small there, "
        "but not zero."
    )


def param_crossover() -> int:
    r"""The smallest context in :data:`CROSSOVER_CONTEXTS` at which chapter 4's flat MLP has more parameters than the WaveNet."""
    from ..models.mlp_lm import MLPLMConfig
    from ..models.wavenet import WaveNetConfig

    base = WaveNetConfig()
    for T in CROSSOVER_CONTEXTS:
        flat = MLPLMConfig(block_size=T, n_embd=base.n_embd, n_hidden=base.n_hidden).num_params
        if flat > WaveNetConfig(block_size=T).num_params:
            return T
    raise RuntimeError("no crossover in CROSSOVER_CONTEXTS")


@exercise("wavenet.param_crossover")
def check_param_crossover(answer: Any) -> None:
    r"""The smallest power-of-two context at which the flat MLP (same ``E``, ``H``) outgrows the hierarchical model."""
    got = require_number(answer, "the context length")
    want = param_crossover()
    if got == want:
        return
    if got not in CROSSOVER_CONTEXTS:
        raise AssertionError("give the context length, a power of 2 (both models need one here).")
    if got < want:
        raise AssertionError(
            f"at a context of {got:g} the flat model is still the smaller one: the WaveNet pays 2H^2 per level "
            "beyond the first, the flat model only E*H per character."
        )
    raise AssertionError(
        f"the flat model overtakes before {got:g}: compare the two counts at every power of 2 below it "
        "(the flat model grows by E*H per character, the WaveNet by 2H^2 + 2H per doubling)."
    )
