r"""Inference without the module layer: a decoder LM's forward pass as plain tensor operations.

A cached decoding step of a small model does almost no arithmetic: one token through the
chapter-17 GPT is about :math:`2N` FLOPs, some 0.4 MFLOP, a few microseconds of a CPU. Yet it
goes through a dozen and more ``nn.Module`` calls, each with its Python bookkeeping
(``__call__``, hook checks, submodule look-ups), and a few dozen tensor operations, each with its
dispatch; on a CPU those fixed costs, not the arithmetic, set the speed. :class:`FusedDecoder`
removes the module layer for any :class:`~dlscratch.models.decoder.DecoderLM` built from the
kit: it keeps references to the model's parameter tensors (not copies, so it runs the current
weights; only the query/key/value matrices are stacked once, when it is built), runs each norm
as PyTorch's fused kernel and each feed-forward network as two or three ``F.linear`` calls, and
leaves attention to the layer's own
:meth:`~dlscratch.layers.attention.modules.MultiHeadAttention.attend_heads`, so positions, GQA,
the sliding window, the KV cache and the attend choice (written or SDPA) are the model's. A part
it does not know runs its own ``forward``.

Inference only: call it under ``torch.inference_mode`` with the model in ``eval()`` mode, as
:meth:`DecoderLM.generate <dlscratch.models.decoder.DecoderLM.generate>` does. Introduced in
chapter 17, *GPT*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention.functional import split_heads
from ..layers.attention.modules import MultiHeadAttention
from ..layers.feedforward import MLP, SwiGLU
from ..layers.norms import LayerNorm, RMSNorm
from ..layers.transformer import Block

__all__ = ["fused_norm", "fused_mlp", "fused_self_attention", "fused_block", "FusedDecoder"]

Step = Callable[[torch.Tensor], torch.Tensor]


def fused_norm(norm: nn.Module) -> Step:
    r"""A kit norm as PyTorch's fused kernel on the same weights (its own ``forward`` otherwise)."""
    if isinstance(norm, LayerNorm):
        return partial(F.layer_norm, normalized_shape=(norm.dim,), weight=norm.weight, bias=norm.bias, eps=norm.eps)
    if isinstance(norm, RMSNorm):
        return partial(F.rms_norm, normalized_shape=(norm.dim,), weight=norm.weight, eps=norm.eps)
    return norm.forward


def fused_mlp(mlp: nn.Module) -> Step:
    r"""A kit feed-forward network as plain ``F.linear`` calls (its own ``forward`` otherwise)."""
    if isinstance(mlp, MLP):
        (w1, b1), (w2, b2), act = _weights(mlp.up), _weights(mlp.down), mlp.act
        return lambda x: F.linear(act(F.linear(x, w1, b1)), w2, b2)  # (B, T, C) -> (B, T, F) -> (B, T, C)
    if isinstance(mlp, SwiGLU):
        (wg, bg), (w1, b1), (w2, b2) = _weights(mlp.gate), _weights(mlp.up), _weights(mlp.down)
        return lambda x: F.linear(F.silu(F.linear(x, wg, bg)) * F.linear(x, w1, b1), w2, b2)  # (B, T, C)
    return mlp.forward


def _weights(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    return linear.weight, linear.bias  # the parameters themselves: updates in place are seen


def fused_self_attention(attn: MultiHeadAttention) -> Step:
    r"""Causal self-attention with one stacked :math:`[W_Q; W_K; W_V]` projection and no module calls."""
    nh, nkv, hs = attn.num_heads, attn.num_kv_heads, attn.head_dim
    w = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])  # ((nh + 2 nkv) hs, C)
    b = None if attn.q_proj.bias is None else torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
    w_o, b_o = attn.out_proj.weight, attn.out_proj.bias

    def step(x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        qkv = F.linear(x, w, b)  # (B, T, (nh + 2 nkv) hs)
        if nkv == nh:  # one view and one permute for all three
            q, k, v = qkv.view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, T, hs)
        else:
            q, k, v = (split_heads(t, h) for t, h in zip(qkv.split([nh * hs, nkv * hs, nkv * hs], dim=-1), (nh, nkv, nkv)))
        out, _ = attn.attend_heads(q, k, v, causal=True)  # (B, nh, T, hs)
        return F.linear(out.transpose(1, 2).reshape(B, T, C), w_o, b_o)  # (B, T, C)

    return step


def fused_block(block: Block) -> Step:
    r"""A pre-LN block as :math:`x + \operatorname{Attn}(\operatorname{N}_1 x)`, then :math:`x + \operatorname{FFN}(\operatorname{N}_2 x)`."""
    if not block.norm_first:
        return partial(block.forward, is_causal=True)
    n1, attn, n2, mlp = fused_norm(block.norm1), fused_self_attention(block.attn), fused_norm(block.norm2), fused_mlp(block.mlp)

    def step(x: torch.Tensor) -> torch.Tensor:
        x = x + attn(n1(x))  # (B, T, C)
        return x + mlp(n2(x))  # (B, T, C)

    return step


class FusedDecoder:
    r"""The forward pass of a :class:`~dlscratch.models.decoder.DecoderLM` as one function of its weights.

    It takes the model's call, ``decoder(idx) -> (logits, None)``, and its cache methods, so
    :func:`~dlscratch.models.generation.generate` runs either. The tests check that its logits
    equal the model's, with and without a KV cache, for GPT's and LLaMA's kinds of parts.
    Chapter 17, *GPT*.

    Args:
        model: a decoder LM with ``embed``, ``blocks`` of :class:`~dlscratch.layers.transformer.Block`,
            ``norm_f``, ``lm_head`` and ``config.block_size``.

    Shape:
        - idx: :math:`(B, T)` token ids; output: ``(logits, None)``, logits :math:`(B, T, V)`
    """

    def __init__(self, model: nn.Module) -> None:
        missing = [a for a in ("embed", "blocks", "norm_f", "lm_head", "config", "cache_length") if not hasattr(model, a)]
        if missing or not all(isinstance(b, Block) for b in getattr(model, "blocks", [None])):
            raise ValueError(
                f"FusedDecoder runs a decoder LM of kit Blocks (embed, blocks, norm_f, lm_head), got "
                f"{type(model).__name__}" + (f" without {missing}" if missing else " with blocks that are not kit Blocks")
            )
        self.model, self.config = model, model.config
        self.first_attn = model.blocks[0].attn  # its cache's length is the position of the next token
        self.steps = [fused_block(block) for block in model.blocks]
        self.norm_f = fused_norm(model.norm_f)
        self.head, self.head_bias = model.lm_head.weight, model.lm_head.bias  # (V, C)

    def parameters(self) -> Iterator[torch.Tensor]:
        r"""The model's parameters (for their device and dtype)."""
        return self.model.parameters()

    def cache_length(self) -> int:
        r"""See :meth:`DecoderLM.cache_length <dlscratch.models.decoder.DecoderLM.cache_length>`."""
        cache = self.first_attn.cache
        return 0 if cache is None else cache.length

    def start_cache(self, batch_size: int, max_len: int | None = None, *, rolling: bool = False) -> int:
        r"""See :meth:`DecoderLM.start_cache <dlscratch.models.decoder.DecoderLM.start_cache>`."""
        return self.model.start_cache(batch_size, max_len, rolling=rolling)

    def stop_cache(self) -> None:
        r"""See :meth:`DecoderLM.stop_cache <dlscratch.models.decoder.DecoderLM.stop_cache>`."""
        self.model.stop_cache()

    def __call__(self, idx: torch.Tensor) -> tuple[torch.Tensor, None]:
        r"""Logits for the tokens ``idx``, after the cached positions when the model holds caches."""
        offset = self.cache_length()
        self.model.check_length(offset, idx.size(1))
        x = self.model.embed(idx, offset)  # (B, T, C)
        for step in self.steps:
            x = step(x)  # (B, T, C)
        return F.linear(self.norm_f(x), self.head, self.head_bias), None  # (B, T, V)
