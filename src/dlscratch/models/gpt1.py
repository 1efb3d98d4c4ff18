r"""GPT-1's fine-tuning (Radford et al., 2018): input transformations and a classifier head with the auxiliary LM loss.

A pre-trained :class:`~dlscratch.models.gpt.GPT` is fine-tuned on a labelled task by adding one
linear layer :math:`W_y` that reads the final hidden state of a special *extract* token placed at
the end of the input. Structured inputs become one token sequence (*input transformations*):

.. code-block:: text

    classification   <s> text <e>
    entailment       <s> premise $ hypothesis <e>

with ``<s>`` the start token, ``$`` the delimiter and ``<e>`` the extract token, three embeddings
learned during fine-tuning. The fine-tuning loss adds the language-modelling loss on the same
sequences, weighted by :math:`\lambda` (0.5 in the paper):

.. math::

    L_3(\mathcal{C}) = L_2(\mathcal{C}) + \lambda\, L_1(\mathcal{C}), \qquad
    L_2 = -\sum_{(x, y)} \log P(y \mid x^1, \ldots, x^m) .

Chapter 27, *GPT-1 and GPT-2*. Symbols: B batch, T time, C channels, V vocabulary, K classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .gpt import GPT

__all__ = ["gpt1_input", "GPT1Classifier"]


def _fit_parts(lengths: list[int], budget: int) -> list[int]:
    r"""The lengths after cutting the longest parts first until they sum to at most ``budget`` (water-filling)."""
    if sum(lengths) <= budget:
        return lengths
    cap = budget  # the largest cap c with sum(min(n, c)) <= budget
    while sum(min(n, cap) for n in lengths) > budget:
        cap -= 1
    cut = [min(n, cap) for n in lengths]
    for i in sorted(range(len(cut)), key=lambda i: -lengths[i]):  # hand the remainder to the longest parts
        if sum(cut) < budget and cut[i] < lengths[i]:
            cut[i] += 1
    return cut


def gpt1_input(
    parts: Sequence[Sequence[int]], *, start_id: int, extract_id: int, delim_id: int | None = None, max_len: int | None = None
) -> list[int]:
    r"""GPT-1's input transformation: ``<s> part_1 $ part_2 ... <e>`` as one list of token ids.

    One part (classification) needs no delimiter; two or more (entailment, similarity) are joined
    by ``delim_id``. With ``max_len``, the longest parts are cut (from their ends) until the whole
    sequence, special tokens included, fits; the extract token is always kept.

    Raises:
        ValueError: if there are no parts, several parts but no ``delim_id``, or a ``max_len`` too
            small for the special tokens and one token per part.
    """
    parts = [list(p) for p in parts]
    if not parts:
        raise ValueError("need at least one part (a text), got none")
    if len(parts) > 1 and delim_id is None:
        raise ValueError(f"{len(parts)} parts need a delimiter token: pass delim_id")
    n_special = 2 + (len(parts) - 1)  # <s>, <e> and a delimiter between each two parts
    if max_len is not None:
        if max_len < n_special + len(parts):
            raise ValueError(f"max_len={max_len} cannot hold {n_special} special tokens and one token of each of {len(parts)} parts")
        keep = _fit_parts([len(p) for p in parts], max_len - n_special)
        parts = [p[:k] for p, k in zip(parts, keep)]
    ids = [start_id]
    for i, p in enumerate(parts):
        if i:
            ids.append(delim_id)  # type: ignore[arg-type]
        ids.extend(p)
    return ids + [extract_id]


class GPT1Classifier(nn.Module):
    r"""A GPT with GPT-1's classification head on the extract token, and the auxiliary LM loss.

    .. math::

        P(y \mid x) = \operatorname{softmax}\bigl(h_L^{(e)} W_y + b_y\bigr), \qquad
        \text{loss} = \operatorname{CE}(y) + \lambda \cdot \text{(next-token CE on the input)}

    with :math:`h_L^{(e)}` the final hidden state at the extract token (the last of each row),
    :math:`\lambda` = ``aux_weight`` (0 switches the auxiliary loss off). The rows are
    right-padded; padding comes after the extract token, so causal attention never lets a real
    position see it, and the LM loss skips it. Chapter 27.

    Args:
        lm: the (pre-trained) GPT; its head and embeddings are shared with the LM loss.
        num_classes: :math:`K`, the labels are ``0 .. K - 1``.
        extract_id: the id of the extract token, which must end every row.
        aux_weight: :math:`\lambda`.

    Shape:
        - idx: :math:`(B, T)` token ids; lengths: :math:`(B,)`; labels: :math:`(B,)` in ``[0, K)``
        - output: ``(logits, loss)``, logits :math:`(B, K)`, loss a scalar or ``None``
    """

    def __init__(self, lm: GPT, num_classes: int, extract_id: int, aux_weight: float = 0.5) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got num_classes={num_classes}")
        if not 0 <= extract_id < lm.config.vocab_size:
            raise ValueError(f"extract_id={extract_id} is not a token of the model's vocabulary of {lm.config.vocab_size}")
        if aux_weight < 0:
            raise ValueError(f"aux_weight (lambda) must be >= 0, got aux_weight={aux_weight}")
        self.lm, self.num_classes, self.extract_id, self.aux_weight = lm, num_classes, extract_id, aux_weight
        self.head = nn.Linear(lm.config.n_embd, num_classes)  # W_y, b_y
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def check_labels(self, labels: torch.Tensor) -> None:
        r"""Refuse a label outside the label set ``0 .. K - 1``, naming it."""
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.numel():
            raise ValueError(f"labels must be in the label set 0..{self.num_classes - 1}, got {bad[0].item()}")

    def forward(
        self, idx: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        rows = torch.arange(B, device=idx.device)
        last = lengths.to(idx.device) - 1  # (B,) position of each row's extract token
        if ((last < 0) | (last >= T)).any() or not (idx[rows, last] == self.extract_id).all():
            raise ValueError(f"every row must end with the extract token {self.extract_id} at position lengths - 1")
        if labels is not None:
            self.check_labels(labels)
        h = self.lm.hidden_states(idx)  # (B, T, C)
        logits = self.head(h[rows, last])  # (B, C) -> (B, K)
        if labels is None:
            return logits, None
        loss = F.cross_entropy(logits, labels)
        if self.aux_weight > 0:
            targets = idx[:, 1:].masked_fill(torch.arange(1, T, device=idx.device) > last[:, None], -1)  # (B, T - 1), -1 after <e>
            lm_logits = self.lm.lm_head(h[:, :-1])  # (B, T - 1, V)
            loss = loss + self.aux_weight * F.cross_entropy(lm_logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss
