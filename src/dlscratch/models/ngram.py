r"""The bigram character model, two ways: a table of counts and one trained linear layer.

Both predict the next character from the current one alone,

.. math::

    p(w) = \prod_{t=1}^{n+1} p(c_t \mid c_{t-1}), \qquad c_0 = c_{n+1} = \texttt{.},

and both expose ``logits(ctx)`` / ``forward(ctx)`` mapping contexts ``(N, 1)`` to next-character
logits ``(N, V)``, the call signature shared by every language model of Part II (so
:func:`dlscratch.models.sampling.sample_words` and :func:`dlscratch.training.mean_nll` work on either).
Introduced in chapter 3, *Bigram language model, two ways*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..layers.activations import log_softmax
from ..tokenizers.vocab import CharVocab

__all__ = ["BigramCounts", "NeuralBigram", "one_hot"]


def _bigrams(words: Sequence[str], vocab: CharVocab) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The (current, next) id pairs of every word wrapped in boundaries, ``.emma.``: ``(n,)`` and ``(n,)``."""
    pairs = [p for w in words for ids in [vocab.encode_word(w)] for p in zip(ids, ids[1:])]
    ab = torch.tensor(pairs, dtype=torch.long).view(-1, 2)  # (n, 2)
    return ab[:, 0], ab[:, 1]


class BigramCounts:
    r"""The count-based bigram model: a :math:`V \times V` table of bigram counts.

    ``counts[a, b]`` is the number :math:`N_{ab}` of times character ``b`` follows character ``a``
    in the training words (each word wrapped in the boundary token ``.``). With add-:math:`k`
    smoothing the model is

    .. math::

        p_k(b \mid a) = \frac{N_{ab} + k}{\sum_{b'} N_{ab'} + kV},

    and :math:`k = 0` is the maximum-likelihood estimate (derivation: chapter 3).

    Args:
        counts: the ``(V, V)`` integer table of bigram counts.
        vocab: the vocabulary that maps characters to rows and columns.

    Shape:
        - counts: :math:`(V, V)`
    """

    def __init__(self, counts: torch.Tensor, vocab: CharVocab | None = None) -> None:
        vocab = vocab or CharVocab()
        V = vocab.vocab_size
        if counts.shape != (V, V):
            raise ValueError(f"counts must have shape ({V}, {V}), got {tuple(counts.shape)}")
        if (counts < 0).any():
            raise ValueError("counts must be non-negative")
        self.counts = counts.detach().to("cpu", torch.long)  # (V, V), N[a, b]
        self.vocab = vocab

    @classmethod
    def fit(cls, words: Sequence[str], vocab: CharVocab | None = None) -> "BigramCounts":
        r"""Count every bigram of ``words`` (boundary tokens included).

        Raises:
            ValueError: naming any character of ``words`` that is not in ``vocab``.
        """
        vocab = vocab or CharVocab()
        V = vocab.vocab_size
        a, b = _bigrams(words, vocab)  # (n,), (n,)
        counts = torch.bincount(a * V + b, minlength=V * V).view(V, V)  # (V, V)
        return cls(counts, vocab)

    def probs(self, smoothing: float = 1.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        r"""The table :math:`p_k(b \mid a)` with add-``smoothing`` counts; every row sums to one.

        Args:
            smoothing: :math:`k`, the pseudo-count added to every cell (0 gives the MLE).
            dtype: the floating type of the result (computed in float64, then cast).

        Returns:
            ``P`` of shape ``(V, V)`` with ``P[a, b]`` :math:`= p_k(b \mid a)`.

        Raises:
            ValueError: if ``smoothing`` is negative, or zero while some row has no counts.
        """
        k = float(smoothing)
        if not k >= 0.0 or math.isinf(k):  # also rejects nan
            raise ValueError(f"smoothing must be a finite number >= 0, got {smoothing}")
        P = self.counts.to(torch.float64) + k  # (V, V)
        totals = P.sum(dim=1, keepdim=True)  # (V, 1)
        if (totals == 0).any():
            empty = [self.vocab.itos[i] for i in (totals[:, 0] == 0).nonzero()[:, 0].tolist()]
            raise ValueError(f"rows {empty} have no counts; use smoothing > 0")
        return (P / totals).to(dtype)

    def logits(self, ctx: torch.Tensor, smoothing: float = 1.0) -> torch.Tensor:
        r"""Next-character logits :math:`\log p_k(\cdot \mid a)` for the last character of each context.

        Their softmax is row :math:`a` of :meth:`probs`, so the model plugs into
        :func:`dlscratch.models.sampling.sample_words` and :func:`dlscratch.training.mean_nll`.

        Args:
            ctx: context token ids.
            smoothing: :math:`k`, as in :meth:`probs`.

        Shape:
            - ctx: :math:`(N, 1)` (or :math:`(N, T)`: only the last column is used)
            - output: :math:`(N, V)`
        """
        logp = self.probs(smoothing, torch.float64).log().float().to(ctx.device)  # (V, V)
        return logp[ctx[:, -1]]  # (N, V)

    def nll(self, words: Sequence[str], smoothing: float = 1.0) -> float:
        r"""Mean negative log-likelihood (nats) of all the bigrams of ``words``.

        .. math::

            \text{NLL} = -\frac{1}{n} \sum_{i=1}^{n} \log p_k(b_i \mid a_i)

        over the :math:`n` bigrams :math:`(a_i, b_i)`, computed in float64.

        Args:
            words: the words to score, each wrapped in the boundary token.
            smoothing: :math:`k`, as in :meth:`probs`.

        Returns:
            The mean NLL in nats (``inf`` if an unsmoothed table gives some bigram probability 0).

        Raises:
            ValueError: naming a character not in the vocabulary, or if ``words`` has no bigram.
        """
        a, b = _bigrams(words, self.vocab)  # (n,), (n,)
        if len(b) == 0:
            raise ValueError("no words to evaluate")
        logp = self.probs(smoothing, torch.float64).log()  # (V, V)
        return -logp[a, b].mean().item()


def one_hot(idx: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""One-hot rows: ``out[n, j] = 1`` if ``j == idx[n]`` else 0, written as a comparison.

    Shape:
        - idx: :math:`(N,)`
        - output: :math:`(N, V)` with :math:`V` = ``num_classes``
    """
    return (idx[:, None] == torch.arange(num_classes, device=idx.device)).to(dtype)  # (N, V)


class NeuralBigram(nn.Module):
    r"""The bigram model as one bias-free linear layer on one-hot inputs.

    For a one-hot row :math:`\mathbf{e}_a`, the logits are
    :math:`\mathbf{e}_a^\top \mathbf{W} = \mathbf{W}_{a,:}`, so the layer is a row lookup, and

    .. math::

        p_{\mathbf{W}}(b \mid a) = \operatorname{softmax}(\mathbf{W}_{a,:})_b,
        \qquad
        \mathcal{L} = -\frac{1}{n}\sum_{i=1}^n \log p_{\mathbf{W}}(b_i \mid a_i)
                      + \lambda \cdot \frac{1}{V^2} \sum_{a,b} W_{ab}^2 .

    The penalty pulls every row towards :math:`\mathbf{0}` (the uniform distribution), the
    analogue of add-:math:`k` smoothing (chapter 3).

    Args:
        vocab_size: :math:`V`, the number of tokens (27 for names).
        reg: :math:`\lambda`, the weight of the penalty :math:`\lambda \cdot \operatorname{mean}(W^2)`.

    Shape:
        - idx: :math:`(N, 1)` contexts (or :math:`(N, T)`: only the last column is used)
        - output: :math:`(N, V)` logits
    """

    def __init__(self, vocab_size: int = 27, reg: float = 0.01) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        if not reg >= 0.0:
            raise ValueError(f"reg must be >= 0, got {reg}")
        self.vocab_size = vocab_size
        self.reg = reg
        self.weight = nn.Parameter(torch.randn(vocab_size, vocab_size))  # (V, V), torch's global generator

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        r"""Logits :math:`\mathbf{W}_{a,:}` for the last character :math:`a` of each context."""
        return self.weight[idx[:, -1]]  # (N, V): row lookup == one_hot(idx) @ W

    def log_probs(self) -> torch.Tensor:
        r"""The table :math:`\log p_{\mathbf{W}}(b \mid a)`: the log-softmax of every row of W, ``(V, V)``."""
        return log_softmax(self.weight, dim=-1)  # (V, V)

    def nll(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        r"""Mean NLL of ``targets`` given ``idx``, equal to ``F.cross_entropy(self(idx), targets)``.

        The softmax acts on each row separately, so :math:`\log\operatorname{softmax}(\mathbf{W}_{a,:})`
        is the same for every example with context :math:`a`: normalise the :math:`V` rows once,
        then look up one number per example (the flattened index :math:`aV + b`), instead of a
        log-softmax over :math:`n \times V` logits.

        Shape:
            - idx: :math:`(N, 1)`; targets: :math:`(N,)`; output: scalar
        """
        flat = idx[:, -1] * self.vocab_size + targets  # (N,) index of (a, b) in the flattened table
        return -self.log_probs().view(-1).index_select(0, flat).mean()

    def regularization(self) -> torch.Tensor:
        r"""The penalty :math:`\lambda \cdot \operatorname{mean}(W^2)`."""
        return self.reg * (self.weight**2).mean()

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        r"""The training objective: :meth:`nll` plus :meth:`regularization`."""
        return self.nll(idx, targets) + self.regularization()
