r"""What a computation costs: its best wall-clock time and the peak memory it allocates.

* :func:`best_seconds`: the fastest of several timed calls, after one untimed warm-up.
* :func:`time_forward_backward`: the best forward-and-backward time of several layers on one
  input, measured in turns so that a change of the machine's speed hits them all alike (chapter
  20, *Normalization and activations*; ``bench/norm_speed.py``).
* :func:`peak_memory_bytes`: the most bytes of tensor memory the call held at once, above what
  was allocated before it. On a GPU, ``torch.cuda.max_memory_allocated``; on a CPU, the
  allocation timeline of ``torch.profiler.profile(profile_memory=True)``: every allocation and
  release of the CPU allocator during the call, summed in order, and the maximum taken. Both
  count tensor storages (intermediates included, the inputs not), not the Python heap.

Introduced in chapter 19, *MQA, GQA and sliding-window attention*.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn

__all__ = ["best_seconds", "forward_backward", "peak_memory_bytes", "time_forward_backward"]


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], object], repeats: int = 3, device: torch.device | None = None) -> float:
    r"""The shortest of ``repeats`` timed calls of ``fn()``, after one untimed call.

    The minimum is the least disturbed by other work on the machine. On CUDA the device is
    synchronised around each call.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got repeats={repeats!r}")
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | None = None) -> int:
    r"""The peak of tensor bytes allocated by ``fn()`` and alive at the same time (its result included).

    .. math::

        \text{peak} = \max_t \sum_{\text{events } e \le t} \pm\, \text{size}(e)

    over the allocator's allocation (+) and release (−) events during the call. On CUDA it is
    ``max_memory_allocated`` minus the memory allocated before the call.
    """
    if device is not None and device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return int(peak)
    os.environ.setdefault("KINETO_LOG_LEVEL", "99")  # silence the profiler's start/stop lines on stderr
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        out = fn()
    del out
    live = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:  # (time, action, (tensor, version), bytes)
        if action == Action.CREATE:
            live += size
        elif action == Action.DESTROY:
            live -= size
        peak = max(peak, live)
    return int(peak)


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
