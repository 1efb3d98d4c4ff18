"""Benchmark: naive vs tiled (FlashAttention) attention, and linear vs softmax attention, time and peak memory.

Prints tables; asserts nothing. Usage::

    python bench/flash_cpu.py [--lengths 512 1024 2048 4096 8192] [--heads 1] [--head-size 64] [--block 256]
                              [--repeats 2] [--backward] [--linear-lengths 128 256 512 1024 2048 4096]
                              [--generate 1024] [--threads N]

Part 1, for each length T: chapter 11's ``scaled_dot_product_attention`` (the whole (T, T) score
matrix and its softmax) and ``flash_attention`` (tiles of ``--block`` queries by ``--block`` keys),
both causal, on the same random queries, keys and values, batch 1, float32: the best of
``--repeats`` wall-clock times after one untimed call
(:func:`dlscratch.training.cost.best_seconds`) and the peak of tensor bytes allocated during one
call (:func:`dlscratch.training.cost.peak_memory_bytes`: the CPU allocator's timeline from
``torch.profiler``, ``torch.cuda.max_memory_allocated`` on a GPU), and their ratios.
``--backward`` measures forward plus backward. Part 2: causal linear attention (chunks of 64)
against ``F.scaled_dot_product_attention`` (PyTorch's fused kernel) and the first length where
linear attention is faster. Part 3: generating ``--generate`` tokens through one causal
linear-attention layer, by the recurrent step against recomputing the parallel form on the whole
prefix at each step. Chapter 24.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from dlscratch.layers import flash_attention, linear_attention, linear_attention_step, scaled_dot_product_attention
from dlscratch.training.cost import best_seconds, peak_memory_bytes
from dlscratch.utils import device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--head-size", type=int, default=64)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--linear-lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--generate", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = device()
    nh, hs = args.heads, args.head_size
    print(f"device {dev}, heads {nh}, head size {hs}, tiles {args.block} x {args.block}, "
          f"{'forward + backward' if args.backward else 'forward'}")
    print(f"{'T':>6} {'naive ms':>9} {'tiled ms':>9} {'naive MiB':>10} {'tiled MiB':>10} {'tiled/naive':>12}")
    for T in args.lengths:
        q, k, v = (torch.randn(1, nh, T, hs, device=dev, requires_grad=args.backward) for _ in range(3))

        def run(attend):
            def call():
                with torch.set_grad_enabled(args.backward):
                    out = attend()
                    if args.backward:
                        out.sum().backward()
                return out
            return call

        naive = run(lambda: scaled_dot_product_attention(q, k, v, is_causal=True)[0])
        tiled = run(lambda: flash_attention(q, k, v, causal=True, block_q=args.block, block_k=args.block))
        t_n, t_t = best_seconds(naive, args.repeats, dev), best_seconds(tiled, args.repeats, dev)
        m_n, m_t = peak_memory_bytes(naive, dev), peak_memory_bytes(tiled, dev)
        print(f"{T:>6} {t_n * 1e3:>9.1f} {t_t * 1e3:>9.1f} {m_n / 2**20:>10.1f} {m_t / 2**20:>10.1f} {m_t / m_n:>12.4f}")

    print(f"\ncausal linear attention (chunks of 64) vs F.scaled_dot_product_attention, 4 heads of {hs}")
    print(f"{'T':>6} {'softmax ms':>11} {'linear ms':>10}")
    crossover = None
    with torch.inference_mode():
        for T in args.linear_lengths:
            q, k, v = (torch.randn(1, 4, T, hs, device=dev) for _ in range(3))
            t_s = best_seconds(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 3, dev)
            t_l = best_seconds(lambda: linear_attention(q, k, v, causal=True, chunk=64), 3, dev)
            if crossover is None and t_l < t_s:
                crossover = T
            print(f"{T:>6} {t_s * 1e3:>11.2f} {t_l * 1e3:>10.2f}")
    print(f"linear attention first faster at T = {crossover}")

    n = args.generate
    q, k, v = (torch.randn(1, 4, n, hs, device=dev) for _ in range(3))
    with torch.inference_mode():
        t0 = time.perf_counter()
        state = None
        for t in range(n):
            _, state = linear_attention_step(q[:, :, t], k[:, :, t], v[:, :, t], state)
        t_rec = time.perf_counter() - t0
        t0 = time.perf_counter()
        for t in range(n):
            linear_attention(q[:, :, : t + 1], k[:, :, : t + 1], v[:, :, : t + 1], causal=True)[:, :, -1]
        t_full = time.perf_counter() - t0
    print(f"\ngenerating {n} tokens: recurrent {t_rec:.3f} s, recompute the prefix {t_full:.3f} s, speed-up {t_full / t_rec:.1f}x")


if __name__ == "__main__":
    main()
