r"""Timing a layer's forward and backward pass, several candidates interleaved.

Introduced in chapter 20 (*Normalization and activations*), to measure whether RMSNorm is faster
than LayerNorm; ``bench/norm_speed.py`` runs the same measurement at more sizes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["forward_backward", "time_forward_backward"]


def forward_backward(module: nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> None:
    r"""One training step's worth of work for ``module``: ``y = module(x)``, then the backward pass of ``y``.

    ``x`` should require gradients, so the backward pass computes the input's gradient as well as
    the parameters' (a layer inside a network must pass one on). Gradients are cleared first so
    each call does the same work.
    """
    x.grad = None
    module.zero_grad(set_to_none=True)
    module(x).backward(grad_out)


def time_forward_backward(
    modules: Mapping[str, nn.Module], shape: tuple[int, ...], *, repeats: int = 5, warmup: int = 1,
    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu", seed: int = 0,
) -> dict[str, float]:
    r"""Best wall-clock seconds of :func:`forward_backward` for each module on one random input.

    The candidates run in turns (one call of each per round, ``repeats`` rounds after ``warmup``
    untimed ones), so a change in the machine's speed during the measurement hits all of them
    alike; the fastest round of each is reported, the usual estimate of a kernel's cost free of
    interruptions. On CUDA the device is synchronised around every call.

    Args:
        modules: name to module, each mapping ``(..., C)`` to the same shape.
        shape: the input's shape, e.g. ``(rows, C)``.
        repeats: timed rounds.
        warmup: untimed rounds first (allocations, kernel selection).
        dtype, device: of the input (the modules must already be there).
        seed: of the input and of the output gradient.

    Returns:
        ``{name: seconds}``, the best round of each.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_(True)
    g = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    best = {name: float("inf") for name in modules}
    for r in range(warmup + repeats):
        for name, module in modules.items():
            sync()
            t0 = time.perf_counter()
            forward_backward(module, x, g)
            sync()
            if r >= warmup:
                best[name] = min(best[name], time.perf_counter() - t0)
    return best
