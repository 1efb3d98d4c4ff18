r"""The encoder-decoder Transformer of Vaswani et al. (2017) for sequence-to-sequence tasks.

Source and target tokens are embedded, scaled by :math:`\sqrt{C}` and given sinusoidal
positions; the encoder reads the source once, the decoder predicts the target one token at a
time with masked self-attention and cross-attention to the encoder's output (the *memory*).
Decoding is greedy or by beam search. Introduced in chapter 16 (*The full encoder-decoder
Transformer*); the layers are chapter 15's.

Symbols: B batch, S source length, T target length, C ``d_model``, V target vocabulary, K beams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers.positional import SinusoidalPositionalEncoding
from ..layers.transformer import TransformerDecoder, TransformerEncoder, TransformerLayerConfig
from .decoding import beam_search, check_special_ids, greedy_search

__all__ = ["Seq2SeqTransformerConfig", "Seq2SeqTransformer"]


@dataclass(frozen=True)
class Seq2SeqTransformerConfig:
    r"""Sizes of an encoder-decoder Transformer (chapter 16)."""

    src_vocab_size: int = 33  # source tokens, the three specials included (number words: 33)
    tgt_vocab_size: int = 13  # target tokens, the three specials included (digits: 13)
    d_model: int = 64  # C, the width of every token representation
    nhead: int = 4  # attention heads; must divide d_model
    num_encoder_layers: int = 2  # encoder depth
    num_decoder_layers: int = 2  # decoder depth
    dim_feedforward: int = 256  # F, the FFN's hidden width
    dropout: float = 0.1  # after the embeddings, on every sublayer output and inside the FFN
    max_len: int = 64  # positions in the sinusoidal table (longest source or target)
    norm_first: bool = False  # False: post-LN as in the paper; True: pre-LN
    pad_id: int = 0  # padding id in both vocabularies
    bos_id: int = 1  # the decoder's start token
    eos_id: int = 2  # the token that ends a target

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "num_encoder_layers", "num_decoder_layers",
                     "dim_feedforward", "max_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if self.d_model < 2 or self.d_model % 2 or self.nhead < 1 or self.d_model % self.nhead:
            raise ValueError(f"d_model={self.d_model} must be even and a multiple of nhead={self.nhead}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={self.dropout!r}")
        check_special_ids(min(self.src_vocab_size, self.tgt_vocab_size),
                          pad_id=self.pad_id, bos_id=self.bos_id, eos_id=self.eos_id)

    @classmethod
    def cpu(cls, **overrides) -> "Seq2SeqTransformerConfig":
        r"""The chapter's model: C = 64, 2 + 2 layers, 4 heads, no dropout (trains in seconds on a CPU)."""
        return cls(**(dict(dropout=0.0) | overrides))

    @classmethod
    def gpu(cls, **overrides) -> "Seq2SeqTransformerConfig":
        r"""A wider and deeper model for a GPU: C = 256, 3 + 3 layers, 8 heads."""
        kw = dict(d_model=256, nhead=8, num_encoder_layers=3, num_decoder_layers=3, dim_feedforward=1024)
        return cls(**(kw | overrides))

    def layer_config(self) -> TransformerLayerConfig:
        r"""The per-layer sizes shared by the encoder and decoder stacks."""
        return TransformerLayerConfig(self.d_model, self.nhead, self.dim_feedforward, self.dropout, self.norm_first)


class Seq2SeqTransformer(nn.Module):
    r"""Embeddings + sinusoidal positions, a Transformer encoder and decoder, a linear read-out.

    .. math::

        \mathbf{m} = \operatorname{Enc}(\sqrt{C}\,E_s[x] + PE), \qquad
        p(y_t \mid y_{<t}, x) = \operatorname{softmax}\bigl(W\,\operatorname{Dec}(\sqrt{C}\,E_t[y_{<t}] + PE,\ \mathbf{m})_t\bigr)

    The embeddings start at standard deviation :math:`C^{-1/2}`, so after the :math:`\sqrt{C}`
    scale they have unit size, like the positions. Chapter 16.

    Shape:
        - src: :math:`(B, S)` ids, padded with ``pad_id``; tgt_in: :math:`(B, T)` ids starting with
          ``bos_id``; output of ``forward``: :math:`(B, T, V)` logits
    """

    def __init__(self, cfg: Seq2SeqTransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C = cfg.d_model
        self.src_embed = nn.Embedding(cfg.src_vocab_size, C)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, C)
        for emb in (self.src_embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=C**-0.5)
        self.pos = SinusoidalPositionalEncoding(C, cfg.max_len, dropout=cfg.dropout, scale_input=True)
        self.encoder = TransformerEncoder(cfg.layer_config(), cfg.num_encoder_layers)
        self.decoder = TransformerDecoder(cfg.layer_config(), cfg.num_decoder_layers)
        self.lm_head = nn.Linear(C, cfg.tgt_vocab_size)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The memory :math:`(B, S, C)` and the source padding mask :math:`(B, S)` (``True`` = pad)."""
        src_pad = src == self.cfg.pad_id  # (B, S)
        memory = self.encoder(self.pos(self.src_embed(src)), key_padding_mask=src_pad)  # (B, S, C)
        return memory, src_pad

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        r"""Logits :math:`(B, T, V)` for every target position, given the memory (causal)."""
        h = self.decoder(self.pos(self.tgt_embed(tgt_in)), memory, memory_key_padding_mask=src_pad)  # (B, T, C)
        return self.lm_head(h)  # (B, T, V)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)  # (B, T, V), teacher forcing

    def _step(self, prefix: torch.Tensor, state: None, context: tuple[torch.Tensor, torch.Tensor]
              ) -> tuple[torch.Tensor, None]:
        r"""The step function of :mod:`dlscratch.models.decoding`: rerun the decoder on the whole prefix."""
        memory, src_pad = context
        return self.decode(prefix, memory, src_pad)[:, -1], None  # (N, V)

    def _special_ids(self) -> dict[str, int]:
        return dict(bos_id=self.cfg.bos_id, eos_id=self.cfg.eos_id, pad_id=self.cfg.pad_id)

    @torch.inference_mode()
    def greedy_decode(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        r"""Pick the most likely next token at every step (:func:`~dlscratch.models.decoding.greedy_search`).

        ``<pad>`` and ``<bos>`` are never chosen; after ``<eos>`` a row emits ``<pad>``.

        Returns:
            :math:`(B, \text{max\_len})` ids after ``<bos>``: the output, ``<eos>``, then padding.
        """
        out = greedy_search(self._step, None, self.encode(src), max_len, **self._special_ids())
        return _pad_to(out, max_len, self.cfg.pad_id)

    @torch.inference_mode()
    def beam_search(self, src: torch.Tensor, beam_size: int, max_len: int, alpha: float = 0.0) -> torch.Tensor:
        r"""Keep the ``beam_size`` best partial outputs at every step (:func:`~dlscratch.models.decoding.beam_search`).

        All :math:`B K` hypotheses run through the decoder as one batch, which rereads each whole
        prefix at every step. Hypotheses are ranked by :math:`\log p(y) / ((5 + |y|)/6)^\alpha`
        (``<eos>`` counted). ``beam_size=1`` is greedy decoding.

        Returns:
            :math:`(B, \text{max\_len})` ids after ``<bos>``, as :meth:`greedy_decode`.

        Raises:
            ValueError: unless ``1 <= beam_size <= tgt_vocab_size - 2`` (every token but ``<pad>`` and ``<bos>``).
        """
        out, _ = beam_search(self._step, None, self.encode(src), beam_size, max_len,
                             vocab_size=self.cfg.tgt_vocab_size, alpha=alpha, **self._special_ids())
        return _pad_to(out, max_len, self.cfg.pad_id)


def _pad_to(ids: torch.Tensor, length: int, pad_id: int) -> torch.Tensor:
    return nn.functional.pad(ids, (0, length - ids.size(1)), value=pad_id)  # (B, length)
