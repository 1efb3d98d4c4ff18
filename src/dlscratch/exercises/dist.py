r"""Exercise checkers for chapter 37, "Scaling out" (topic prefix ``dist.``).

The function checker runs the package's own tested
:func:`~dlscratch.training.parallel.zero.zero_bytes_formula` on seeded random sizes; the
checkpointing checker measures the answer with
:class:`~dlscratch.training.parallel.recompute.SavedTensorMeter`; the others recompute the answer
from the formulas. A wrong answer gets a hint. The reference solutions live in the tests.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from torch import nn

from ..training.parallel.recompute import SavedTensorMeter, checkpoint_sequential
from ..training.parallel.zero import zero_bytes_formula
from .answers import require_callable, require_number
from .core import exercise

__all__ = ["CKPT_VALUES", "BUBBLE_VALUES", "check_zero_bytes", "check_ckpt_peak", "check_bubble_micro_batches",
           "check_tp_allreduces", "measure_ckpt_peak"]

# dist.ckpt_peak: a stack of `layers` blocks Linear(width, width) + GELU, float32, batch rows, `segments` segments
CKPT_VALUES = {"layers": 16, "segments": 4, "batch": 32, "width": 64}
# dist.bubble: the pipeline depth and the largest bubble allowed
BUBBLE_VALUES = {"stages": 8, "max_bubble": 0.05}


def measure_ckpt_peak(layers: int, segments: int, batch: int, width: int) -> int:
    r"""Peak bytes of saved activations over a forward and backward pass of the exercise's stack (``segments=0``: no checkpointing)."""
    torch.manual_seed(0)
    stack = [nn.Sequential(nn.Linear(width, width), nn.GELU()) for _ in range(layers)]
    params = [p for block in stack for p in block.parameters()]
    x = torch.randn(batch, width, requires_grad=True)
    with SavedTensorMeter(params) as meter:
        y = nn.Sequential(*stack)(x) if segments == 0 else checkpoint_sequential(stack, segments, x)
        y.sum().backward()
    return meter.peak


@exercise("dist.zero_bytes")
def check_zero_bytes(answer: Any) -> None:
    r"""``answer(n_params, stage, world_size)``: the ZeRO paper's mixed-precision bytes per rank."""
    fn = require_callable(answer, "my_zero_bytes")
    rng = random.Random(37)
    cases = [(rng.randint(1, 10**9), stage, rng.choice([2, 4, 8, 64, 1024])) for stage in (0, 1, 2, 3, 0, 1, 2, 3)]
    got = [require_number(fn(psi, stage, n), "the bytes per rank") for psi, stage, n in cases]

    def matches(formula: Any) -> bool:
        return all(math.isclose(g, formula(psi, stage, n), rel_tol=1e-9) for g, (psi, stage, n) in zip(got, cases))

    if matches(lambda psi, stage, n: zero_bytes_formula(psi, stage, n, mixed_precision=True)):
        return
    if matches(zero_bytes_formula):
        raise AssertionError("that is the fp32 count (4 bytes each of weights, gradients, momentum, variance); the paper's "
                             "mixed precision has 2-byte weights and gradients and 12 bytes of optimizer state per parameter.")
    if matches(lambda psi, stage, n: zero_bytes_formula(psi, {1: 2, 2: 1}.get(stage, stage), n, mixed_precision=True)):
        raise AssertionError("stages 1 and 2 swapped: stage 1 shards the optimizer state only, stage 2 the gradients as well.")
    bad = next((c, g) for c, g in zip(cases, got) if not math.isclose(g, zero_bytes_formula(*c, mixed_precision=True), rel_tol=1e-9))
    (psi, stage, n), value = bad
    if stage == 3 and math.isclose(value, 16 * psi, rel_tol=1e-9):
        raise AssertionError("at stage 3 the fp16 weights are sharded too: nothing is left replicated.")
    raise AssertionError(f"wrong for n_params={psi}, stage={stage}, world_size={n} (got {value:g}): build it from "
                         "2 (weights) + 2 (gradients) + 12 (optimizer) bytes per parameter, with the sharded parts divided by N.")


@exercise("dist.ckpt_peak")
def check_ckpt_peak(answer: Any) -> None:
    r"""The peak saved-activation bytes of the ``CKPT_VALUES`` stack with checkpointing, as measured."""
    got = require_number(answer, "the peak bytes")
    v = CKPT_VALUES
    want = measure_ckpt_peak(**v)
    if math.isclose(got, want, rel_tol=1e-6):
        return
    act = v["batch"] * v["width"] * 4  # one (B, width) float32 tensor
    per_layer = 2 * act  # the Linear's input and the GELU's input
    if math.isclose(got, measure_ckpt_peak(v["layers"], 0, v["batch"], v["width"]), rel_tol=1e-6):
        raise AssertionError("that is the peak without checkpointing: every layer keeps its activations until its backward step.")
    if math.isclose(got, v["segments"] * act + v["layers"] // v["segments"] * per_layer, rel_tol=1e-6):
        raise AssertionError("close: the last segment runs without Recompute (its backward comes first), so its input is not "
                             "saved as a checkpoint; only the other segments' inputs are.")
    raise AssertionError(f"{got:g} is not it. Count in (B, width) float32 tensors of {act} bytes: each layer saves two "
                         "(Linear input, GELU input); a checkpointed segment saves one (its input) until its backward step.")


@exercise("dist.bubble")
def check_bubble_micro_batches(answer: Any) -> None:
    r"""The fewest micro-batches that keep GPipe's bubble :math:`(p-1)/(m+p-1)` at or below the bound."""
    got = require_number(answer, "the number of micro-batches")
    p, b = BUBBLE_VALUES["stages"], BUBBLE_VALUES["max_bubble"]
    want = math.ceil((p - 1) * (1 - b) / b - 1e-9)
    if got == want:
        return
    if got == want - 1 or (got < want and got > 0 and (p - 1) / (got + p - 1) > b):
        raise AssertionError(f"with m = {got:g} the bubble is {(p - 1) / (got + p - 1):.4f}, above {b}: round up.")
    if math.isclose(got, (p - 1) / b, rel_tol=1e-6):
        raise AssertionError("that solves (p - 1)/m <= bound; the denominator is m + p - 1 (the ramp-up adds p - 1 slots).")
    raise AssertionError(f"{got:g} is not it: solve (p - 1)/(m + p - 1) <= {b} for the smallest integer m.")


@exercise("dist.tp_allreduces")
def check_tp_allreduces(answer: Any) -> None:
    r"""All-reduces per Transformer block per training step under Megatron tensor parallelism: 2 forward + 2 backward."""
    got = require_number(answer, "the number of all-reduces")
    if got == 4:
        return
    if got == 2:
        raise AssertionError("that is the forward pass (one g after attention, one after the MLP); the backward pass "
                             "has its own, in the two f operators.")
    if got == 8:
        raise AssertionError("each f and each g communicates in one direction only: f in backward, g in forward.")
    raise AssertionError(f"{got:g} is not it: count the f and g operators of one block, and in which pass each communicates.")
