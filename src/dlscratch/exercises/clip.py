r"""Exercise checkers for chapter 34, "CLIP" (topic prefix ``clip.``).

The function checkers run the package's own tested :func:`~dlscratch.layers.losses.clip_loss`
and :func:`~dlscratch.training.contrastive.label_recall_at_k` on seeded random inputs and compare; the
number checkers recompute the answer from its formula. A wrong answer gets a hint that names the
usual mistake. The reference solutions live in the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.losses import clip_loss, info_nce
from ..training.contrastive import label_recall_at_k
from .answers import grade_number, require_callable, require_number
from .core import exercise

__all__ = ["INIT_VALUES", "FLOOR_VALUES", "check_loss", "check_recall", "check_initial_loss", "check_floor"]

# clip.initial_loss: the batch of the measurement
INIT_VALUES = {"batch_size": 256}
# clip.floor: a batch with exactly batch_size / n_classes images of every digit
FLOOR_VALUES = {"batch_size": 120, "n_classes": 10}


def _judge(got: float, want: float, hints: list[tuple[float, str]], fallback: str, rel: float = 1e-3) -> None:
    r""":func:`~dlscratch.exercises.answers.grade_number` with this chapter's default tolerance."""
    grade_number(got, "the answer", want, mistakes=hints, hint=fallback, rel=rel)


def _value(got: Any, what: str) -> float:
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        raise AssertionError(f"return {what} as a one-element tensor, got {getattr(got, 'shape', type(got).__name__)}")
    return got.item()


@exercise("clip.loss")
def check_loss(answer: Any) -> None:
    r"""``answer(logits_per_image)``: the symmetric InfoNCE loss of an :math:`(N, N)` logit matrix."""
    fn = require_callable(answer, "my_clip_loss")
    gen = torch.Generator().manual_seed(34)
    for N in (5, 1, 12):
        logits = torch.randn(N, N, generator=gen, dtype=torch.float64) * 5
        logits[0, -1] += 3.0  # make the matrix lopsided, so that rows and columns differ
        want, rows, cols = clip_loss(logits).item(), info_nce(logits).item(), info_nce(logits.T).item()
        with torch.no_grad():
            got = _value(fn(logits), "the loss")
        one_way = ("that is one direction only; CLIP averages the image-to-text loss (rows) and the text-to-image loss "
                   "(columns, the transposed matrix).")
        _judge(got, want, [
            (rows, one_way), (cols, one_way),
            (rows + cols, "close: the two directions are averaged, (rows + columns) / 2, not added."),
            (N * want, "each direction is a *mean* over the N rows, not a sum."),
            (-want, "check the sign: the loss is minus the log-probability of the matching pair."),
        ], f"not right for N={N}. Row n is a softmax over the N texts whose target is text n (cross-entropy against "
           "torch.arange(N)); do the same for the columns and average.", rel=1e-7)


@exercise("clip.recall")
def check_recall(answer: Any) -> None:
    r"""``answer(similarity, query_labels, gallery_labels, k)``: the fraction of queries with a same-label item in their top :math:`k`."""
    fn = require_callable(answer, "my_recall_at_k")
    gen = torch.Generator().manual_seed(340)
    for Q, G, k in ((8, 12, 3), (20, 30, 1), (5, 6, 6), (15, 40, 5)):
        sim = torch.randn(Q, G, generator=gen, dtype=torch.float64)
        ql, gl = torch.randint(0, 4, (Q,), generator=gen), torch.randint(0, 4, (G,), generator=gen)
        got = require_number(fn(sim, ql, gl, k), "recall@k")
        top, low = sim.topk(k, dim=1).indices, sim.topk(k, dim=1, largest=False).indices  # (Q, k) each
        rel = gl[top] == ql[:, None]  # (Q, k)
        _judge(got, label_recall_at_k(sim, ql, gl, [k])[k], [
            (rel.double().mean().item(), "that is precision@k (the share of relevant items among the k); recall@k counts "
                                         "a query as a hit when *any* of its k retrieved items is relevant."),
            ((gl[low] == ql[:, None]).any(1).double().mean().item(),
             "those are the k *least* similar items; retrieval takes the k largest similarities."),
            ((top == torch.arange(Q)[:, None]).any(1).double().mean().item(),
             "that asks for gallery item q itself; here an item is relevant when its label equals the query's."),
        ], f"not right for Q={Q}, G={G}, k={k}: take each row's k largest similarities, check whether one of those "
           "items has the query's label, and average over the queries.", rel=1e-9)


@exercise("clip.initial_loss")
def check_initial_loss(answer: Any) -> None:
    r"""The CLIP loss of a model whose embeddings do not yet tell the pairs apart: :math:`\ln B`."""
    got, B = require_number(answer, "the loss"), INIT_VALUES["batch_size"]
    _judge(got, math.log(B), [
        (math.log2(B), "that is in bits; the loss uses the natural logarithm."),
        (2 * math.log(B), "the two directions are averaged, not added."),
    ], "if every logit in a row is (nearly) the same, what probability does the softmax give the "
       "matching pair?")


@exercise("clip.floor")
def check_floor(answer: Any) -> None:
    r"""The lowest loss on a batch with :math:`B/K` images of each digit and captions that name only the digit: :math:`\ln(B/K)`."""
    got = require_number(answer, "the loss floor")
    B, K = FLOOR_VALUES["batch_size"], FLOOR_VALUES["n_classes"]
    if abs(got) < 1e-6:
        raise AssertionError("a perfect model still cannot tell the captions of one digit apart: they say the same thing "
                             "about every image of that digit. How much probability can the matching one get?")
    _judge(got, math.log(B / K), [
        (math.log(B), "ln B is the loss of a model that has learned nothing; a perfect one can rule out the other digits."),
        (math.log(K), "that is ln K, as if the probability were spread over the K digits; it is spread over the captions "
                      "of the image's own digit in the batch: how many are there?"),
    ], "with n images per digit, a perfect model can do no better than probability 1/n for the "
       "matching pair, in both directions.")
