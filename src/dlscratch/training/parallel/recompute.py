r"""Gradient checkpointing: keep a few activations, recompute the rest in the backward pass.

Backpropagation through :math:`n` layers keeps every layer's saved activations until its
backward step: memory :math:`O(n)`. Chen et al. (2016) keep only the inputs of :math:`k`
segments of :math:`n/k` layers and, in the backward pass, rerun each segment's forward pass
(now recording) just before its backward pass. The peak holds :math:`k` segment inputs plus one
segment's activations,

.. math::

    M(k) \approx k + \frac{n}{k} \quad\text{(in layer activations)}, \qquad
    \min_k M(k) = 2\sqrt{n} \;\text{ at }\; k = \sqrt{n},

for one extra forward pass, about a third more compute. :class:`Recompute` is our segment,
:func:`checkpoint_sequential` cuts a stack into segments, and :class:`SavedTensorMeter`
measures the activation memory autograd holds. Chapter 37, *Scaling out*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["Recompute", "checkpoint_sequential", "SavedTensorMeter"]


class Recompute(torch.autograd.Function):
    r"""Run ``module(x)`` without recording; in backward, rerun it recording and backpropagate through it.

    Only ``x`` is saved. The module's parameter gradients accumulate into their ``.grad`` during
    the inner ``torch.autograd.backward`` (as ``torch.utils.checkpoint`` with ``use_reentrant=True``).
    Modules with randomness (dropout) would need their random state replayed; ours have none.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, module: nn.Module) -> torch.Tensor:  # type: ignore[override]
        r"""``module(x)`` under ``torch.no_grad()``; only ``x`` is saved."""
        ctx.module = module
        ctx.save_for_backward(x)
        with torch.no_grad():
            return module(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:  # type: ignore[override]
        r"""Recompute ``module(x)`` recording, backpropagate ``grad`` through it, return the input's gradient."""
        (x,) = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            y = ctx.module(x)  # the forward again, this time recording
        torch.autograd.backward(y, grad)
        return x.grad, None


def checkpoint_sequential(layers: Sequence[nn.Module], segments: int, x: torch.Tensor) -> torch.Tensor:
    r"""Run ``layers`` in ``segments`` runs of consecutive layers, each a :class:`Recompute` but the last.

    The last segment runs normally, since its backward comes first and would be recomputed at
    once (``torch.utils.checkpoint.checkpoint_sequential`` does the same).

    Raises:
        ValueError: if ``segments`` is not in :math:`[1, n]` for :math:`n` layers.
    """
    layers = list(layers)
    if not 1 <= segments <= len(layers):
        raise ValueError(f"segments must be in [1, {len(layers)}] for {len(layers)} layers, got {segments}")
    size = math.ceil(len(layers) / segments)
    chunks = [nn.Sequential(*layers[i : i + size]) for i in range(0, len(layers), size)]
    for chunk in chunks[:-1]:
        x = Recompute.apply(x, chunk)
    return chunks[-1](x)


class _Saved:
    __slots__ = ("tensor", "key", "meter")

    def __init__(self, tensor: torch.Tensor, key: int, meter: SavedTensorMeter) -> None:
        self.tensor, self.key, self.meter = tensor, key, meter

    def __del__(self) -> None:
        self.meter._release(self.key)


class SavedTensorMeter:
    r"""Measure the bytes of the tensors autograd saves for backward: now and at the peak.

    A ``torch.autograd.graph.saved_tensors_hooks`` context: every tensor an operation saves for
    its backward passes through the pack hook, which counts its storage (each storage once,
    however many operations save it; parameters excluded, since they are held anyway) and wraps
    it in a handle; when autograd frees the saved tensor after its backward step, the handle is
    deleted and the storage uncounted. ``peak`` is the largest total seen, across the forward
    pass and the backward pass (recomputation included).

    Args:
        exclude: tensors not to count (the model's parameters).
    """

    def __init__(self, exclude: Sequence[torch.Tensor] = ()) -> None:
        self.skip = {t.untyped_storage().data_ptr() for t in exclude}
        self.live: dict[int, list[int]] = {}  # storage -> [bytes, references]
        self.current = self.peak = 0
        self._hooks: Any = None

    def _pack(self, t: torch.Tensor) -> Any:
        key = t.untyped_storage().data_ptr()
        if key in self.skip:
            return t
        if key not in self.live:
            self.live[key] = [t.untyped_storage().nbytes(), 0]
            self.current += self.live[key][0]
            self.peak = max(self.peak, self.current)
        self.live[key][1] += 1
        return _Saved(t, key, self)

    @staticmethod
    def _unpack(h: Any) -> torch.Tensor:
        return h.tensor if isinstance(h, _Saved) else h

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.current -= entry[0]
                del self.live[key]

    def __enter__(self) -> SavedTensorMeter:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)
