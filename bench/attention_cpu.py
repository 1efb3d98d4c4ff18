"""Benchmark: hand-written attention vs PyTorch's fused SDPA, and fp32 vs bf16 matmuls, on this CPU.

Prints a table; asserts nothing. Usage::

    python bench/attention_cpu.py [--repeats 20] [--threads N]

Columns: the shape (B, nh, T, hs), milliseconds per forward call for ``dlscratch``'s
``scaled_dot_product_attention`` (which materialises the (T, T) weight matrix) and for
``torch.nn.functional.scaled_dot_product_attention`` (fused), and their ratio. Then the
throughput of a square matmul in fp32 and bf16, which tells whether this CPU has fast bf16
units (AMX and AVX512-BF16 make bf16 several times faster; without them it is slower).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from dlscratch.layers.attention import scaled_dot_product_attention


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads\n")
    print(f"{'B, nh, T, hs':<18}{'ours ms':>10}{'SDPA ms':>10}{'ratio':>8}")
    with torch.inference_mode():
        for B, nh, T, hs in [(8, 4, 64, 32), (8, 8, 256, 64), (4, 8, 512, 64), (1, 8, 1024, 64)]:
            q, k, v = (torch.randn(B, nh, T, hs) for _ in range(3))
            ours = best_ms(lambda: scaled_dot_product_attention(q, k, v, is_causal=True), args.repeats)
            ref = best_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), args.repeats)
            print(f"{f'{B}, {nh}, {T}, {hs}':<18}{ours:>10.2f}{ref:>10.2f}{ours / ref:>8.2f}")
        print(f"\n{'matmul n':<10}{'fp32 GFLOP/s':>14}{'bf16 GFLOP/s':>14}{'bf16 speed-up':>15}")
        for n in (512, 1024, 2048):
            a, b = torch.randn(n, n), torch.randn(n, n)
            flops = 2 * n**3
            f32 = best_ms(lambda: a @ b, args.repeats)
            a16, b16 = a.bfloat16(), b.bfloat16()
            b16ms = best_ms(lambda: a16 @ b16, args.repeats)
            print(f"{n:<10}{flops / f32 / 1e6:>14.1f}{flops / b16ms / 1e6:>14.1f}{f32 / b16ms:>15.2f}")


if __name__ == "__main__":
    main()
