r"""A decoder LM with a scalar head: the reward model and the policy-with-value of RLHF.

:class:`ScalarHeadLM` wraps any :class:`~dlscratch.models.decoder.DecoderLM` (chapter 17's
:class:`~dlscratch.models.gpt.GPT`) and adds one linear map :math:`\mathbb{R}^C \to \mathbb{R}`
on the final hidden states, so one forward pass returns the next-token logits *and* a scalar at
every position. The same class serves twice in chapter 31, *Alignment*:

* as a **reward model** (Ouyang et al., 2022), initialised from the supervised policy: the reward
  of a whole text is the scalar at its last position, which (attention being causal) has read
  every token;
* as a **policy with a value head** for PPO: the logits are the policy, the scalar at position
  :math:`t` is the value estimate :math:`V(s_t)` of the state "prompt and response so far".

Symbols: B batch, T time, C channels, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from .decoder import DecoderLM

__all__ = ["ScalarHeadLM"]


class ScalarHeadLM(nn.Module):
    r"""``lm`` plus a scalar head on its final hidden states: :math:`s_t = \vect{w}^\top \operatorname{N}(h_L)_t + b`.

    .. math::

        \text{logits}_t = W_E \operatorname{N}(h_L)_t, \qquad s_t = \vect{w}^\top \operatorname{N}(h_L)_t + b

    The head starts at zero, so a new reward model scores every text 0 and a new value head
    predicts 0: training moves it from there. Chapter 31, *Alignment*.

    Args:
        lm: the decoder whose hidden states the head reads (trained with it).

    Shape:
        - idx: :math:`(B, T)` token ids
        - output: ``(logits, scalars)``, logits :math:`(B, T, V)`, scalars :math:`(B, T)`
    """

    def __init__(self, lm: DecoderLM) -> None:
        super().__init__()
        self.lm = lm
        n_embd = lm.lm_head.in_features
        self.head = nn.Linear(n_embd, 1)  # w: (1, C), b: (1,)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def config(self) -> object:
        r"""The wrapped LM's config (``block_size``, ``vocab_size``)."""
        return self.lm.config

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.lm.hidden_states(idx)  # (B, T, C)
        return self.lm.lm_head(h), self.head(h).squeeze(-1)  # (B, T, V), (B, T)

    def score(self, idx: torch.Tensor) -> torch.Tensor:
        r"""The scalar at the last position of each row: the reward of the whole text. :math:`(B, T) \to (B,)`."""
        h = self.lm.hidden_states(idx)[:, -1]  # (B, C)
        return self.head(h).squeeze(-1)  # (B,)
