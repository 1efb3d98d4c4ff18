r"""The Transformer's layers: layer norm, the position-wise feed-forward block, encoder and
decoder layers (post-LN and pre-LN) and their stacks.

Introduced in chapter 15 (*The Transformer encoder*) and chapter 16 (*The full
encoder-decoder Transformer*). Attention is the chapter-12 :class:`MultiHeadAttention`; every
layer copies its weights from the matching ``torch.nn`` layer with ``load_from_torch``
(``batch_first=True``). Masks follow the book's convention: ``mask`` is ``True`` where a query
may attend; ``*_key_padding_mask`` is ``True`` at padding. Unlike torch, attention weights get
no dropout (the layers agree with torch's in evaluation mode).

Symbols: B batch, T (target) length, S source length, C ``d_model``, F ``dim_feedforward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import MultiHeadAttention
from .dropout import Dropout

__all__ = [
    "LayerNorm",
    "PositionwiseFeedForward",
    "TransformerLayerConfig",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerDecoder",
    "encoder_layer_params",
    "decoder_layer_params",
]


class LayerNorm(nn.Module):
    r"""Layer normalisation over the last dimension, as ``nn.LayerNorm(C)``.

    .. math::

        \mu_t = \frac{1}{C}\sum_c x_{tc}, \quad \sigma_t^2 = \frac{1}{C}\sum_c (x_{tc} - \mu_t)^2,
        \quad y_{tc} = \gamma_c \frac{x_{tc} - \mu_t}{\sqrt{\sigma_t^2 + \epsilon}} + \beta_c

    Each token is normalised with its own statistics, so no token depends on another.
    Chapter 15.

    Shape:
        - x: :math:`(\ldots, C)`; output: same shape
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5) -> None:
        super().__init__()
        if normalized_shape < 1:
            raise ValueError(f"normalized_shape must be positive, got {normalized_shape}")
        self.normalized_shape = normalized_shape  # C
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(normalized_shape))  # gamma
        self.bias = nn.Parameter(torch.zeros(normalized_shape))  # beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(-1) != self.normalized_shape:
            raise ValueError(f"expected last dimension {self.normalized_shape}, got shape {tuple(x.shape)}")
        mu = x.mean(dim=-1, keepdim=True)  # (..., 1)
        var = (x - mu).pow(2).mean(dim=-1, keepdim=True)  # (..., 1) biased variance
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class PositionwiseFeedForward(nn.Module):
    r"""The same two-layer MLP applied to every position: Linear → ReLU → Dropout → Linear.

    .. math:: \operatorname{FFN}(x) = \max(0,\, x W_1^\top + b_1) W_2^\top + b_2

    ``linear1`` (:math:`C \to F`) and ``linear2`` (:math:`F \to C`) carry the names of
    ``nn.TransformerEncoderLayer``'s. Parameters: :math:`2CF + F + C`. Chapter 15.

    Shape:
        - x: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(torch.relu(self.linear1(x))))  # (B, T, C) -> (B, T, F) -> (B, T, C)


@dataclass(frozen=True)
class TransformerLayerConfig:
    r"""The sizes shared by every layer of a stack (chapter 15)."""

    d_model: int = 64  # C, the width of every token representation
    nhead: int = 4  # attention heads; must divide d_model
    dim_feedforward: int = 256  # F, the FFN's hidden width (4C in the paper)
    dropout: float = 0.1  # on each sublayer's output and inside the FFN
    norm_first: bool = False  # False: post-LN (the paper); True: pre-LN
    eps: float = 1e-5  # layer-norm epsilon

    def __post_init__(self) -> None:
        _check_sizes(self.d_model, self.nhead)

    def kwargs(self) -> dict:
        r"""The keyword arguments of a layer's constructor."""
        return dict(self.__dict__)


def _check_sizes(d_model: int, nhead: int) -> None:
    if d_model < 1 or nhead < 1 or d_model % nhead != 0:
        raise ValueError(f"d_model={d_model} must be a positive multiple of nhead={nhead}")


def encoder_layer_params(d_model: int, dim_feedforward: int) -> int:
    r"""Parameters of one encoder layer: :math:`4C^2 + 2CF + 9C + F` (chapter 15)."""
    C, F = d_model, dim_feedforward
    return 4 * C * C + 2 * C * F + 9 * C + F


def decoder_layer_params(d_model: int, dim_feedforward: int) -> int:
    r"""Parameters of one decoder layer: :math:`8C^2 + 2CF + 15C + F` (chapter 16)."""
    C, F = d_model, dim_feedforward
    return 8 * C * C + 2 * C * F + 15 * C + F


@torch.no_grad()
def _copy_common(ours: nn.Module, theirs: nn.Module, norms: int) -> None:
    if theirs.norm_first != ours.norm_first:
        raise ValueError(f"norm_first mismatch: ours {ours.norm_first}, torch's {theirs.norm_first}")
    if not getattr(theirs.self_attn, "batch_first", True):
        raise ValueError("torch layer must be built with batch_first=True")
    ours.self_attn.load_from_torch(theirs.self_attn)
    ours.ff.load_state_dict({f"{n}.{p}": getattr(getattr(theirs, n), p) for n in ("linear1", "linear2") for p in ("weight", "bias")})
    for i in range(1, norms + 1):
        getattr(ours, f"norm{i}").load_state_dict(getattr(theirs, f"norm{i}").state_dict())


class TransformerEncoderLayer(nn.Module):
    r"""Self-attention and a feed-forward block, each wrapped in a residual connection and a norm.

    .. math::

        \text{post-LN:}\quad x \leftarrow \operatorname{LN}(x + \operatorname{Sub}(x)), \qquad
        \text{pre-LN:}\quad x \leftarrow x + \operatorname{Sub}(\operatorname{LN}(x))

    for :math:`\operatorname{Sub}` = self-attention, then the FFN; dropout on each
    :math:`\operatorname{Sub}` output. Parameters: :math:`4C^2 + 2CF + 9C + F`. Set
    ``keep_attn = True`` to keep the last attention weights in ``last_attn`` :math:`(B, nh, T, T)`.
    Chapter 15; equals ``nn.TransformerEncoderLayer(batch_first=True)`` in eval mode.

    Shape:
        - x: :math:`(B, T, C)`; mask: :math:`(T, T)` bool, ``True`` = may attend;
          key_padding_mask: :math:`(B, T)` bool, ``True`` = padding; output: :math:`(B, T, C)`
    """

    def __init__(
        self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
        norm_first: bool = False, eps: float = 1e-5,
    ) -> None:
        super().__init__()
        _check_sizes(d_model, nhead)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, nhead)
        self.ff = PositionwiseFeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2 = LayerNorm(d_model, eps), LayerNorm(d_model, eps)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)
        self.keep_attn = False  # set True to keep the attention weights of the last call
        self.last_attn: torch.Tensor | None = None

    def _sa(self, x: torch.Tensor, mask: torch.Tensor | None, kpm: torch.Tensor | None) -> torch.Tensor:
        y, w = self.self_attn(x, mask=mask, key_padding_mask=kpm, need_weights=self.keep_attn, average_attn_weights=False)
        if self.keep_attn:
            self.last_attn = w.detach()  # (B, nh, T, T)
        return self.dropout1(y)

    def forward(
        self, x: torch.Tensor, *, mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.norm_first:
            x = x + self._sa(self.norm1(x), mask, key_padding_mask)  # (B, T, C)
            return x + self.dropout2(self.ff(self.norm2(x)))
        x = self.norm1(x + self._sa(x, mask, key_padding_mask))  # (B, T, C)
        return self.norm2(x + self.dropout2(self.ff(x)))

    def load_from_torch(self, layer: nn.TransformerEncoderLayer) -> "TransformerEncoderLayer":
        r"""Copy the weights of an ``nn.TransformerEncoderLayer(batch_first=True)``; returns ``self``."""
        _copy_common(self, layer, norms=2)
        return self


class TransformerDecoderLayer(nn.Module):
    r"""Masked self-attention, cross-attention to the encoder's memory, and a feed-forward block.

    Each of the three sublayers is wrapped as in :class:`TransformerEncoderLayer` (post-LN or
    pre-LN). Self-attention is causal by default (``is_causal=True``): position :math:`t` sees
    targets :math:`\le t`. Parameters: :math:`8C^2 + 2CF + 15C + F`. With ``keep_attn = True``
    the last weights are kept in ``last_self_attn`` and ``last_cross_attn`` :math:`(B, nh, T, S)`.
    Chapter 16; equals ``nn.TransformerDecoderLayer(batch_first=True)`` in eval mode.

    Shape:
        - x: :math:`(B, T, C)`; memory: :math:`(B, S, C)`; tgt_key_padding_mask: :math:`(B, T)`;
          memory_key_padding_mask: :math:`(B, S)`; output: :math:`(B, T, C)`
    """

    def __init__(
        self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
        norm_first: bool = False, eps: float = 1e-5,
    ) -> None:
        super().__init__()
        _check_sizes(d_model, nhead)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, nhead)
        self.multihead_attn = MultiHeadAttention(d_model, nhead)  # cross-attention (torch's name)
        self.ff = PositionwiseFeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2, self.norm3 = (LayerNorm(d_model, eps) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (Dropout(dropout) for _ in range(3))
        self.keep_attn = False
        self.last_self_attn: torch.Tensor | None = None
        self.last_cross_attn: torch.Tensor | None = None

    def _sa(self, x: torch.Tensor, mask: torch.Tensor | None, causal: bool, kpm: torch.Tensor | None) -> torch.Tensor:
        y, w = self.self_attn(x, mask=mask, is_causal=causal, key_padding_mask=kpm,
                              need_weights=self.keep_attn, average_attn_weights=False)
        if self.keep_attn:
            self.last_self_attn = w.detach()  # (B, nh, T, T)
        return self.dropout1(y)

    def _ca(self, x: torch.Tensor, memory: torch.Tensor, kpm: torch.Tensor | None) -> torch.Tensor:
        y, w = self.multihead_attn(x, memory, key_padding_mask=kpm, need_weights=self.keep_attn,
                                   average_attn_weights=False)
        if self.keep_attn:
            self.last_cross_attn = w.detach()  # (B, nh, T, S)
        return self.dropout2(y)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, *, tgt_mask: torch.Tensor | None = None,
        is_causal: bool = True, tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.norm_first:
            x = x + self._sa(self.norm1(x), tgt_mask, is_causal, tgt_key_padding_mask)  # (B, T, C)
            x = x + self._ca(self.norm2(x), memory, memory_key_padding_mask)  # (B, T, C)
            return x + self.dropout3(self.ff(self.norm3(x)))
        x = self.norm1(x + self._sa(x, tgt_mask, is_causal, tgt_key_padding_mask))
        x = self.norm2(x + self._ca(x, memory, memory_key_padding_mask))
        return self.norm3(x + self.dropout3(self.ff(x)))

    def load_from_torch(self, layer: nn.TransformerDecoderLayer) -> "TransformerDecoderLayer":
        r"""Copy the weights of an ``nn.TransformerDecoderLayer(batch_first=True)``; returns ``self``."""
        _copy_common(self, layer, norms=3)
        self.multihead_attn.load_from_torch(layer.multihead_attn)
        return self


class TransformerEncoder(nn.Module):
    r"""``num_layers`` encoder layers; pre-LN stacks end with a final :class:`LayerNorm`.

    Chapter 15. Parameters: ``num_layers`` times :func:`encoder_layer_params`, plus :math:`2C`
    for the final norm of a pre-LN stack.

    Shape:
        - x: :math:`(B, T, C)`; key_padding_mask: :math:`(B, T)`; output: :math:`(B, T, C)`
    """

    def __init__(self, cfg: TransformerLayerConfig, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be positive, got {num_layers}")
        self.cfg = cfg
        self.layers = nn.ModuleList(TransformerEncoderLayer(**cfg.kwargs()) for _ in range(num_layers))
        self.norm = LayerNorm(cfg.d_model, cfg.eps) if cfg.norm_first else None

    def forward(
        self, x: torch.Tensor, *, mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask=mask, key_padding_mask=key_padding_mask)  # (B, T, C)
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(nn.Module):
    r"""``num_layers`` decoder layers; pre-LN stacks end with a final :class:`LayerNorm`.

    Chapter 16.

    Shape:
        - x: :math:`(B, T, C)`; memory: :math:`(B, S, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, cfg: TransformerLayerConfig, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be positive, got {num_layers}")
        self.cfg = cfg
        self.layers = nn.ModuleList(TransformerDecoderLayer(**cfg.kwargs()) for _ in range(num_layers))
        self.norm = LayerNorm(cfg.d_model, cfg.eps) if cfg.norm_first else None

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, *, tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, memory, tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask)  # (B, T, C)
        return x if self.norm is None else self.norm(x)
