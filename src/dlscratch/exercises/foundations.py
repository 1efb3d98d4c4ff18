r"""Exercise checkers for Part I, Foundations (chapter 1, "PyTorch essentials").

Every checker recomputes the answer with torch's own routines (``torch.broadcast_shapes``, strides,
autograd through ``nn.Embedding``, ``F.cross_entropy``) and raises
:class:`AssertionError` with a hint when the reader's answer differs. The reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "BROADCAST_SHAPES",
    "STRIDES_SHAPE",
    "STRIDES_PERMUTATION",
    "CE_CLASSES",
    "check_broadcast_shape",
    "check_strides",
    "check_embedding_grad",
    "check_softmax_ce_floor",
    "softmax_ce_floor",
]

# essentials.broadcast_shape: the shapes of `torch.zeros(*a) + torch.zeros(*b)`
BROADCAST_SHAPES = ((8, 1, 6, 1), (7, 1, 5))
# essentials.strides: `torch.arange(24).view(*STRIDES_SHAPE).permute(*STRIDES_PERMUTATION)`
STRIDES_SHAPE = (2, 3, 4)
STRIDES_PERMUTATION = (2, 0, 1)
CE_CLASSES = 5  # essentials.softmax_ce_floor: number of classes of the perfect classifier


def _as_int_tuple(answer: Any, what: str) -> tuple[int, ...]:
    if isinstance(answer, (int, float, str)) or not hasattr(answer, "__iter__"):
        raise AssertionError(f"give the {what} as a tuple of ints, e.g. (2, 3), not {answer!r}.")
    items = list(answer)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise AssertionError(f"every entry of the {what} must be a Python int, got {answer!r}.")
    return tuple(items)


@exercise("essentials.broadcast_shape")
def check_broadcast_shape(answer: Any) -> None:
    r"""The shape of ``torch.zeros(8, 1, 6, 1) + torch.zeros(7, 1, 5)``."""
    a, b = BROADCAST_SHAPES
    got = _as_int_tuple(answer, "shape")
    want = tuple(torch.broadcast_shapes(a, b))
    if len(got) != len(want):
        raise AssertionError(
            f"the result has {len(want)} dimensions, you gave {len(got)}. Line the shapes up "
            "from the right; the shorter one is padded with 1s on the left."
        )
    if got != want:
        raise AssertionError(
            "compare the shapes dimension by dimension from the right: where one size is 1, "
            "the other size wins."
        )


@exercise("essentials.strides")
def check_strides(answer: Any) -> None:
    r"""The strides of ``torch.arange(24).view(2, 3, 4).permute(2, 0, 1)``."""
    got = _as_int_tuple(answer, "strides")
    want = torch.arange(24).view(*STRIDES_SHAPE).permute(*STRIDES_PERMUTATION).stride()
    if len(got) != len(want):
        raise AssertionError(f"the permuted tensor has {len(want)} dimensions, so it has {len(want)} strides.")
    contiguous = torch.arange(24).view(*STRIDES_SHAPE).stride()
    if got == contiguous:
        raise AssertionError(
            "those are the strides before the permute. permute moves strides along with their "
            "dimensions; it never copies the data."
        )
    if got != want:
        raise AssertionError(
            "first find the strides of the contiguous (2, 3, 4) view (the last dimension has "
            "stride 1), then reorder them with the permutation."
        )


def _embedding_grad_reference(ids: torch.Tensor, grad_out: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    emb = nn.Embedding(num_embeddings, grad_out.size(-1)).double()
    emb(ids).backward(grad_out)
    return emb.weight.grad


@exercise("essentials.embedding_grad")
def check_embedding_grad(answer: Any) -> None:
    r"""``answer(ids, grad_out, num_embeddings)`` returns the gradient of ``nn.Embedding``'s weight, checked against autograd.

    ``ids`` holds token ids of any shape, ``grad_out`` the upstream gradient of shape ``(*ids.shape, C)``;
    the result is the ``(num_embeddings, C)`` gradient of the table. Ids repeat in every case, so an
    answer that assigns instead of accumulating is caught.
    """
    fn = require_callable(answer, "embedding_grad")
    gen = torch.Generator().manual_seed(1)
    for shape, V, C in (((4, 9), 7, 5), ((13,), 4, 3), ((2, 3, 5), 11, 8)):
        ids = torch.randint(0, V, shape, generator=gen)
        grad_out = torch.randn(*shape, C, generator=gen, dtype=torch.float64)
        got = fn(ids.clone(), grad_out.clone(), V)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a tensor, got {type(got).__name__}.")
        if tuple(got.shape) != (V, C):
            raise AssertionError(
                f"the gradient of a ({V}, {C}) table has shape ({V}, {C}), one row per id, got {tuple(got.shape)} "
                f"(ids of shape {shape})."
            )
        got = got.detach().to(torch.float64)
        want = _embedding_grad_reference(ids, grad_out, V)
        if torch.allclose(got, want, atol=1e-10):
            continue
        assigned = torch.zeros(V, C, dtype=torch.float64)
        assigned[ids.flatten()] = grad_out.reshape(-1, C)
        if torch.allclose(got, assigned, atol=1e-10):
            raise AssertionError(
                "an id that is looked up several times receives the upstream gradient of every lookup: "
                "add them (index_add_, section 12), do not assign, which keeps only one of them."
            )
        counts = torch.bincount(ids.flatten(), minlength=V).clamp(min=1)[:, None].to(torch.float64)
        if torch.allclose(got * counts, want, atol=1e-10):
            raise AssertionError("sum the contributions of the repeated ids; nothing in the lookup averages them.")
        raise AssertionError(
            f"wrong gradient (ids of shape {shape}, V={V}, C={C}): row v of the result is the sum of "
            "grad_out over every position whose id is v, and rows never looked up stay zero."
        )


def softmax_ce_floor() -> float:
    r"""``F.cross_entropy`` fed the one-hot probabilities of a perfect classifier over :data:`CE_CLASSES` classes."""
    labels = torch.arange(CE_CLASSES)
    probs = nn.functional.one_hot(labels, CE_CLASSES).to(torch.float64)
    return nn.functional.cross_entropy(probs, labels).item()


@exercise("essentials.softmax_ce_floor")
def check_softmax_ce_floor(answer: Any) -> None:
    r"""The loss that ``F.cross_entropy`` reports for a perfect classifier's probabilities (passed instead of logits)."""
    got = require_number(answer, "the measured loss")
    want = softmax_ce_floor()
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if abs(got) < 1e-3:
        raise AssertionError(
            "0 is the loss of the right input (logits with the correct class far ahead). cross_entropy "
            "applies a softmax of its own: what is softmax([1, 0, 0, 0, 0])[0]?"
        )
    if math.isclose(got, math.log(CE_CLASSES), rel_tol=1e-3):
        raise AssertionError(
            f"log {CE_CLASSES} is chance level, the loss of uniform logits. A one-hot row is not uniform: "
            "its right class is ahead by 1, which is not much as a logit."
        )
    if math.isclose(got, want + 1, rel_tol=1e-3):
        raise AssertionError("that is the log-sum-exp alone; eq. (cross-entropy) subtracts the right class's logit, here 1.")
    raise AssertionError(
        f"measure it: F.cross_entropy(F.one_hot(labels, {CE_CLASSES}).float(), labels) for any labels; "
        "then check it against LSE(z) - z_y with z a one-hot row."
    )
