r"""Two judges of sentiment for chapter 31, *Alignment*: a trained bag-of-words classifier and the AFINN lexicon.

* :class:`BagOfWordsJudge` stands in for human judgement: a logistic regression on the set of
  words of a text, trained on labelled snippets that the policy never sees. Its logit
  :math:`r(x) = b + \sum_{w \in x} \theta_w` is the "true" reward the chapter measures.
* :func:`afinn_scores` is a rule written down in advance, a *constitution* in miniature: the sum
  of the AFINN-165 valences (Nielsen 2011) of the words of a text. It labels preferences for RLAIF.

Both read whole words (lower case, letters and apostrophes), so they score any string, including
a language model's half-formed continuations; unknown words count for nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["words", "BagOfWordsJudge", "afinn_scores"]

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    r"""The lower-case words of ``text`` (letters, with one inner apostrophe: ``"isn't"``)."""
    return _WORD.findall(text.lower())


class BagOfWordsJudge(nn.Module):
    r"""Logistic regression on the set of known words of a text: :math:`P(\text{positive} \mid x) = \sigma(b + \sum_{w \in x} \theta_w)`.

    The weights are one ``nn.EmbeddingBag`` of width 1 that sums :math:`\theta_w` over the
    distinct known words, so scoring a batch is one call. Build it with :meth:`fit`.

    Args:
        vocab: the known words, in index order.
    """

    def __init__(self, vocab: Sequence[str]) -> None:
        super().__init__()
        self.stoi = {w: i for i, w in enumerate(vocab)}
        self.theta = nn.EmbeddingBag(len(vocab) + 1, 1, mode="sum", padding_idx=len(vocab))  # row V: "no word"
        nn.init.zeros_(self.theta.weight)
        self.bias = nn.Parameter(torch.zeros(1))

    def _bags(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        pad = len(self.stoi)
        ids, offsets = [], []
        for t in texts:
            offsets.append(len(ids))
            ids.extend(sorted({self.stoi[w] for w in words(t) if w in self.stoi}) or [pad])
        return torch.tensor(ids), torch.tensor(offsets)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        r"""The logit :math:`r(x)` of each text, :math:`(N,)`."""
        ids, offsets = self._bags(texts)
        return self.theta(ids, offsets).squeeze(-1) + self.bias  # (N,)

    @torch.inference_mode()
    def score(self, texts: Sequence[str]) -> torch.Tensor:
        r"""The logits of ``texts`` without gradients, :math:`(N,)`: the reward."""
        return self(texts)

    @classmethod
    def fit(cls, texts: Sequence[str], labels: torch.Tensor, *, min_count: int = 2, steps: int = 300,
            lr: float = 0.05, weight_decay: float = 1e-4) -> BagOfWordsJudge:
        r"""Train on ``texts`` with 0/1 ``labels``: full-batch Adam on the mean cross-entropy plus an L2 penalty.

        Args:
            texts: the training texts.
            labels: :math:`(N,)` labels, 1 for positive.
            min_count: a word needs this many texts to enter the vocabulary.
            steps: full-batch Adam steps.
            lr: Adam's learning rate.
            weight_decay: the L2 penalty :math:`\lambda \lVert\theta\rVert^2 / 2` on the word weights.

        Raises:
            ValueError: if ``texts`` and ``labels`` differ in length or are empty.
        """
        if len(texts) != len(labels) or not texts:
            raise ValueError(f"need one label per text (and some texts), got {len(texts)} texts and {len(labels)} labels")
        counts = Counter(w for t in texts for w in set(words(t)))
        judge = cls(sorted(w for w, c in counts.items() if c >= min_count))
        ids, offsets = judge._bags(texts)
        y = labels.float()
        opt = torch.optim.Adam(judge.parameters(), lr=lr)
        for _ in range(steps):
            logits = judge.theta(ids, offsets).squeeze(-1) + judge.bias  # (N,)
            loss = F.binary_cross_entropy_with_logits(logits, y) + 0.5 * weight_decay * judge.theta.weight.pow(2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return judge.eval()


def afinn_scores(texts: Sequence[str], lexicon: dict[str, int]) -> torch.Tensor:
    r"""The AFINN score of each text: the sum of the valences of its words, :math:`(N,)` floats.

    Only single-word entries of the lexicon are used (it also lists a few phrases).
    """
    return torch.tensor([float(sum(lexicon.get(w, 0) for w in words(t))) for t in texts])
