r"""Exercise checkers for chapter 3, "Bigram language model, two ways" (topic prefix ``bigram.``).

Every checker recomputes the answer independently (plain Python loops and dictionaries, or
torch's autograd and ``F.cross_entropy``; the reversed-names measurement with the package's tested
:class:`~dlscratch.models.ngram.BigramCounts`) and raises
:class:`AssertionError` with a hint when the reader's answer differs. The reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F

from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "SMOOTH_CORPUS",
    "SMOOTH_K",
    "SMOOTH_BIGRAM",
    "check_smoothed_prob",
    "check_reversed",
    "reversed_val_nll",
    "check_word_nll",
    "check_gradient",
]

ALPHABET = ".abcdefghijklmnopqrstuvwxyz"  # index 0 is the boundary token
V = len(ALPHABET)

# bigram.smoothed_prob: p(b | a) with add-k smoothing, counted from this corpus
SMOOTH_CORPUS = ("ann", "anna", "nan", "ana")
SMOOTH_K = 1.0
SMOOTH_BIGRAM = ("a", "n")  # (a, b): the probability that b follows a


def _bigrams(word: str) -> list[tuple[str, str]]:
    chars = "." + word + "."
    return list(zip(chars, chars[1:]))


def _count(words: Any) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for w in words:
        counts.update(_bigrams(w))
    return counts


@exercise("bigram.smoothed_prob")
def check_smoothed_prob(answer: Any) -> None:
    r"""The add-``SMOOTH_K`` probability that ``SMOOTH_BIGRAM[1]`` follows ``SMOOTH_BIGRAM[0]``."""
    got = require_number(answer, "the probability")
    a, b = SMOOTH_BIGRAM
    counts = _count(SMOOTH_CORPUS)
    n_ab = counts[a, b]
    row = sum(n for (first, _), n in counts.items() if first == a)
    want = (n_ab + SMOOTH_K) / (row + SMOOTH_K * V)
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if math.isclose(got, n_ab / row, rel_tol=1e-3):
        raise AssertionError("that is the unsmoothed estimate N[a,b] / sum N[a,:]; add k to every count of the row.")
    if math.isclose(got, (n_ab + SMOOTH_K) / (row + SMOOTH_K), rel_tol=1e-3):
        raise AssertionError(f"k is added to all {V} cells of the row, so the denominator grows by k * {V}.")
    if math.isclose(got, (n_ab + SMOOTH_K) / (row + SMOOTH_K * (V - 1)), rel_tol=1e-3):
        raise AssertionError(f"the vocabulary has {V} tokens: the 26 letters and the boundary '.'.")
    raise AssertionError(
        "not quite. Wrap every word in '.', count how often each character follows 'a' (the end '.' "
        "counts too), then apply the add-k formula."
    )


@functools.cache  # a fit on 25,626 names: once per session
def reversed_val_nll() -> float:
    r"""Validation NLL of the add-one count model fitted on the reversed training names, on the reversed validation names."""
    from ..data import names_split  # only this checker needs the corpus
    from ..models.ngram import BigramCounts

    split = names_split()
    model = BigramCounts.fit([w[::-1] for w in split.train])
    return model.nll([w[::-1] for w in split.val], smoothing=1.0)


@exercise("bigram.reversed")
def check_reversed(answer: Any) -> None:
    r"""The validation NLL (nats) of an add-one bigram count model trained and evaluated on names spelled backwards."""
    got = require_number(answer, "the validation NLL of the reversed model")
    want = reversed_val_nll()
    if math.isclose(got, want, abs_tol=2e-4):
        return
    if got > want:
        raise AssertionError(
            f"{got:.4f} is higher than the measurement: did you fit and evaluate on the reversed names of "
            "split.train and split.val, with smoothing k = 1? Backwards is not harder for a bigram model."
        )
    raise AssertionError(
        "measure it: fit BigramCounts on [w[::-1] for w in split.train] and call .nll on the reversed "
        "split.val names (k = 1)."
    )


def _nll(pairs: list[tuple[str, str]], table: list[list[float]]) -> float:
    return -sum(math.log(table[ALPHABET.index(a)][ALPHABET.index(b)]) for a, b in pairs) / len(pairs)


@exercise("bigram.word_nll")
def check_word_nll(answer: Any) -> None:
    r"""``answer(word, P)``: the mean NLL (nats) of the bigrams of ``word`` under the ``(27, 27)`` table ``P``."""
    require_callable(answer, "word_nll")
    gen = torch.Generator().manual_seed(3)
    P = torch.rand(V, V, generator=gen, dtype=torch.float64) + 0.05
    P = P / P.sum(dim=1, keepdim=True)  # (V, V), rows sum to 1
    table = P.tolist()
    for word in ("andrej", "q", "emma", "zzzq"):
        pairs = _bigrams(word)
        want = _nll(pairs, table)
        got = require_number(answer(word, P.clone()), f"word_nll({word!r}, P)")
        if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            continue
        if math.isclose(got, want * len(pairs), rel_tol=1e-6):
            raise AssertionError("you return the sum of the -log p; the chapter's NLL is the mean over bigrams.")
        if math.isclose(got, -want, rel_tol=1e-6):
            raise AssertionError("the sign is flipped: the NLL is -mean(log p), a positive number.")
        for partial in (pairs[1:], pairs[:-1], pairs[1:-1]):
            if partial and math.isclose(got, _nll(partial, table), rel_tol=1e-6):
                raise AssertionError("wrap the word in '.' at both ends: the bigrams of 'emma' are .e em mm ma a.")
        if math.isclose(got, _nll([(b, a) for a, b in pairs], table), rel_tol=1e-6):
            raise AssertionError("P[a, b] is p(b | a): the row is the current character, the column the next one.")
        raise AssertionError(f"word_nll({word!r}, P) returned {got:.6f}, expected {want:.6f}.")


@exercise("bigram.gradient")
def check_gradient(answer: Any) -> None:
    r"""``answer(W, counts, reg)``: the gradient of the regularised mean NLL with respect to ``W``.

    The data are summarised by ``counts`` (``counts[a, b]`` examples of ``b`` after ``a``); the
    objective is ``F.cross_entropy(W[x], y) + reg * (W ** 2).mean()``.
    """
    require_callable(answer, "bigram_grad")
    gen = torch.Generator().manual_seed(7)
    n_tok = 5
    W = torch.randn(n_tok, n_tok, generator=gen, dtype=torch.float64)
    counts = torch.randint(0, 4, (n_tok, n_tok), generator=gen)
    counts[2] = 0  # a context that never occurs
    # independent computation: expand the counts into examples and let autograd differentiate
    pairs = [(a, b) for a in range(n_tok) for b in range(n_tok) for _ in range(int(counts[a, b]))]
    x, y = torch.tensor([a for a, _ in pairs]), torch.tensor([b for _, b in pairs])
    w = W.clone().requires_grad_(True)
    F.cross_entropy(w[x], y).backward()
    nll_grad = w.grad
    n = len(pairs)
    for reg in (0.0, 0.1):
        penalty_grad = 2 * reg * W / W.numel()
        want = nll_grad + penalty_grad

        def close(t: torch.Tensor) -> bool:
            return torch.allclose(got, t, atol=1e-8, rtol=1e-6)

        got = answer(W.clone(), counts.clone(), reg)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a torch.Tensor of shape {tuple(W.shape)}, got {type(got).__name__}.")
        if tuple(got.shape) != tuple(W.shape):
            raise AssertionError(f"the gradient has the shape of W, {tuple(W.shape)}; got {tuple(got.shape)}.")
        got = got.detach().to(torch.float64)
        if close(want):
            continue
        if close(-want):
            raise AssertionError("the sign is flipped: the gradient of -log softmax is softmax minus the target.")
        if close(n * nll_grad + penalty_grad) or close(n * nll_grad):
            raise AssertionError("the NLL is a mean over the n examples: divide the count terms by n = counts.sum().")
        if close(nll_grad) or close(nll_grad + 2 * reg * W) or close(nll_grad + reg * W / W.numel()):
            raise AssertionError(
                "the NLL part is right but not the penalty: d/dW of reg * mean(W**2) is 2 * reg * W / W.numel()."
            )
        raise AssertionError(
            "not quite. Row a of the gradient sums, over the examples with context a, softmax(W[a]) minus the "
            "one-hot target; group those examples with the counts, then add the penalty's gradient."
        )
