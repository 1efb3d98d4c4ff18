"""Benchmark: the sequential, Hillis-Steele and Blelloch scans of h_t = a_t h_{t-1} + b_t, time per call.

Prints a table; asserts nothing but the equality of the three (<= 1e-5 in float32). Usage::

    python bench/scan_cpu.py [--lengths 64 256 1024 4096] [--batch 4] [--channels 32] [--state 16]
                             [--repeats 3] [--forward-only] [--threads N]

For each length T it draws decays a in (0.5, 1) and inputs b of shape (batch, T, channels, state)
(a Mamba layer's (B, T, D_inner, N)), checks that the parallel scans equal the sequential one, and
prints the best of ``--repeats`` wall-clock times of forward plus backward (or the forward pass
alone) after one untimed call (:func:`dlscratch.training.cost.best_seconds`). Chapter 25.
"""

from __future__ import annotations

import argparse

import torch

from dlscratch.layers.scan import SCANS
from dlscratch.training.cost import best_seconds
from dlscratch.utils import device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--forward-only", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = device()
    backward = not args.forward_only
    print(f"device {dev}, (B, D, N) = ({args.batch}, {args.channels}, {args.state}), {'forward + backward' if backward else 'forward'}")
    print(f"{'T':>6} " + " ".join(f"{name + ' ms':>17}" for name in SCANS) + f" {'max |diff|':>11}")
    for T in args.lengths:
        shape = (args.batch, T, args.channels, args.state)
        a = (torch.rand(shape, device=dev) * 0.5 + 0.5).requires_grad_(backward)
        b = torch.randn(shape, device=dev, requires_grad=backward)
        with torch.no_grad():
            ref = SCANS["sequential"](a, b)
            gap = max((scan(a, b) - ref).abs().max().item() for scan in SCANS.values())
        assert gap <= 1e-5, gap

        def run(scan):
            def call():
                with torch.set_grad_enabled(backward):
                    h = scan(a, b)
                    if backward:
                        h.sum().backward()
            return call

        ms = [1e3 * best_seconds(run(scan), args.repeats, dev) for scan in SCANS.values()]
        print(f"{T:>6} " + " ".join(f"{t:>17.2f}" for t in ms) + f" {gap:>11.1e}")


if __name__ == "__main__":
    main()
