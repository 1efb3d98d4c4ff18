r"""T5 (Raffel et al., 2020): an encoder-decoder Transformer for text-to-text tasks.

Chapter 16's encoder-decoder with the changes T5 made: pre-norm residuals with an RMSNorm
without bias (T5's "layer norm"), no position embeddings but a relative position bias shared by
the layers of each stack (:class:`~dlscratch.layers.relative_position.RelativePositionBias`),
bias-free projections, unscaled dot-product attention (the :math:`1/\sqrt{d_{kv}}` lives in the
initialisation of :math:`W_Q` instead), one embedding shared by the encoder, the decoder and the
output layer, and the decoder's output rescaled by :math:`C^{-1/2}` before that tied output layer.
The feed-forward network is the original ReLU one (``feed_forward_proj="relu"`` in Hugging
Face's ``T5Config``). Weights map one to one to ``transformers.T5ForConditionalGeneration``
(:func:`to_hf_state_dict`).

Introduced in chapter 28, *T5 and the encoder-decoder family*. Symbols: B batch, S source
length, T target length, C ``d_model``, nh heads, hs ``d_kv``, F ``d_ff``, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..layers.attention.functional import merge_heads, scaled_dot_product_attention, split_heads
from ..layers.feedforward import MLP
from ..layers.norms import RMSNorm
from ..layers.relative_position import RelativePositionBias
from .decoding import beam_search, check_special_ids, greedy_search

__all__ = ["T5Config", "T5Attention", "T5Block", "T5Stack", "T5", "to_hf_state_dict", "hf_config"]


@dataclass(frozen=True)
class T5Config:
    r"""Sizes of a T5 model (Hugging Face's ``T5Config`` names; the special ids are the book's)."""

    vocab_size: int = 131  # V: tokens, specials and sentinels included
    d_model: int = 64  # C: width of the residual stream
    num_heads: int = 4  # nh: attention heads
    d_kv: int = 16  # hs: width of one head (T5 does not tie it to C / nh)
    d_ff: int = 256  # F: hidden width of the ReLU feed-forward network
    num_layers: int = 2  # encoder blocks
    num_decoder_layers: int = 2  # decoder blocks
    relative_attention_num_buckets: int = 32  # buckets of the relative position bias
    relative_attention_max_distance: int = 128  # distances from here on share the last bucket
    dropout_rate: float = 0.0  # after the embeddings, every sublayer and the final norm (T5: 0.1)
    layer_norm_epsilon: float = 1e-6  # the RMSNorm's epsilon
    pad_id: int = 0  # padding, ignored by attention and the loss
    eos_id: int = 1  # ends every input and target
    bos_id: int = 2  # the decoder's first input (T5 uses pad_id; the kit's decoding needs its own id)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "d_kv", "d_ff", "num_layers", "num_decoder_layers",
                     "relative_attention_num_buckets", "relative_attention_max_distance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
        check_special_ids(self.vocab_size, pad_id=self.pad_id, eos_id=self.eos_id, bos_id=self.bos_id)


class T5Attention(nn.Module):
    r"""Multi-head attention without biases and without the :math:`1/\sqrt{hs}` scale.

    .. math::

        \operatorname{head}_h = \operatorname{softmax}\bigl(Q_h K_h^\top + B_h + M\bigr) V_h, \qquad
        Y = [\operatorname{head}_1, \ldots, \operatorname{head}_{nh}]\, W_O^\top

    with the position bias :math:`B` (self-attention only) and the mask :math:`M`. The
    projections keep Hugging Face's names ``q``, ``k``, ``v``, ``o``. Chapter 28.

    Shape:
        - x: :math:`(B, T, C)`; memory: :math:`(B, S, C)` (``None``: self-attention)
        - bias: broadcastable to :math:`(B, nh, T, S)`; mask: bool, ``True`` = may attend
        - output: :math:`(B, T, C)`
    """

    def __init__(self, d_model: int, num_heads: int, d_kv: int) -> None:
        super().__init__()
        self.num_heads, inner = num_heads, num_heads * d_kv
        self.q = nn.Linear(d_model, inner, bias=False)
        self.k = nn.Linear(d_model, inner, bias=False)
        self.v = nn.Linear(d_model, inner, bias=False)
        self.o = nn.Linear(inner, d_model, bias=False)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, *, bias: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        kv = x if memory is None else memory
        q = split_heads(self.q(x), self.num_heads)  # (B, T, nh hs) -> (B, nh, T, hs)
        k = split_heads(self.k(kv), self.num_heads)  # (B, nh, S, hs)
        v = split_heads(self.v(kv), self.num_heads)  # (B, nh, S, hs)
        out, _ = scaled_dot_product_attention(q, k, v, mask=mask, scale=1.0, bias=bias)  # (B, nh, T, hs)
        return self.o(merge_heads(out))  # (B, T, nh hs) -> (B, T, C)


class T5Block(nn.Module):
    r"""A pre-norm block: self-attention, (decoder only) cross-attention, ReLU FFN, each a residual.

    .. math::

        x \leftarrow x + \operatorname{Attn}(\operatorname{RMSNorm}(x)), \quad
        x \leftarrow x + \operatorname{Cross}(\operatorname{RMSNorm}(x), m), \quad
        x \leftarrow x + W_o \operatorname{ReLU}(W_i \operatorname{RMSNorm}(x))

    Chapter 28.

    Shape:
        - x: :math:`(B, T, C)`; memory: :math:`(B, S, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, cfg: T5Config, *, cross: bool) -> None:
        super().__init__()
        C, eps = cfg.d_model, cfg.layer_norm_epsilon
        self.self_attn_norm, self.self_attn = RMSNorm(C, eps), T5Attention(C, cfg.num_heads, cfg.d_kv)
        if cross:
            self.cross_attn_norm, self.cross_attn = RMSNorm(C, eps), T5Attention(C, cfg.num_heads, cfg.d_kv)
        self.ffn_norm, self.ffn = RMSNorm(C, eps), MLP(C, cfg.d_ff, activation="relu", bias=False)
        self.drop = nn.Dropout(cfg.dropout_rate)

    def forward(self, x: torch.Tensor, *, bias: torch.Tensor, mask: torch.Tensor | None,
                memory: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.self_attn(self.self_attn_norm(x), bias=bias, mask=mask))  # (B, T, C)
        if memory is not None:
            x = x + self.drop(self.cross_attn(self.cross_attn_norm(x), memory, mask=memory_mask))  # (B, T, C)
        return x + self.drop(self.ffn(self.ffn_norm(x)))  # (B, T, C)


class T5Stack(nn.Module):
    r"""The encoder (bidirectional) or the decoder (causal, with cross-attention) of T5.

    The relative position bias is computed once per call and shared by every block; a final
    RMSNorm closes the stack. The token embedding is the model's, passed in. Chapter 28.

    Shape:
        - ids: :math:`(B, L)`; output: :math:`(B, L, C)`
    """

    def __init__(self, cfg: T5Config, *, decoder: bool) -> None:
        super().__init__()
        self.decoder = decoder
        self.relative_bias = RelativePositionBias(cfg.num_heads, cfg.relative_attention_num_buckets,
                                                  cfg.relative_attention_max_distance, bidirectional=not decoder)
        n = cfg.num_decoder_layers if decoder else cfg.num_layers
        self.blocks = nn.ModuleList(T5Block(cfg, cross=decoder) for _ in range(n))
        self.final_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.drop = nn.Dropout(cfg.dropout_rate)

    def forward(self, x: torch.Tensor, *, key_pad: torch.Tensor | None = None, memory: torch.Tensor | None = None,
                memory_pad: torch.Tensor | None = None) -> torch.Tensor:
        B, L, C = x.shape
        bias = self.relative_bias(L, L)  # (1, nh, L, L): computed once, shared by the blocks
        mask = None if key_pad is None else ~key_pad[:, None, None, :]  # (B, 1, 1, L)
        if self.decoder:
            causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()  # (L, L)
            mask = causal if mask is None else mask & causal
        memory_mask = None if memory_pad is None else ~memory_pad[:, None, None, :]  # (B, 1, 1, S)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, bias=bias, mask=mask, memory=memory, memory_mask=memory_mask)  # (B, L, C)
        return self.drop(self.final_norm(x))


class T5(nn.Module):
    r"""T5: encoder, decoder, and the shared embedding as the rescaled output layer.

    .. math::

        \mathbf{m} = \operatorname{Enc}(E[x]), \qquad
        p(y_t \mid y_{<t}, x) = \operatorname{softmax}\!\bigl(C^{-1/2}\, E\, \operatorname{Dec}(E[y_{<t}], \mathbf{m})_t\bigr)

    The weights start as T5's do (:meth:`reset_parameters`). Chapter 28.

    Shape:
        - src: :math:`(B, S)` ids padded with ``pad_id``; tgt_in: :math:`(B, T)` ids starting with
          ``bos_id``; output: :math:`(B, T, V)` logits
    """

    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = T5Stack(cfg, decoder=False)
        self.decoder = T5Stack(cfg, decoder=True)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        r"""T5's initialisation: :math:`\mathcal{N}(0, \sigma^2)` with the scale folded into :math:`W_Q`.

        Embedding :math:`\sigma = 1`; :math:`W_Q`: :math:`(C\,hs)^{-1/2}` (the missing
        :math:`1/\sqrt{hs}` of the scores); :math:`W_K, W_V`: :math:`C^{-1/2}`; :math:`W_O`:
        :math:`(nh\,hs)^{-1/2}`; :math:`W_i`: :math:`C^{-1/2}`; :math:`W_o`: :math:`F^{-1/2}`;
        position biases: :math:`C^{-1/2}`; norm gains 1.
        """
        c = self.cfg
        nn.init.normal_(self.shared.weight, std=1.0)
        for m in self.modules():
            if isinstance(m, T5Attention):
                nn.init.normal_(m.q.weight, std=(c.d_model * c.d_kv) ** -0.5)
                nn.init.normal_(m.k.weight, std=c.d_model**-0.5)
                nn.init.normal_(m.v.weight, std=c.d_model**-0.5)
                nn.init.normal_(m.o.weight, std=(c.num_heads * c.d_kv) ** -0.5)
            elif isinstance(m, MLP):
                nn.init.normal_(m.up.weight, std=c.d_model**-0.5)
                nn.init.normal_(m.down.weight, std=c.d_ff**-0.5)
            elif isinstance(m, RelativePositionBias):
                nn.init.normal_(m.weight, std=c.d_model**-0.5)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The memory :math:`(B, S, C)` and the source padding mask :math:`(B, S)` (``True`` = pad)."""
        src_pad = src == self.cfg.pad_id  # (B, S)
        return self.encoder(self.shared(src), key_pad=src_pad), src_pad

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        r"""Logits :math:`(B, T, V)` of every target position, given the memory (causal)."""
        h = self.decoder(self.shared(tgt_in), memory=memory, memory_pad=src_pad)  # (B, T, C)
        return (h * self.cfg.d_model**-0.5) @ self.shared.weight.T  # (B, T, C) @ (C, V) -> (B, T, V)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)  # (B, T, V), teacher forcing

    def _step(self, prefix: torch.Tensor, state: None, context: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, None]:
        memory, src_pad = context
        return self.decode(prefix, memory, src_pad)[:, -1], None  # (N, V): rerun the decoder on the prefix

    @torch.inference_mode()
    def generate(self, src: torch.Tensor, max_len: int, beam_size: int = 1) -> torch.Tensor:
        r"""Decode with the kit's :func:`~dlscratch.models.decoding.greedy_search` (``beam_size=1``) or beam search.

        Returns:
            :math:`(B, T)` ids after ``<bos>``: the output, ``<eos>``, then ``<pad>`` (:math:`T \le` ``max_len``).
        """
        ids = dict(bos_id=self.cfg.bos_id, eos_id=self.cfg.eos_id, pad_id=self.cfg.pad_id)
        if beam_size == 1:
            return greedy_search(self._step, None, self.encode(src), max_len, **ids)
        return beam_search(self._step, None, self.encode(src), beam_size, max_len, vocab_size=self.cfg.vocab_size, **ids)[0]


def hf_config(cfg: T5Config) -> dict[str, Any]:
    r"""Keyword arguments for ``transformers.T5Config`` describing the same model (original T5: ReLU, tied, rescaled)."""
    return dict(vocab_size=cfg.vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff, num_layers=cfg.num_layers,
                num_decoder_layers=cfg.num_decoder_layers, num_heads=cfg.num_heads,
                relative_attention_num_buckets=cfg.relative_attention_num_buckets,
                relative_attention_max_distance=cfg.relative_attention_max_distance, dropout_rate=cfg.dropout_rate,
                layer_norm_epsilon=cfg.layer_norm_epsilon, feed_forward_proj="relu", pad_token_id=cfg.pad_id,
                eos_token_id=cfg.eos_id, decoder_start_token_id=cfg.bos_id)


def to_hf_state_dict(model: T5) -> dict[str, torch.Tensor]:
    r"""Our weights under ``T5ForConditionalGeneration``'s names (the tied embedding under all four of its names)."""
    out = {name: model.shared.weight for name in ("shared.weight", "encoder.embed_tokens.weight",
                                                    "decoder.embed_tokens.weight", "lm_head.weight")}
    for side in ("encoder", "decoder"):
        stack = getattr(model, side)
        out[f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = stack.relative_bias.weight
        out[f"{side}.final_layer_norm.weight"] = stack.final_norm.weight
        for i, blk in enumerate(stack.blocks):
            parts = [("SelfAttention", blk.self_attn_norm, blk.self_attn)]
            if side == "decoder":
                parts.append(("EncDecAttention", blk.cross_attn_norm, blk.cross_attn))
            for j, (name, norm, attn) in enumerate(parts):
                out[f"{side}.block.{i}.layer.{j}.layer_norm.weight"] = norm.weight
                for p in ("q", "k", "v", "o"):
                    out[f"{side}.block.{i}.layer.{j}.{name}.{p}.weight"] = getattr(attn, p).weight
            f = len(parts)
            out[f"{side}.block.{i}.layer.{f}.layer_norm.weight"] = blk.ffn_norm.weight
            out[f"{side}.block.{i}.layer.{f}.DenseReluDense.wi.weight"] = blk.ffn.up.weight
            out[f"{side}.block.{i}.layer.{f}.DenseReluDense.wo.weight"] = blk.ffn.down.weight
    return out
