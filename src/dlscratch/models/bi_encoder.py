r"""A DPR-style dense bi-encoder and a speaker reader, both on chapter 26's BERT encoder.

Karpukhin et al. (2020) embed questions and passages with two BERT encoders and rank passages by
the inner product of the two vectors. :class:`TextEncoder` is :class:`~dlscratch.models.bert.BertModel`
followed by a mean over the non-padding positions; :class:`BiEncoder` holds one for questions
and one for passages. :class:`SpeakerReader` reads ``[CLS] passage [SEP] question [SEP]`` (or the
question alone, closed-book) and classifies the speaker. Introduced in chapter 32,
*Retrieval-augmented generation*. Symbols: B batch, T time, C width, K speakers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.checks import check_positive_int
from .bert import BertConfig, BertModel

__all__ = ["BiEncoderConfig", "TextEncoder", "BiEncoder", "SpeakerReader"]


@dataclass(frozen=True)
class BiEncoderConfig:
    r"""A bi-encoder: the BERT encoder's sizes and the temperature of the similarity."""

    encoder: BertConfig  # sizes of each of the two encoders (question, passage)
    temperature: float = 0.05  # tau: similarities of unit vectors are divided by it (DPR: raw inner products)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got temperature={self.temperature!r}")

    @classmethod
    def cpu(cls, vocab_size: int) -> BiEncoderConfig:
        r"""The chapter's CPU size: one block, 2 heads, 48 wide, FFN 96, 64 positions, no dropout."""
        return cls(BertConfig(vocab_size=vocab_size, max_position=64, n_layer=1, n_head=2, n_embd=48, ffn_dim=96, dropout=0.0, kernels="fused"))

    @classmethod
    def gpu(cls, vocab_size: int) -> BiEncoderConfig:
        r"""The chapter's GPU size: 2 blocks, 4 heads, 128 wide, FFN 512, 128 positions, dropout 0.1."""
        return cls(BertConfig(vocab_size=vocab_size, max_position=128, n_layer=2, n_head=4, n_embd=128, ffn_dim=512, dropout=0.1, kernels="fused"))


class TextEncoder(nn.Module):
    r"""A BERT encoder and a mean over the non-padding positions.

    .. math:: \mathbf{e}(x) = \frac{1}{|\{t : x_t \ne \text{pad}\}|} \sum_{t : x_t \ne \text{pad}} h_L[t]

    Shape:
        - idx, token_type_ids: :math:`(B, T)` long; output: :math:`(B, C)`
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config, pooler=False)

    def forward(self, idx: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        pad = idx == self.config.pad_id  # (B, T) True at padding
        h = self.bert(idx, token_type_ids, key_padding_mask=pad)  # (B, T, C)
        keep = (~pad).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        return (h * keep).sum(1) / keep.sum(1).clamp(min=1)  # (B, C)


class BiEncoder(nn.Module):
    r"""Two encoders, :math:`E_Q` for questions and :math:`E_P` for passages, and their similarity.

    .. math::

        \operatorname{sim}(q, p) = \frac{\hat{\mathbf{e}}_Q(q)^\top \hat{\mathbf{e}}_P(p)}{\tau},
        \qquad \hat{\mathbf{e}} = \mathbf{e} / \lVert \mathbf{e} \rVert

    DPR uses the raw inner product; unit vectors and a temperature make a small encoder trained
    briefly better behaved, and make k-means cells (the IVF index) meaningful. Chapter 32.

    Shape:
        - :meth:`encode_questions`, :meth:`encode_passages`: :math:`(B, T)` → :math:`(B, C)`;
          ``forward(q, p)``: the :math:`(B_q, B_p)` similarity matrix
    """

    def __init__(self, config: BiEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.question = TextEncoder(config.encoder)  # E_Q
        self.passage = TextEncoder(config.encoder)  # E_P

    def encode_questions(self, idx: torch.Tensor) -> torch.Tensor:
        r"""Unit question vectors :math:`(B, C)`."""
        return F.normalize(self.question(idx), dim=-1)

    def encode_passages(self, idx: torch.Tensor) -> torch.Tensor:
        r"""Unit passage vectors :math:`(B, C)`."""
        return F.normalize(self.passage(idx), dim=-1)

    def forward(self, questions: torch.Tensor, passages: torch.Tensor) -> torch.Tensor:
        q, p = self.encode_questions(questions), self.encode_passages(passages)  # (Bq, C), (Bp, C)
        return q @ p.T / self.config.temperature  # (Bq, C) @ (C, Bp) -> (Bq, Bp)


class SpeakerReader(nn.Module):
    r"""Reads ``[CLS] passage [SEP] question [SEP]`` (open-book) or ``[CLS] question [SEP]`` (closed-book) and scores each speaker.

    .. math:: p(a \mid q, d) = \operatorname{softmax}\bigl(W\, \mathbf{e}([d; q]) + \mathbf{b}\bigr)_a

    A classifier over the speakers seen in training, on :class:`TextEncoder`. Chapter 32.

    Args:
        config: the encoder's sizes.
        n_speakers: :math:`K`, the number of answers.

    Shape:
        - idx, token_type_ids: :math:`(B, T)` long; output: logits :math:`(B, K)`
    """

    def __init__(self, config: BertConfig, n_speakers: int) -> None:
        super().__init__()
        check_positive_int("n_speakers", n_speakers)
        self.encoder = TextEncoder(config)
        self.head = nn.Linear(config.n_embd, n_speakers)  # W, b

    def forward(self, idx: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encoder(idx, token_type_ids))  # (B, C) -> (B, K)
