r"""GPT: a decoder-only Transformer language model (Radford et al., 2018, 2019).

Token and learned position embeddings, ``n_layer`` pre-LayerNorm blocks of causal
self-attention and an MLP, a final LayerNorm, and a linear head that shares its weight with the
token embedding. The layout follows nanoGPT (Karpathy, 2022): classes in build order, GPT-2
initialisation with the residual projections scaled by :math:`1/\sqrt{2 n_{\text{layer}}}`.

Two attention classes with the same parameters: :class:`CausalSelfAttention` writes the
attention out (chapter 11's mask and softmax), :class:`FastCausalSelfAttention` calls
``F.scaled_dot_product_attention``. ``GPTConfig.fast_attention`` picks one; the tests check they
agree. Generation (sampling, KV cache) lives in :mod:`dlscratch.models.generation`.

Introduced in chapter 17, *GPT*. Symbols: B batch, T time, C channels (``n_embd``), nh heads,
hs head size, V vocabulary, L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.activations import softmax
from ..layers.attention.functional import merge_heads
from ..layers.attention.kv_cache import KVCache, offset_causal_mask
from .generation import generate

__all__ = [
    "GPTConfig", "dropout_layer", "split_qkv", "causal_sdpa", "CausalSelfAttention", "FastCausalSelfAttention",
    "MLP", "Block", "GPT",
]


def dropout_layer(p: float) -> nn.Module:
    r"""``nn.Dropout(p)``, or ``nn.Identity()`` when ``p == 0``.

    The two compute the same function when :math:`p = 0`; the identity is cheaper to call, which
    counts in the one-token steps of cached generation, where per-call overheads dominate.
    """
    return nn.Dropout(p) if p > 0 else nn.Identity()


def split_qkv(qkv: torch.Tensor, n_head: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Split the output of the fused projection :math:`[Q, K, V]` into queries, keys and values, by head.

    One view and one permute: chapter 11's
    :func:`~dlscratch.layers.attention.functional.split_heads` three times over, in two cheap
    operations.

    Shape:
        - qkv: :math:`(B, T, 3C)`; outputs: three :math:`(B, nh, T, hs)`, :math:`hs = C / nh`
    """
    B, T, C3 = qkv.shape
    q, k, v = qkv.view(B, T, 3, n_head, C3 // (3 * n_head)).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, T, hs)
    return q, k, v


def causal_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    r"""Causal attention of :math:`T` queries, the last of :math:`S` positions, by ``F.scaled_dot_product_attention``.

    Query :math:`i` sees keys :math:`j \le S - T + i` (``offset_causal_mask``). The mask is built
    only when needed: with :math:`T = S` (no cache) the kernel's own ``is_causal``, with
    :math:`T = 1` (one new token) none at all, since the newest token sees every key.

    Shape:
        - q: :math:`(B, nh, T, hs)`; k, v: :math:`(B, nh, S, hs)`; output: :math:`(B, nh, T, hs)`
    """
    T, S = q.size(2), k.size(2)
    if T == S:  # no cache, or an empty one: the plain causal mask
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    mask = None if T == 1 else offset_causal_mask(T, S, q.device)  # (T, S) or none
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


@dataclass(frozen=True)
class GPTConfig:
    r"""Sizes of a GPT. Presets: :meth:`cpu` (the chapter's) and :meth:`gpu` (nanoGPT's recipe)."""

    vocab_size: int = 65  # V: distinct tokens (65 characters in TinyShakespeare)
    block_size: int = 64  # longest context the model accepts (rows of the position table)
    n_layer: int = 4  # L: number of Transformer blocks
    n_head: int = 4  # nh: attention heads per block
    n_embd: int = 128  # C: width of the residual stream; hs = C / nh
    dropout: float = 0.0  # on attention weights, residual branches and embeddings (training only)
    bias: bool = False  # biases in the Linear and LayerNorm layers (nanoGPT's recipe: none)
    fast_attention: bool = True  # F.scaled_dot_product_attention instead of the written-out attention

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} "
                f"(n_embd % n_head = {self.n_embd % self.n_head})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={self.dropout!r}")

    @classmethod
    def cpu(cls, vocab_size: int = 65) -> GPTConfig:
        r"""The chapter's CPU model: 1 block, 4 heads, 128 wide, context 64, no dropout.

        At a budget of one CPU minute a single block, which reads three to four times as much
        text as nanoGPT's 4-block CPU model in that time, reaches the lower validation loss
        (chapter 17 and ``bench/gpt_cpu.py``).
        """
        return cls(vocab_size=vocab_size, block_size=64, n_layer=1, n_head=4, n_embd=128, dropout=0.0)

    @classmethod
    def reference_cpu(cls, vocab_size: int = 65) -> GPTConfig:
        r"""nanoGPT's README CPU recipe: 4 layers, 4 heads, 128 wide, block 64, no dropout."""
        return cls(vocab_size=vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)

    @classmethod
    def gpu(cls, vocab_size: int = 65) -> GPTConfig:
        r"""nanoGPT's ``shakespeare_char`` recipe: 6 layers, 6 heads, 384 wide, block 256, dropout 0.2."""
        return cls(vocab_size=vocab_size, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2)


class CausalSelfAttention(nn.Module):
    r"""Multi-head causal self-attention, written out.

    .. math::

        \operatorname{head}_h = \operatorname{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt{hs}} + M\right) V_h,
        \qquad M_{ij} = \begin{cases} 0 & j \le i \\ -\infty & j > i \end{cases}

    with :math:`Q, K, V` one ``c_attn`` projection of the input split in three, and the heads
    concatenated and mixed by ``c_proj``. With a :class:`~dlscratch.layers.attention.kv_cache.KVCache`
    the new keys and values are appended to the cache and the queries (at positions
    ``pos ... pos + T - 1``) attend to every cached key up to their own position.

    Chapter 17, *GPT* (the attention itself is chapter 11's).

    Shape:
        - x: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # x -> [q, k, v]
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # heads -> residual
        self.attn_dropout = dropout_layer(config.dropout)
        self.resid_dropout = dropout_layer(config.dropout)
        self.dropout = config.dropout

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Project ``x`` to queries, keys and values, each :math:`(B, nh, T, hs)` (:func:`split_qkv`)."""
        return split_qkv(self.c_attn(x), self.n_head)  # (B, T, 3C) -> 3 x (B, nh, T, hs)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        r"""Causal attention of the :math:`T` queries, the last of :math:`S` positions, to the :math:`S` keys.

        Shape:
            - q: :math:`(B, nh, T, hs)`; k, v: :math:`(B, nh, S, hs)`; output: :math:`(B, nh, T, hs)`
        """
        T, S = q.size(2), k.size(2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, nh, T, hs) @ (B, nh, hs, S) -> (B, nh, T, S)
        att = att.masked_fill(~offset_causal_mask(T, S, q.device), float("-inf"))  # key j <= query pos + i
        att = self.attn_dropout(softmax(att, dim=-1))  # (B, nh, T, S)
        return att @ v  # (B, nh, T, S) @ (B, nh, S, hs) -> (B, nh, T, hs)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x)  # (B, nh, T, hs) each
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)  # (B, nh, S, hs), S = cached + T
        y = merge_heads(self.attend(q, k, v))  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)


class FastCausalSelfAttention(CausalSelfAttention):
    r""":class:`CausalSelfAttention` with the attention step done by ``F.scaled_dot_product_attention``.

    Same parameters and maths; PyTorch may run a fused (flash) kernel that never stores the
    :math:`T \times S` weights. Chapter 17, *GPT*.
    """

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return causal_sdpa(q, k, v, self.dropout if self.training else 0.0)  # (B, nh, T, hs)


class MLP(nn.Module):
    r"""The position-wise feed-forward network: :math:`\operatorname{MLP}(x) = W_2\,\operatorname{GELU}(W_1 x)`, 4x wide.

    Chapter 17, *GPT*.

    Shape:
        - x: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()  # exact (erf) GELU, as nanoGPT; GPT-2 used a tanh approximation
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = dropout_layer(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    r"""A pre-LayerNorm Transformer block.

    .. math::

        x \leftarrow x + \operatorname{Attn}(\operatorname{LN}_1(x)), \qquad
        x \leftarrow x + \operatorname{MLP}(\operatorname{LN}_2(x))

    Chapter 17, *GPT*.

    Shape:
        - x: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        attention = FastCausalSelfAttention if config.fast_attention else CausalSelfAttention
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv_cache, layer)  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T, C)
        return x


class GPT(nn.Module):
    r"""The decoder-only language model: embeddings, ``n_layer`` :class:`Block`\ s, LayerNorm, tied head.

    .. math::

        h_0 = W_E[x_t] + W_P[t], \qquad h_\ell = \operatorname{Block}_\ell(h_{\ell-1}), \qquad
        p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(\operatorname{LN}(h_L)\, W_E^\top)

    The head reuses the token embedding :math:`W_E` (weight tying, Press & Wolf, 2017). Linear
    and embedding weights start from :math:`\mathcal{N}(0, 0.02^2)`, the output projection of
    every residual branch from :math:`\mathcal{N}(0, (0.02/\sqrt{2L})^2)`, biases at 0 (GPT-2).

    Chapter 17, *GPT*.

    ``forward(idx, targets=None, kv_cache=None)``: with a :class:`KVCache`, ``idx`` holds only the
    new tokens, at positions ``kv_cache.length ...``; their keys and values are appended to it.

    Shape:
        - idx: :math:`(B, T)` token ids, :math:`T \le` ``block_size`` (counting the cached tokens)
        - targets: :math:`(B, T)` next-token ids, ``-1`` to ignore a position
        - output: ``(logits, loss)``, logits :math:`(B, T, V)`, loss a scalar or ``None``
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embedding W_E, (V, C)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)  # position embedding W_P, (block, C)
        self.drop = dropout_layer(config.dropout)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: one (V, C) tensor
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # the last layer of each residual branch
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, non_embedding: bool = True) -> int:
        r"""Number of parameters, the tied matrix counted once; without ``wpe`` when ``non_embedding``.

        The position table is left out by default (as nanoGPT does) because it costs no FLOPs;
        the token table stays in, since as the head it does.
        """
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, kv_cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        pos0 = 0 if kv_cache is None else kv_cache.length  # tokens already in the cache
        if pos0 + T > self.config.block_size:
            raise ValueError(
                f"sequence of length {pos0 + T} (cached {pos0} + new {T}) is longer than "
                f"block_size={self.config.block_size}"
            )
        pos_emb = self.wpe.weight[pos0 : pos0 + T]  # (T, C): rows W_P[pos0], ..., W_P[pos0 + T - 1]
        x = self.drop(self.wte(idx) + pos_emb)  # (B, T, C) + (T, C) -> (B, T, C)
        for layer, block in enumerate(self.h):
            x = block(x, kv_cache, layer)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.advance(T)
        logits = self.lm_head(self.ln_f(x))  # (B, T, C) @ (C, V) -> (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T), ignore_index=-1)
        return logits, loss

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        r"""An empty :class:`KVCache` for ``batch_size`` sequences, on this model's device and dtype."""
        c, w = self.config, self.wte.weight
        return KVCache(
            c.n_layer, batch_size, c.n_head, c.block_size if max_len is None else max_len,
            c.n_embd // c.n_head, device=w.device, dtype=w.dtype,
        )

    @torch.inference_mode()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        r"""Continue ``idx`` by ``max_new_tokens`` sampled tokens; see :func:`dlscratch.models.generation.generate`.

        The steps run :class:`~dlscratch.models.gpt_engine.GPTEngine` on this model's weights:
        the same logits as the module's forward pass in evaluation mode (no dropout, whatever
        the mode), without the per-call costs of the module layer.
        """
        from .gpt_engine import GPTEngine  # gpt_engine imports this module

        return generate(
            GPTEngine(self), idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            generator=generator, use_cache=use_cache,
        )
