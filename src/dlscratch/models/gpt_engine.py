r"""An inference engine for a :class:`~dlscratch.models.gpt.GPT`: the same weights, one function.

A cached decoding step of a small GPT does almost no arithmetic: one token through the model is
about :math:`2N` FLOPs, some 0.4 MFLOP for the chapter's CPU model, a few microseconds of this
CPU. Yet it goes through seventeen ``nn.Module`` calls, each with its Python bookkeeping
(``__call__``, hook checks, submodule lookups), and a few dozen tensor operations, each with
its dispatch; on a CPU those fixed costs add up to hundreds of microseconds, so they, not the
arithmetic, set the speed of cached generation. :class:`GPTEngine` removes the module layer:
it keeps references to the model's parameter tensors (not copies, so it always runs the
model's current weights) and computes the forward pass of
:class:`~dlscratch.models.gpt.GPT` as one function of plain tensor operations. It accepts the
same ``(idx, kv_cache=...)`` call as the model, so
:func:`~dlscratch.models.generation.generate` runs it unchanged; :meth:`GPT.generate
<dlscratch.models.gpt.GPT.generate>` uses it.

Inference only: no dropout and no gradients (call it under ``torch.inference_mode``, as
``generate`` does). Introduced in chapter 17, *GPT*. Symbols as in :mod:`dlscratch.models.gpt`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..layers.attention.kv_cache import KVCache
from .gpt import GPT, Block, causal_sdpa, split_qkv

__all__ = ["BlockWeights", "GPTEngine"]


class BlockWeights(NamedTuple):
    r"""The tensors of one :class:`~dlscratch.models.gpt.Block` (biases ``None`` when ``bias=False``)."""

    ln_1: torch.Tensor
    ln_1_bias: torch.Tensor | None
    attn: torch.Tensor  # c_attn, (3C, C)
    attn_bias: torch.Tensor | None
    attn_proj: torch.Tensor  # attn.c_proj, (C, C)
    attn_proj_bias: torch.Tensor | None
    ln_2: torch.Tensor
    ln_2_bias: torch.Tensor | None
    fc: torch.Tensor  # mlp.c_fc, (4C, C)
    fc_bias: torch.Tensor | None
    mlp_proj: torch.Tensor  # mlp.c_proj, (C, 4C)
    mlp_proj_bias: torch.Tensor | None

    @classmethod
    def of(cls, block: Block) -> BlockWeights:
        r"""The weights of ``block`` (the tensors themselves, not copies)."""
        a, m = block.attn, block.mlp
        return cls(
            block.ln_1.weight, block.ln_1.bias, a.c_attn.weight, a.c_attn.bias, a.c_proj.weight, a.c_proj.bias,
            block.ln_2.weight, block.ln_2.bias, m.c_fc.weight, m.c_fc.bias, m.c_proj.weight, m.c_proj.bias,
        )


class GPTEngine:
    r"""The forward pass of a :class:`~dlscratch.models.gpt.GPT` as one function of its weights.

    .. math::

        x \leftarrow x + W_O\, \operatorname{attn}(\operatorname{LN}_1(x)), \qquad
        x \leftarrow x + W_2\, \operatorname{GELU}(W_1\, \operatorname{LN}_2(x))

    for each block, between the embeddings :math:`W_E[x_t] + W_P[t]` and the tied head, exactly
    as :meth:`GPT.forward <dlscratch.models.gpt.GPT.forward>` in evaluation mode (the tests check
    the logits agree, with and without a :class:`~dlscratch.layers.attention.kv_cache.KVCache`).
    Chapter 17, *GPT*.

    Args:
        model: the GPT whose weights to run.

    Shape:
        - idx: :math:`(B, T)` token ids; output: ``(logits, None)``, logits :math:`(B, T, V)`
    """

    def __init__(self, model: GPT) -> None:
        if not isinstance(model, GPT):
            raise ValueError(f"GPTEngine runs a dlscratch GPT, got {type(model).__name__}")
        self.model = model
        self.config = model.config
        self.wte, self.wpe = model.wte.weight, model.wpe.weight  # (V, C), (block_size, C)
        self.ln_f, self.ln_f_bias = model.ln_f.weight, model.ln_f.bias
        self.blocks = [BlockWeights.of(block) for block in model.h]

    def parameters(self) -> Iterator[torch.Tensor]:
        r"""The model's parameters (as ``nn.Module.parameters``: for their device and dtype)."""
        return self.model.parameters()

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        r"""An empty cache for ``batch_size`` sequences: :meth:`GPT.new_kv_cache <dlscratch.models.gpt.GPT.new_kv_cache>`."""
        return self.model.new_kv_cache(batch_size, max_len)

    def __call__(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> tuple[torch.Tensor, None]:
        r"""Logits for the tokens ``idx``, at positions ``kv_cache.length ...`` when a cache is given."""
        B, T = idx.shape
        C, nh = self.config.n_embd, self.config.n_head
        pos0 = 0 if kv_cache is None else kv_cache.length  # tokens already in the cache
        if pos0 + T > self.config.block_size:
            raise ValueError(
                f"sequence of length {pos0 + T} (cached {pos0} + new {T}) is longer than "
                f"block_size={self.config.block_size}"
            )
        x = F.embedding(idx, self.wte) + self.wpe[pos0 : pos0 + T]  # (B, T, C)
        for layer, w in enumerate(self.blocks):
            q, k, v = split_qkv(F.linear(F.layer_norm(x, (C,), w.ln_1, w.ln_1_bias), w.attn, w.attn_bias), nh)
            if kv_cache is not None:
                k, v = kv_cache.update(layer, k, v)  # (B, nh, S, hs), S = cached + T
            y = causal_sdpa(q, k, v).transpose(1, 2).reshape(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
            x = x + F.linear(y, w.attn_proj, w.attn_proj_bias)  # (B, T, C)
            h = F.gelu(F.linear(F.layer_norm(x, (C,), w.ln_2, w.ln_2_bias), w.fc, w.fc_bias))  # (B, T, 4C)
            x = x + F.linear(h, w.mlp_proj, w.mlp_proj_bias)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.advance(T)
        return F.linear(F.layer_norm(x, (C,), self.ln_f, self.ln_f_bias), self.wte), None  # (B, T, V)
