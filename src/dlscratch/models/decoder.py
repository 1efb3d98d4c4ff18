r"""The decoder-only language model that GPT, LLaMA and their successors share.

:class:`DecoderLM` is the skeleton of every autoregressive Transformer in the book: token ids
are embedded (:meth:`DecoderLM.embed`, the one place models differ before the blocks), pass
through causal :class:`~dlscratch.layers.transformer.Block`\ s, a final norm and a linear head.
A subclass builds ``blocks``, ``norm_f`` and ``lm_head`` from the kit's parts and says how it
embeds; the forward pass, the loss, the KV caches and generation are written here once.

Introduced in chapter 17, *GPT*. Symbols: B batch, T time, C channels, V vocabulary.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention.modules import start_kv_caches, stop_kv_caches
from .fused_decoder import FusedDecoder
from .generation import generate

__all__ = ["DecoderLM", "gpt2_init"]


def gpt2_init(module: nn.Module) -> None:
    r"""GPT-2's initialisation of one module: Linear and Embedding weights :math:`\mathcal{N}(0, 0.02^2)`, biases 0.

    Apply it to a whole model with ``model.apply(gpt2_init)``, then
    :meth:`DecoderLM.scale_residual_init`. Chapter 17.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class DecoderLM(nn.Module):
    r"""Embed, causal blocks, final norm, head: :math:`p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(W\,\operatorname{N}(h_L))`.

    .. math::

        h_0 = \operatorname{embed}(x), \qquad h_\ell = \operatorname{Block}_\ell(h_{\ell-1}), \qquad
        \text{logits} = \operatorname{N}(h_L)\, W^\top

    Subclasses set ``config`` (with ``vocab_size`` and ``block_size``), ``blocks`` (an
    ``nn.ModuleList`` of :class:`~dlscratch.layers.transformer.Block`), ``norm_f`` and
    ``lm_head``, and implement :meth:`embed`. When the attention layers hold KV caches
    (:meth:`start_cache`), ``idx`` holds only the new tokens, which sit after the cached ones.

    Shape:
        - idx: :math:`(B, T)` token ids, :math:`T \le` ``block_size`` (counting cached tokens)
        - targets: :math:`(B, T)` next-token ids, ``-1`` to ignore a position
        - output: ``(logits, loss)``, logits :math:`(B, T, V)`, loss a scalar or ``None``
    """

    config: object
    blocks: nn.ModuleList
    norm_f: nn.Module
    lm_head: nn.Linear

    def embed(self, idx: torch.Tensor, offset: int) -> torch.Tensor:  # pragma: no cover - abstract
        r"""The input of the first block for tokens at positions ``offset ...``: :math:`(B, T) \to (B, T, C)`."""
        raise NotImplementedError

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        r"""The final norm's output :math:`\operatorname{N}(h_L)`, :math:`(B, T) \to (B, T, C)`: what the head reads.

        A fine-tuning head (chapter 27) reads it too.
        """
        offset = self.cache_length()  # tokens already in the caches (0 without)
        self.check_length(offset, idx.size(1))
        x = self.embed(idx, offset)  # (B, T, C)
        for block in self.blocks:
            x = block(x, is_causal=True)  # (B, T, C)
        return self.norm_f(x)  # (B, T, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        logits = self.lm_head(self.hidden_states(idx))  # (B, T, C) -> (B, T, V)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T), ignore_index=-1)

    def scale_residual_init(self) -> None:
        r"""Redraw the last layer of every residual branch from :math:`\mathcal{N}(0, (0.02/\sqrt{2L})^2)` (GPT-2).

        Each block adds two branches (attention's ``out_proj``, the MLP's ``down``) to the
        residual stream; shrinking their initial weights with depth keeps the stream's variance
        at initialisation independent of the :math:`L` blocks (Radford et al., 2019; nanoGPT).
        """
        std = 0.02 / math.sqrt(2 * len(self.blocks))
        for block in self.blocks:
            for p in (block.attn.out_proj.weight, block.mlp.down.weight):
                nn.init.normal_(p, mean=0.0, std=std)

    def check_length(self, offset: int, T: int) -> None:
        r"""Refuse more than ``block_size`` positions (``offset`` cached, ``T`` new)."""
        block_size = self.config.block_size  # type: ignore[attr-defined]
        if offset + T > block_size:
            raise ValueError(
                f"sequence of length {offset + T} (cached {offset} + new {T}) is longer than block_size={block_size}"
            )

    def cache_length(self) -> int:
        r"""Positions held by the KV caches of the blocks (0 when there are none)."""
        cache = self.blocks[0].attn.cache
        return 0 if cache is None else cache.length

    def start_cache(self, batch_size: int, max_len: int | None = None, *, rolling: bool = False) -> int:
        r"""Give every block's attention an empty KV cache of ``max_len`` (``block_size``) positions; returns bytes.

        With ``rolling``, sliding-window layers get a rolling buffer of ``window`` slots instead (chapter 19).
        """
        max_len = self.config.block_size if max_len is None else max_len  # type: ignore[attr-defined]
        return start_kv_caches(self, batch_size, max_len, rolling=rolling)

    def stop_cache(self) -> None:
        r"""Drop the KV caches: the next forward pass starts at position 0 again."""
        stop_kv_caches(self)

    @torch.inference_mode()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, **sampling: Any) -> torch.Tensor:
        r"""Continue ``idx`` by ``max_new_tokens`` sampled tokens: :func:`dlscratch.models.generation.generate`.

        ``sampling`` takes that function's keywords (``temperature``, ``top_k``, ``top_p``,
        ``generator``, ``use_cache``). The steps run
        :class:`~dlscratch.models.fused_decoder.FusedDecoder` on this model's weights, in
        evaluation mode (restored afterwards): the logits of :meth:`forward`, with the attention
        this model was built with, without the per-call costs of the module layer.
        """
        was_training = self.training
        self.eval()
        try:
            return generate(FusedDecoder(self), idx, max_new_tokens, **sampling)
        finally:
            self.train(was_training)
