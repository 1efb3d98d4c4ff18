r"""A character-level LSTM language model for the names corpus.

Embedding → LSTM → linear, read left to right. A name is the sequence ``. c_1 ... c_n`` and the
model predicts ``c_1 ... c_n .``, one character per position, with the LSTM state starting at
zero:

.. math::

    h_t, c_t = \operatorname{LSTM}(E x_t, (h_{t-1}, c_{t-1})), \qquad
    p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(W h_t + b).

``logits(ctx)`` serves the contexts of :func:`dlscratch.data.build_examples` (``block_size``
characters, padded on the left with the boundary ``.``), the call signature every language
model of Part II shares. Reading a boundary token *resets* the state to zero first, so the
prediction for ``.....emm`` is the one the model makes after ``.emm`` in training: a context long
enough to hold the whole name gives exactly the per-position loss of the sequence, and
:func:`dlscratch.training.mean_nll` over the validation examples is the per-character NLL of
Part II. Introduced in chapter 10, *Recurrent networks*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.recurrent import LSTM
from ..tokenizers.vocab import CharVocab

__all__ = ["CharLSTMConfig", "CharLSTM", "build_sequences"]


@dataclass(frozen=True)
class CharLSTMConfig:
    r"""Sizes of the character LSTM."""

    vocab_size: int = 27  # '.' then a-z
    block_size: int = 16  # context length of logits(); longer than the longest name (15)
    n_embd: int = 32  # character embedding size
    n_hidden: int = 128  # LSTM state size
    n_layers: int = 1  # stacked LSTM layers

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.block_size, self.n_embd, self.n_hidden, self.n_layers) <= 0:
            raise ValueError(f"all sizes must be positive, got {self}")

    @classmethod
    def cpu(cls) -> "CharLSTMConfig":
        r"""Trains in about fifteen seconds on a laptop CPU."""
        return cls(n_embd=32, n_hidden=128, n_layers=1)

    @classmethod
    def gpu(cls) -> "CharLSTMConfig":
        r"""Two wider layers, for one GPU."""
        return cls(n_embd=64, n_hidden=256, n_layers=2)


class CharLSTM(nn.Module):
    r"""Embedding → :class:`dlscratch.layers.LSTM` → linear, with the state reset at boundary tokens.

    Shape:
        - idx: :math:`(B, T)` token ids; ``forward`` returns logits :math:`(B, T, V)`, the
          prediction after every position;
        - ``logits(ctx)``: :math:`(N, \text{block\_size})` → :math:`(N, V)`, the prediction
          after the last position.
    """

    def __init__(self, config: CharLSTMConfig, boundary: int = 0) -> None:
        super().__init__()
        self.config, self.boundary = config, boundary
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.lstm = LSTM(config.n_embd, config.n_hidden, config.n_layers)
        self.lm_head = nn.Linear(config.n_hidden, config.vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        x = self.wte(idx)  # (B, T, C)
        state = self.lstm.initial_state(x, None)  # (h, c), each (L, B, H)
        keep = (idx != self.boundary).to(x.dtype)[None, :, :, None]  # (1, B, T, 1): 0 resets the state
        outputs = []
        for t in range(T):
            state = tuple(s * keep[:, :, t] for s in state)  # a boundary token starts a new word
            out, state = self.lstm.step(x[:, t], state)  # (B, H)
            outputs.append(out)
        h = torch.stack(outputs, dim=1)  # (B, T, H)
        return self.lm_head(h)  # (B, T, V)

    def logits(self, ctx: torch.Tensor) -> torch.Tensor:
        r"""Next-character logits :math:`(N, V)` for contexts :math:`(N, \text{block\_size})`."""
        return self(ctx)[:, -1]

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Mean cross-entropy over the positions whose target is not ``-1`` (padding)."""
        logits = self(x)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-1)


def build_sequences(words: Sequence[str], block_size: int, vocab: CharVocab | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One training row per word: inputs ``. c_1 ... c_n`` and targets ``c_1 ... c_n .``.

    Rows are padded to ``block_size`` with the boundary id (inputs) and ``-1`` (targets, ignored
    by the loss). A word of :math:`n` characters gives the same :math:`n + 1` predictions as
    :func:`dlscratch.data.build_examples`.

    Returns:
        ``(X, Y)``, both :math:`(N, \text{block\_size})`, ``torch.long``.

    Raises:
        ValueError: if a word does not fit, i.e. has ``block_size`` characters or more.
    """
    vocab = vocab or CharVocab()
    b = vocab.boundary_id
    longest = max(words, key=len)
    if len(longest) >= block_size:
        raise ValueError(f"block_size {block_size} is too short for {longest!r} ({len(longest)} characters); "
                         f"it must exceed the longest word")
    X = torch.full((len(words), block_size), b, dtype=torch.long)
    Y = torch.full((len(words), block_size), -1, dtype=torch.long)
    for n, word in enumerate(words):
        ids = vocab.encode_word(word)  # . c_1 ... c_n .
        X[n, : len(ids) - 1] = torch.tensor(ids[:-1], dtype=torch.long)
        Y[n, : len(ids) - 1] = torch.tensor(ids[1:], dtype=torch.long)
    return X, Y
