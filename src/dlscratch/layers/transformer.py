r"""The Transformer's blocks: :class:`Block` (pre-LN or post-LN), the encoder and decoder layers
of the original Transformer and their stacks, all built from the kit's parts.

The parts live once each in :mod:`dlscratch.layers`: the norms (:mod:`~dlscratch.layers.norms`),
the feed-forward networks (:mod:`~dlscratch.layers.feedforward`) and attention
(:mod:`~dlscratch.layers.attention`). Introduced in chapter 15 (*The Transformer encoder*) and
chapter 16 (*The full encoder-decoder Transformer*); GPT (chapter 17) and every later model use
:class:`Block`. The encoder and decoder layers copy their weights from the matching ``torch.nn``
layer with ``load_from_torch`` (``batch_first=True``) and equal it, dropout included (on the
attention weights, inside the FFN and on each sublayer's output). Masks follow the book's
convention: ``mask`` is ``True`` where a query may attend; ``*_key_padding_mask`` is ``True`` at
padding.

Symbols: B batch, T (target) length, S source length, C ``d_model``, F ``dim_feedforward``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .attention import MultiHeadAttention
from .dropout import Dropout
from .feedforward import MLP
from .norms import LayerNorm

__all__ = [
    "residual",
    "Block",
    "TransformerLayerConfig",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerDecoder",
    "encoder_layer_params",
    "decoder_layer_params",
]


def residual(
    x: torch.Tensor, norm: nn.Module, sublayer: Callable[[torch.Tensor], torch.Tensor], dropout: nn.Module, norm_first: bool
) -> torch.Tensor:
    r"""One residual sublayer, pre-LN or post-LN.

    .. math::

        \text{pre-LN:}\quad x + \operatorname{Drop}(\operatorname{Sub}(\operatorname{LN}(x))), \qquad
        \text{post-LN:}\quad \operatorname{LN}(x + \operatorname{Drop}(\operatorname{Sub}(x)))

    Chapter 15.
    """
    if norm_first:
        return x + dropout(sublayer(norm(x)))
    return norm(x + dropout(sublayer(x)))


class Block(nn.Module):
    r"""A Transformer block: self-attention and a feed-forward network, each a residual sublayer.

    .. math::

        x \leftarrow x + \operatorname{Attn}(\operatorname{N}_1(x)), \qquad
        x \leftarrow x + \operatorname{FFN}(\operatorname{N}_2(x))

    in the pre-LN form (``norm_first=True``, GPT-2 and every model since), or
    :math:`x \leftarrow \operatorname{N}_1(x + \operatorname{Attn}(x))`, then
    :math:`x \leftarrow \operatorname{N}_2(x + \operatorname{FFN}(x))` (post-LN, the original
    Transformer). The parts are given, so one class serves the encoder of chapter 15, GPT
    (chapter 17) and LLaMA (chapter 21): ``attn`` a
    :class:`~dlscratch.layers.attention.modules.MultiHeadAttention`, ``mlp`` a
    :class:`~dlscratch.layers.feedforward.MLP` or :class:`~dlscratch.layers.feedforward.SwiGLU`,
    ``norm`` a factory of the norm (called twice). ``dropout`` acts on each sublayer's output.

    Shape:
        - x: :math:`(B, T, C)`; mask: :math:`(T, T)` bool, ``True`` = may attend;
          key_padding_mask: :math:`(B, T)` bool, ``True`` = padding; output: :math:`(B, T, C)`
    """

    def __init__(
        self, attn: MultiHeadAttention, mlp: nn.Module, norm: Callable[[], nn.Module], *,
        norm_first: bool = True, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm1, self.attn = norm(), attn
        self.norm2, self.mlp = norm(), mlp
        self.dropout = Dropout(dropout)

    def self_attention(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
        is_causal: bool | None = None,
    ) -> torch.Tensor:
        r"""The attention sublayer's function (no norm, no residual): :math:`(B, T, C) \to (B, T, C)`."""
        return self.attn(x, mask=mask, key_padding_mask=key_padding_mask, is_causal=is_causal, need_weights=False)[0]

    def forward(
        self, x: torch.Tensor, *, mask: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
        is_causal: bool | None = None,
    ) -> torch.Tensor:
        x = residual(x, self.norm1, lambda h: self.self_attention(h, mask, key_padding_mask, is_causal), self.dropout, self.norm_first)
        return residual(x, self.norm2, self.mlp, self.dropout, self.norm_first)  # (B, T, C)


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
def _copy_common(ours: Block, theirs: nn.Module) -> None:
    if theirs.norm_first != ours.norm_first:
        raise ValueError(f"norm_first mismatch: ours {ours.norm_first}, torch's {theirs.norm_first}")
    if not getattr(theirs.self_attn, "batch_first", True):
        raise ValueError("torch layer must be built with batch_first=True")
    ours.attn.load_from_torch(theirs.self_attn)
    for mine, name in ((ours.mlp.up, "linear1"), (ours.mlp.down, "linear2")):
        mine.load_state_dict(getattr(theirs, name).state_dict())
    # torch numbers the norms in order of the sublayers; a decoder's second one is the cross-attention's
    norms = [ours.norm1, ours.norm_cross, ours.norm2] if isinstance(ours, TransformerDecoderLayer) else [ours.norm1, ours.norm2]
    for i, norm in enumerate(norms, start=1):
        norm.load_state_dict(getattr(theirs, f"norm{i}").state_dict())


def _encoder_parts(d_model: int, nhead: int, dim_feedforward: int, dropout: float, eps: float, causal: bool) -> dict:
    _check_sizes(d_model, nhead)
    return {
        "attn": MultiHeadAttention(d_model, nhead, dropout=dropout, causal=causal),
        "mlp": MLP(d_model, dim_feedforward, activation="relu", dropout=dropout),
        "norm": partial(LayerNorm, d_model, eps),
        "dropout": dropout,
    }


class TransformerEncoderLayer(Block):
    r"""The original Transformer's encoder layer: a :class:`Block` of self-attention and a ReLU MLP.

    .. math::

        \text{post-LN:}\quad x \leftarrow \operatorname{LN}(x + \operatorname{Sub}(x)), \qquad
        \text{pre-LN:}\quad x \leftarrow x + \operatorname{Sub}(\operatorname{LN}(x))

    for :math:`\operatorname{Sub}` = self-attention, then the FFN; dropout on each
    :math:`\operatorname{Sub}` output. Parameters: :math:`4C^2 + 2CF + 9C + F`. Set
    ``layer.attn.keep_weights = True`` to keep the last attention weights in
    ``layer.attn.last_weights`` :math:`(B, nh, T, T)`.
    Chapter 15; equals ``nn.TransformerEncoderLayer(batch_first=True)``.

    Shape:
        - x: :math:`(B, T, C)`; mask: :math:`(T, T)` bool, ``True`` = may attend;
          key_padding_mask: :math:`(B, T)` bool, ``True`` = padding; output: :math:`(B, T, C)`
    """

    def __init__(
        self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
        norm_first: bool = False, eps: float = 1e-5,
    ) -> None:
        super().__init__(**_encoder_parts(d_model, nhead, dim_feedforward, dropout, eps, causal=False), norm_first=norm_first)

    def load_from_torch(self, layer: nn.TransformerEncoderLayer) -> "TransformerEncoderLayer":
        r"""Copy the weights of an ``nn.TransformerEncoderLayer(batch_first=True)``; returns ``self``."""
        _copy_common(self, layer)
        return self


class TransformerDecoderLayer(Block):
    r"""Masked self-attention, cross-attention to the encoder's memory, and a feed-forward block.

    A :class:`Block` with a third residual sublayer between its two:

    .. math::

        x \leftarrow x + \operatorname{SelfAttn}(\operatorname{LN}_1(x)), \quad
        x \leftarrow x + \operatorname{CrossAttn}(\operatorname{LN}_2(x), m), \quad
        x \leftarrow x + \operatorname{FFN}(\operatorname{LN}_3(x))

    (pre-LN; post-LN as in :class:`TransformerEncoderLayer`). Self-attention is causal by
    default (``is_causal=True``): position :math:`t` sees targets :math:`\le t`. Parameters:
    :math:`8C^2 + 2CF + 15C + F`. The weights of the last call are kept in
    ``layer.attn.last_weights`` and ``layer.cross_attn.last_weights`` :math:`(B, nh, T, S)` when
    each module's ``keep_weights`` is set. Chapter 16; equals
    ``nn.TransformerDecoderLayer(batch_first=True)``.

    Shape:
        - x: :math:`(B, T, C)`; memory: :math:`(B, S, C)`; tgt_key_padding_mask: :math:`(B, T)`;
          memory_key_padding_mask: :math:`(B, S)`; output: :math:`(B, T, C)`
    """

    def __init__(
        self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
        norm_first: bool = False, eps: float = 1e-5,
    ) -> None:
        parts = _encoder_parts(d_model, nhead, dim_feedforward, dropout, eps, causal=True)
        super().__init__(**parts, norm_first=norm_first)
        self.cross_attn = MultiHeadAttention(d_model, nhead, dropout=dropout)  # queries: x; keys, values: memory
        self.norm_cross = parts["norm"]()  # the cross-attention's norm (norm2 stays the FFN's)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, memory: torch.Tensor, *, tgt_mask: torch.Tensor | None = None,
        is_causal: bool = True, tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        def cross(h: torch.Tensor) -> torch.Tensor:
            return self.cross_attn(h, memory, key_padding_mask=memory_key_padding_mask, need_weights=False)[0]

        def self_attn(h: torch.Tensor) -> torch.Tensor:
            return self.self_attention(h, tgt_mask, tgt_key_padding_mask, is_causal)

        x = residual(x, self.norm1, self_attn, self.dropout, self.norm_first)  # (B, T, C)
        x = residual(x, self.norm_cross, cross, self.dropout, self.norm_first)  # (B, T, C)
        return residual(x, self.norm2, self.mlp, self.dropout, self.norm_first)  # (B, T, C)

    def load_from_torch(self, layer: nn.TransformerDecoderLayer) -> "TransformerDecoderLayer":
        r"""Copy the weights of an ``nn.TransformerDecoderLayer(batch_first=True)``; returns ``self``."""
        _copy_common(self, layer)
        self.cross_attn.load_from_torch(layer.multihead_attn)
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
