r"""What a computation costs: its best wall-clock time and the peak memory it allocates.

* :func:`best_seconds`: the fastest of several timed calls, after one untimed warm-up.
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
from collections.abc import Callable

import torch

__all__ = ["best_seconds", "peak_memory_bytes"]


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
