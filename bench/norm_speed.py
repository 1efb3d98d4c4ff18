"""Benchmark: LayerNorm vs RMSNorm, forward + backward, written and fused kernels, on this machine.

Prints a table; asserts nothing. Usage::

    python bench/norm_speed.py [--rows 2048] [--widths 1024 2048 4096] [--repeats 10] [--threads N] [--dtype float32]

For every width C it times one forward and one backward pass (input gradient and gain gradient)
of ``dlscratch``'s written ``LayerNorm`` and ``RMSNorm`` and of their fused twins
(``F.layer_norm``, ``F.rms_norm``), interleaved, best of ``--repeats``
(:func:`dlscratch.training.cost.time_forward_backward`), on a ``(rows, C)`` input, and prints
the ratio LayerNorm time / RMSNorm time of each pair: above 1 means RMSNorm is faster. Chapter
20 records the written pair's ratio as ``norm.rmsnorm.speedup``.
"""

from __future__ import annotations

import argparse
import platform

import torch

from dlscratch.layers import FusedLayerNorm, FusedRMSNorm, LayerNorm, RMSNorm
from dlscratch.training.cost import time_forward_backward


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2048, help="tokens per call (batch x sequence length)")
    parser.add_argument("--widths", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float64"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{cpu_name()}, {args.threads} threads"
    print(f"torch {torch.__version__}, {where}, {args.dtype}, {args.rows} rows\n")
    print(f"{'C':>6}{'LN ms':>9}{'RMS ms':>9}{'ratio':>7}{'fused LN':>10}{'fused RMS':>11}{'ratio':>7}")
    for C in args.widths:
        mods = {"ln": LayerNorm(C), "rms": RMSNorm(C), "fln": FusedLayerNorm(C), "frms": FusedRMSNorm(C)}
        mods = {k: m.to(args.device, dtype) for k, m in mods.items()}
        t = {k: 1e3 * v for k, v in time_forward_backward(mods, (args.rows, C), repeats=args.repeats, dtype=dtype, device=args.device).items()}
        print(f"{C:>6}{t['ln']:>9.2f}{t['rms']:>9.2f}{t['ln'] / t['rms']:>7.2f}{t['fln']:>10.2f}{t['frms']:>11.2f}{t['fln'] / t['frms']:>7.2f}")


if __name__ == "__main__":
    main()
