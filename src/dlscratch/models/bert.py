r"""BERT: a bidirectional Transformer encoder pre-trained by masked language modelling (Devlin et al., 2019).

Word, learned position and token-type embeddings summed and layer-normalised; ``n_layer``
post-LayerNorm :class:`~dlscratch.layers.transformer.Block`\ s of (non-causal)
:class:`~dlscratch.layers.attention.modules.MultiHeadAttention` and a GELU
:class:`~dlscratch.layers.feedforward.MLP`; a pooler (``tanh`` of a linear map of the ``[CLS]``
vector). On top: the masked-language-model head (a transform, then a decoder tied to the word
embedding plus a bias) or a classification head on the pooled vector. The weights map one to one
onto Hugging Face's ``BertModel`` / ``BertForMaskedLM`` / ``BertForSequenceClassification``
(:func:`bert_state_dict_from_hf`). Input packing (``[CLS] a [SEP] b [SEP]``) is
:mod:`dlscratch.models.bert_inputs`.

Introduced in chapter 26, *BERT*. Symbols: B batch, T time, C channels (``n_embd``), F the FFN
width, V vocabulary, K classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention.modules import MultiHeadAttention
from ..layers.checks import check_positive_int
from ..layers.feedforward import MLP
from ..layers.norms import make_norm
from ..layers.transformer import Block

__all__ = [
    "BertConfig",
    "bert_block",
    "BertEmbeddings",
    "BertModel",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "check_labels",
    "bert_init",
    "IGNORE_INDEX",
]

IGNORE_INDEX = -100  # the label of a position that carries no loss (as F.cross_entropy's ignore_index)


@dataclass(frozen=True)
class BertConfig:
    r"""Sizes of a BERT. Presets: :meth:`cpu` and :meth:`gpu` (the chapter's), :meth:`base` (the paper's BERT-base)."""

    vocab_size: int = 1024  # V: token ids, special tokens included
    max_position: int = 128  # rows of the learned position table: the longest input
    type_vocab_size: int = 2  # token types (segment A, segment B)
    n_layer: int = 2  # L: encoder blocks
    n_head: int = 4  # nh: attention heads per block
    n_embd: int = 128  # C: width of every token representation; hs = C / nh
    ffn_dim: int = 512  # F: hidden width of the feed-forward network (4C in the paper)
    dropout: float = 0.1  # on the embeddings, attention weights and each sublayer's output (training only)
    eps: float = 1e-12  # LayerNorm epsilon (BERT's)
    pad_id: int = 0  # the padding id: its embedding row starts at zero and gets no gradient
    init_std: float = 0.02  # standard deviation of the initial weights (BERT's initializer_range)
    kernels: str = "written"  # "written": our attention and LayerNorm; "fused": PyTorch's kernels, same maths

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_position", "type_vocab_size", "n_layer", "n_head", "n_embd", "ffn_dim"):
            check_positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} (n_embd % n_head = {self.n_embd % self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={self.dropout!r}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id must be a token id in [0, vocab_size={self.vocab_size}), got pad_id={self.pad_id}")
        if self.kernels not in ("written", "fused"):
            raise ValueError(f"kernels must be 'written' or 'fused', got kernels={self.kernels!r}")
        if not self.init_std > 0:
            raise ValueError(f"init_std must be positive, got init_std={self.init_std!r}")

    @classmethod
    def cpu(cls, vocab_size: int, pad_id: int = 0) -> BertConfig:
        r"""The chapter's CPU encoder: 2 blocks, 4 heads, 64 wide, FFN 256, 64 positions, no dropout (a short run underfits)."""
        return cls(vocab_size=vocab_size, max_position=64, n_layer=2, n_head=4, n_embd=64, ffn_dim=256, dropout=0.0, pad_id=pad_id, kernels="fused")

    @classmethod
    def gpu(cls, vocab_size: int, pad_id: int = 0) -> BertConfig:
        r"""The chapter's GPU encoder: 4 blocks, 4 heads, 256 wide, FFN 1024, 128 positions, dropout 0.1 (BERT's)."""
        return cls(vocab_size=vocab_size, max_position=128, n_layer=4, n_head=4, n_embd=256, ffn_dim=1024, dropout=0.1, pad_id=pad_id, kernels="fused")

    @classmethod
    def base(cls) -> BertConfig:
        r"""BERT-base (Devlin et al., 2019): 12 blocks, 12 heads, 768 wide, WordPiece vocabulary of 30,522."""
        return cls(vocab_size=30522, max_position=512, n_layer=12, n_head=12, n_embd=768, ffn_dim=3072)


def bert_init(module: nn.Module, std: float = 0.02) -> None:
    r"""BERT's initialisation of one module: Linear and Embedding weights :math:`\mathcal{N}(0, \text{std}^2)`, biases 0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def bert_block(c: BertConfig) -> Block:
    r"""One BERT block: post-LN, bidirectional attention with biases, a GELU MLP (no dropout inside it)."""
    attn = MultiHeadAttention(c.n_embd, c.n_head, dropout=c.dropout, causal=False, attend="sdpa" if c.kernels == "fused" else "written")
    mlp = MLP(c.n_embd, c.ffn_dim, activation="gelu")
    return Block(attn, mlp, partial(make_norm, "layernorm", c.n_embd, kernels=c.kernels, eps=c.eps), norm_first=False, dropout=c.dropout)


class BertEmbeddings(nn.Module):
    r"""Word, learned position and token-type embeddings, summed, layer-normalised, dropped out.

    .. math:: h_0[t] = \operatorname{Drop}\bigl(\operatorname{LN}(W_E[x_t] + W_P[t] + W_S[s_t])\bigr)

    Chapter 26.

    Shape:
        - idx, token_type_ids: :math:`(B, T)` long; output: :math:`(B, T, C)`
    """

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.n_embd, padding_idx=c.pad_id)  # W_E, (V, C)
        self.position = nn.Embedding(c.max_position, c.n_embd)  # W_P, (max_position, C)
        self.token_type = nn.Embedding(c.type_vocab_size, c.n_embd)  # W_S, (2, C)
        self.norm = make_norm("layernorm", c.n_embd, kernels=c.kernels, eps=c.eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, idx: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        B, T = idx.shape
        if T > self.position.num_embeddings:
            raise ValueError(f"sequence length T={T} exceeds the model's max_position={self.position.num_embeddings}")
        types = torch.zeros_like(idx) if token_type_ids is None else token_type_ids  # (B, T)
        x = self.word(idx) + self.position.weight[:T] + self.token_type(types)  # (B, T, C) + (T, C) + (B, T, C)
        return self.dropout(self.norm(x))  # (B, T, C)


class BertModel(nn.Module):
    r"""The BERT encoder: embeddings, ``n_layer`` post-LN blocks, and (optionally) the pooler.

    .. math::

        h_\ell = \operatorname{Block}_\ell(h_{\ell-1}), \qquad
        \operatorname{pool}(h_L) = \tanh\bigl(W_p\, h_L[\texttt{[CLS]}] + b_p\bigr)

    Every position attends to every other one that is not padding (``key_padding_mask``,
    ``True`` at padding). Weights start from :math:`\mathcal{N}(0, \sigma^2)` (``init_std``; 0.02
    in BERT), biases at 0, the LayerNorms at :math:`\gamma = 1, \beta = 0` (BERT's initialisation). Equals Hugging Face's
    ``BertModel`` with copied weights. Chapter 26.

    Shape:
        - idx, token_type_ids: :math:`(B, T)` long, :math:`T \le` ``max_position``;
          key_padding_mask: :math:`(B, T)` bool; output: :math:`(B, T, C)`; :meth:`pool`: :math:`(B, C)`
    """

    def __init__(self, config: BertConfig, *, pooler: bool = True) -> None:
        super().__init__()
        c = self.config = config
        self.embeddings = BertEmbeddings(c)
        self.blocks = nn.ModuleList([bert_block(c) for _ in range(c.n_layer)])
        self.pooler = nn.Linear(c.n_embd, c.n_embd) if pooler else None  # W_p, b_p
        self.apply(partial(bert_init, std=c.init_std))  # N(0, init_std^2) weights, zero biases
        with torch.no_grad():
            self.embeddings.word.weight[c.pad_id].zero_()  # the padding row, as nn.Embedding(padding_idx) starts it

    def forward(
        self, idx: torch.Tensor, token_type_ids: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.embeddings(idx, token_type_ids)  # (B, T, C)
        for block in self.blocks:
            x = block(x, key_padding_mask=key_padding_mask)  # (B, T, C)
        return x

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        r"""The pooled vector :math:`\tanh(W_p h[\texttt{[CLS]}] + b_p)` of the first position: :math:`(B, T, C) \to (B, C)`."""
        if self.pooler is None:
            raise ValueError("this BertModel was built with pooler=False, so it has no pooled output")
        return torch.tanh(self.pooler(hidden[:, 0]))  # (B, C)


class BertForMaskedLM(nn.Module):
    r"""BERT with the masked-language-model head: transform, then the tied decoder plus a bias.

    .. math::

        z_t = \operatorname{LN}\bigl(\operatorname{GELU}(W_h h_L[t] + b_h)\bigr), \qquad
        \text{logits}_t = z_t W_E^\top + b \in \mathbb{R}^V

    The decoder's weight *is* the word embedding :math:`W_E` (weight tying). :meth:`loss` runs
    the head only at the positions whose label is not :data:`IGNORE_INDEX`, the chosen ones,
    as the original implementation gathers them before the decoder. Equals Hugging Face's
    ``BertForMaskedLM``. Chapter 26.

    Shape:
        - idx, token_type_ids, key_padding_mask: :math:`(B, T)`; output: :math:`(B, T, V)`
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        c = self.config = config
        self.bert = BertModel(c, pooler=False)
        self.transform = nn.Linear(c.n_embd, c.n_embd)  # W_h, b_h
        self.transform_norm = make_norm("layernorm", c.n_embd, kernels=c.kernels, eps=c.eps)
        self.decoder = nn.Linear(c.n_embd, c.vocab_size)  # weight tied to W_E below; bias b
        self.decoder.weight = self.bert.embeddings.word.weight  # one (V, C) tensor
        bert_init(self.transform, c.init_std)
        nn.init.zeros_(self.decoder.bias)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        r"""The MLM head on hidden vectors: :math:`(\ldots, C) \to (\ldots, V)`."""
        return self.decoder(self.transform_norm(F.gelu(self.transform(hidden))))

    def forward(
        self, idx: torch.Tensor, token_type_ids: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(self.bert(idx, token_type_ids, key_padding_mask))  # (B, T, V)

    def loss(
        self, idx: torch.Tensor, labels: torch.Tensor, token_type_ids: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Mean cross-entropy over the chosen positions (``labels != IGNORE_INDEX``) only."""
        if labels.shape != idx.shape:
            raise ValueError(f"labels must have the shape of idx {tuple(idx.shape)}, got {tuple(labels.shape)}")
        hidden = self.bert(idx, token_type_ids, key_padding_mask)  # (B, T, C)
        chosen = labels != IGNORE_INDEX  # (B, T)
        return F.cross_entropy(self.head(hidden[chosen]), labels[chosen])  # (M, C) -> (M, V), M chosen positions


def check_labels(labels: torch.Tensor, n_classes: int) -> None:
    r"""Raise ``ValueError`` unless every label is an integer class id in ``0 .. n_classes - 1``."""
    if labels.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise ValueError(f"label {int(labels[bad][0])} is not in the label set {{0, ..., {n_classes - 1}}} of {n_classes} classes")


class BertForSequenceClassification(nn.Module):
    r"""BERT with a classification head on the pooled vector.

    .. math::

        \text{logits} = W_c\, \operatorname{Drop}(\tanh(W_p\, v + b_p)) + b_c \in \mathbb{R}^K, \qquad
        v = h_L[\texttt{[CLS]}] \ \text{(BERT's)} \quad \text{or} \quad
        v = \frac{1}{|\bar{\mathcal{P}}|} \sum_{t \notin \mathcal{P}} h_L[t] \ \text{(mean over the non-padding positions)}

    Fine-tuning trains everything. :meth:`load_encoder` copies the embeddings and blocks of a
    pre-trained :class:`BertModel` (the pooler and the head keep their fresh weights when the
    source has no pooler). With ``pooling="cls"`` it equals Hugging Face's
    ``BertForSequenceClassification``. Chapter 26.

    Args:
        config: the encoder's sizes.
        n_classes: :math:`K`, the labels are ``0 .. K - 1``.
        pooling: ``"cls"`` (the ``[CLS]`` vector, BERT's) or ``"mean"`` (the mean of the
            non-padding positions' vectors), fed to the pooler.

    Shape:
        - idx, token_type_ids, key_padding_mask: :math:`(B, T)`; output: :math:`(B, K)`
    """

    def __init__(self, config: BertConfig, n_classes: int = 2, pooling: str = "cls") -> None:
        super().__init__()
        check_positive_int("n_classes", n_classes)
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.config, self.n_classes, self.pooling = config, n_classes, pooling
        self.bert = BertModel(config, pooler=True)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.n_embd, n_classes)  # W_c, b_c
        bert_init(self.classifier, config.init_std)

    def forward(
        self, idx: torch.Tensor, token_type_ids: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.bert(idx, token_type_ids, key_padding_mask)  # (B, T, C)
        if self.pooling == "mean":
            keep = torch.ones_like(idx, dtype=h.dtype) if key_padding_mask is None else (~key_padding_mask).to(h.dtype)  # (B, T)
            h = ((h * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True)).unsqueeze(1)  # (B, 1, C): the mean in [CLS]'s place
        pooled = self.bert.pool(h)  # (B, C)
        return self.classifier(self.dropout(pooled))  # (B, K)

    def loss(
        self, idx: torch.Tensor, labels: torch.Tensor, token_type_ids: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""Mean cross-entropy against ``labels`` :math:`(B,)`, each in ``0 .. n_classes - 1`` (else ``ValueError``)."""
        check_labels(labels, self.n_classes)
        return F.cross_entropy(self(idx, token_type_ids, key_padding_mask), labels)

    @torch.no_grad()
    def load_encoder(self, encoder: BertModel) -> BertForSequenceClassification:
        r"""Copy ``encoder``'s embeddings and blocks (and its pooler, if it has one); returns ``self``."""
        if encoder.config.n_embd != self.config.n_embd or encoder.config.n_layer != self.config.n_layer:
            raise ValueError(f"encoder sizes (n_layer={encoder.config.n_layer}, n_embd={encoder.config.n_embd}) differ from "
                             f"the classifier's (n_layer={self.config.n_layer}, n_embd={self.config.n_embd})")
        self.bert.embeddings.load_state_dict(encoder.embeddings.state_dict())
        self.bert.blocks.load_state_dict(encoder.blocks.state_dict())
        if encoder.pooler is not None:
            self.bert.pooler.load_state_dict(encoder.pooler.state_dict())
        return self
