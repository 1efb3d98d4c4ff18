"""Benchmark: banded sliding-window attention vs the masked full matrix, time and peak memory.

Prints a table; asserts nothing. Usage::

    python bench/swa_cpu.py [--window 256] [--lengths 512 1024 2048 4096] [--heads 4] [--head-size 64]
                            [--repeats 3] [--backward] [--threads N]

For each length T it runs ``attend_written`` (chapter 11's attention: the whole (T, T) score
matrix, all but a band of width w masked) and ``attend_banded`` (blocks of w queries against
2w keys) on the same random queries, keys and values, batch 1, float32, and prints the best of
``--repeats`` wall-clock times (after one untimed call, :func:`dlscratch.training.cost.best_seconds`)
and the peak of tensor bytes allocated during one call
(:func:`dlscratch.training.cost.peak_memory_bytes`: the CPU allocator's timeline from
``torch.profiler``, or ``torch.cuda.max_memory_allocated`` on a GPU), with their ratios.
``--backward`` measures forward plus backward instead of the forward pass alone. Chapter 19.
"""

from __future__ import annotations

import argparse

import torch

from dlscratch.layers import attend_banded, attend_written
from dlscratch.training.cost import best_seconds, peak_memory_bytes
from dlscratch.utils import device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = device()
    kw = {"mask": None, "causal": True, "offset": 0, "window": args.window, "bias": None, "dropout_p": 0.0}
    print(f"device {dev}, window {args.window}, heads {args.heads}, head size {args.head_size}, "
          f"{'forward + backward' if args.backward else 'forward'}")
    print(f"{'T':>6} {'full ms':>9} {'banded ms':>10} {'speed-up':>9} {'full MiB':>9} {'banded MiB':>11} {'ratio':>6}")
    for T in args.lengths:
        q, k, v = (torch.randn(1, args.heads, T, args.head_size, device=dev, requires_grad=args.backward) for _ in range(3))

        def run(attend):
            def call():
                with torch.set_grad_enabled(args.backward):
                    out = attend(q, k, v, **kw)[0]
                    if args.backward:
                        out.sum().backward()
                return out
            return call

        t_full, t_band = (best_seconds(run(f), args.repeats, dev) for f in (attend_written, attend_banded))
        m_full, m_band = (peak_memory_bytes(run(f), dev) for f in (attend_written, attend_banded))
        print(f"{T:>6} {t_full * 1e3:>9.1f} {t_band * 1e3:>10.1f} {t_full / t_band:>8.1f}x "
              f"{m_full / 2**20:>9.1f} {m_band / 2**20:>11.1f} {m_full / m_band:>5.1f}x")


if __name__ == "__main__":
    main()
