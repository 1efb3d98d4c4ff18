r"""An encoder-decoder with additive (Bahdanau) attention, trained with teacher forcing.

The encoder embeds the source and runs a GRU over it; its outputs :math:`k_1 \dots k_S` are the
keys (and values) of the attention. At step :math:`t` the decoder scores every key against its
previous state :math:`s_{t-1}`, averages the keys with the softmax of the scores (padding gets
weight 0), and feeds that context :math:`c_t` with the previous token into a GRU cell:

.. math::

    e_{tj} = v^\top \tanh(W_q s_{t-1} + W_k k_j), \quad
    \alpha_{t} = \operatorname{softmax}(e_{t}), \quad
    c_t = \sum_j \alpha_{tj} k_j,

    s_t = \operatorname{GRU}([E y_{t-1}; c_t], s_{t-1}), \quad
    p(y_t \mid y_{<t}, x) = \operatorname{softmax}(W_o [s_t; c_t; E y_{t-1}] + b_o).

Decoding is greedy or by beam search. Introduced in chapter 10, *Recurrent networks*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.activations import softmax
from ..layers.recurrent import GRU, GRUCell
from .decoding import beam_search, check_special_ids, greedy_search

__all__ = ["AdditiveAttention", "Seq2SeqConfig", "Seq2Seq", "Encoded"]


class AdditiveAttention(nn.Module):
    r"""Additive attention: :math:`e_j = v^\top \tanh(W_q q + W_k k_j)`, softmax over unmasked keys.

    Args:
        query_size: size of the query (the decoder state).
        key_size: size of each key (an encoder output); the keys are also the values.
        attn_size: size of the hidden layer of the scoring MLP.

    Shape:
        - query: :math:`(B, H_q)`, keys: :math:`(B, S, H_k)`, mask: :math:`(B, S)` bool, ``True``
          on real tokens;
        - outputs: context :math:`(B, H_k)` and weights :math:`(B, S)` (rows sum to 1, exactly 0
          where the mask is ``False``).
    """

    def __init__(self, query_size: int, key_size: int, attn_size: int) -> None:
        super().__init__()
        self.W_q = nn.Linear(query_size, attn_size, bias=False)
        self.W_k = nn.Linear(key_size, attn_size)
        self.v = nn.Linear(attn_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        r"""The part :math:`W_k k_j` of the scores that does not depend on the query (compute it once)."""
        return self.W_k(keys)  # (B, S, A)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None,
                keys_proj: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, S, _ = keys.shape
        if mask is not None and mask.shape != (B, S):
            raise ValueError(f"mask must have shape ({B}, {S}), got {tuple(mask.shape)}")
        keys_proj = self.project_keys(keys) if keys_proj is None else keys_proj  # (B, S, A)
        scores = self.v(torch.tanh(self.W_q(query)[:, None, :] + keys_proj)).squeeze(-1)  # (B, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = softmax(scores, dim=-1)  # (B, S)
        context = (weights[:, None, :] @ keys).squeeze(1)  # (B, 1, S) @ (B, S, H_k) -> (B, H_k)
        return context, weights


@dataclass(frozen=True)
class Seq2SeqConfig:
    r"""Sizes of the encoder-decoder."""

    vocab_size: int  # tokens, specials included (shared by source and target)
    n_embd: int = 32  # embedding size of source and target tokens
    n_hidden: int = 128  # GRU state size of the encoder and the decoder
    attn_size: int = 64  # hidden size of the additive attention's MLP
    pad_id: int = 0  # padding, in sources and targets (the tokenizer's pad_id)
    bos_id: int = 1  # the decoder's first input
    eos_id: int = 2  # the token that ends a target

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.n_embd, self.n_hidden, self.attn_size) <= 0:
            raise ValueError(f"all sizes must be positive, got {self}")
        check_special_ids(self.vocab_size, pad_id=self.pad_id, bos_id=self.bos_id, eos_id=self.eos_id)

    @classmethod
    def cpu(cls, vocab_size: int, **overrides: int) -> "Seq2SeqConfig":
        r"""Small enough to train in about twenty seconds on a laptop CPU."""
        return cls(vocab_size, **(dict(n_embd=32, n_hidden=128, attn_size=64) | overrides))

    @classmethod
    def gpu(cls, vocab_size: int, **overrides: int) -> "Seq2SeqConfig":
        r"""Wider, for one GPU."""
        return cls(vocab_size, **(dict(n_embd=64, n_hidden=256, attn_size=128) | overrides))


class Encoded(NamedTuple):
    r"""What the decoder needs from the encoder."""

    keys: torch.Tensor  # (B, S, H) encoder outputs
    keys_proj: torch.Tensor  # (B, S, A) W_k keys
    mask: torch.Tensor  # (B, S) True on real source tokens
    state: torch.Tensor  # (B, H) first decoder state: the encoder output at the last real token


class Seq2Seq(nn.Module):
    r"""GRU encoder, GRU decoder with additive attention (see the module docstring).

    Shape:
        - src: :math:`(B, S)` ids padded with ``pad_id``, src_len: :math:`(B,)`, tgt_in: :math:`(B, T)`;
        - ``forward`` returns logits :math:`(B, T, V)` and attention weights :math:`(B, T, S)`.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = c = config
        self.src_emb = nn.Embedding(c.vocab_size, c.n_embd, padding_idx=c.pad_id)
        self.tgt_emb = nn.Embedding(c.vocab_size, c.n_embd, padding_idx=c.pad_id)
        self.encoder = GRU(c.n_embd, c.n_hidden)
        self.attention = AdditiveAttention(c.n_hidden, c.n_hidden, c.attn_size)
        self.decoder = GRUCell(c.n_embd + c.n_hidden, c.n_hidden)
        self.out = nn.Linear(2 * c.n_hidden + c.n_embd, c.vocab_size)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> Encoded:
        r"""Run the encoder; padding comes after the real tokens, so it never reaches them."""
        B, S = src.shape
        if src_len.shape != (B,) or int(src_len.min()) < 1 or int(src_len.max()) > S:
            raise ValueError(f"src_len must have shape ({B},) with values in 1..{S}, got {src_len.tolist()}")
        keys, _ = self.encoder(self.src_emb(src))  # (B, S, H)
        mask = torch.arange(S, device=src.device)[None, :] < src_len[:, None]  # (B, S)
        state = keys[torch.arange(B, device=src.device), src_len - 1]  # (B, H)
        return Encoded(keys, self.attention.project_keys(keys), mask, state)

    def decode_step(self, y_prev: torch.Tensor, state: torch.Tensor, enc: Encoded
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""One decoder step: previous tokens :math:`(B,)` → logits :math:`(B, V)`, new state, weights :math:`(B, S)`."""
        emb = self.tgt_emb(y_prev)  # (B, E)
        context, weights = self.attention(state, enc.keys, enc.mask, enc.keys_proj)  # (B, H), (B, S)
        state = self.decoder(torch.cat([emb, context], dim=-1), state)  # (B, H)
        logits = self.out(torch.cat([state, context, emb], dim=-1))  # (B, V)
        return logits, state, weights

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Teacher forcing: the decoder reads the true previous token at every step."""
        enc = self.encode(src, src_len)
        state, logits, weights = enc.state, [], []
        for t in range(tgt_in.shape[1]):
            lg, state, w = self.decode_step(tgt_in[:, t], state, enc)
            logits.append(lg)
            weights.append(w)
        return torch.stack(logits, dim=1), torch.stack(weights, dim=1)  # (B, T, V), (B, T, S)

    def loss(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
        r"""Mean cross-entropy over the real target tokens (``pad_id`` targets are ignored)."""
        logits, _ = self(src, src_len, tgt_in)
        return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=self.config.pad_id)

    def _step(self, prefix: torch.Tensor, state: torch.Tensor, enc: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The step function of :mod:`dlscratch.models.decoding`: read the last token, advance the state."""
        logits, state, _ = self.decode_step(prefix[:, -1], state, enc)
        return logits, state

    def _special_ids(self) -> dict[str, int]:
        c = self.config
        return dict(bos_id=c.bos_id, eos_id=c.eos_id, pad_id=c.pad_id)

    @torch.inference_mode()
    def greedy_decode(self, src: torch.Tensor, src_len: torch.Tensor, max_len: int = 20
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Pick the most likely token at every step (:func:`~dlscratch.models.decoding.greedy_search`).

        ``<pad>`` and ``<bos>`` are never chosen; after ``<eos>`` a sequence emits ``<pad>``.
        The attention weights are those of the decoder reading its own outputs (one
        teacher-forced pass over them).

        Returns:
            Token ids :math:`(B, T)` (``<eos>`` included, ``T \le`` ``max_len``) and the attention
            weights :math:`(B, T, S)`.
        """
        enc = self.encode(src, src_len)
        tokens = greedy_search(self._step, enc.state, enc, max_len, **self._special_ids())  # (B, T)
        bos = torch.full_like(tokens[:, :1], self.config.bos_id)
        _, weights = self(src, src_len, torch.cat([bos, tokens[:, :-1]], dim=1))  # (B, T, S)
        return tokens, weights

    @torch.inference_mode()
    def beam_search(self, src: torch.Tensor, src_len: torch.Tensor, beam_size: int, max_len: int = 20,
                    alpha: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Keep the ``beam_size`` most likely prefixes at every step (:func:`~dlscratch.models.decoding.beam_search`).

        Hypotheses are ranked by :math:`\log p(y \mid x) / ((5 + |y|)/6)^\alpha`; ``alpha = 0``
        ranks by probability alone. ``beam_size = 1`` is greedy decoding.

        Returns:
            The best token ids :math:`(B, T)` (``<eos>`` included, then ``<pad>``) and their
            log-probabilities :math:`(B,)`.

        Raises:
            ValueError: unless ``1 <= beam_size <= vocab_size - 2`` (every token but ``<pad>`` and ``<bos>``).
        """
        enc = self.encode(src, src_len)
        return beam_search(self._step, enc.state, enc, beam_size, max_len, vocab_size=self.config.vocab_size,
                           alpha=alpha, **self._special_ids())
