r"""LLaMA: GPT with RMSNorm, rotary positions, grouped-query attention, SwiGLU and no biases.

Touvron et al. (2023a, b) kept GPT's decoder (chapter 17) and changed its parts: RMSNorm
(Zhang & Sennrich, 2019) in front of each branch, rotary position embeddings in attention
instead of a learned position table (Su et al., 2021), a SwiGLU feed-forward network
(Shazeer, 2020), no biases, an untied output head, and in LLaMA 2's larger models grouped-query
attention (Ainslie et al., 2023). :class:`LLaMA` builds that from kit parts. Every change is a
field of :class:`LlamaConfig`, so the ladder from GPT to LLaMA, one change at a time, is a list
of configurations of this one class (:func:`ladder`); the same fields take the 2024-25 speedrun
changes (QK-norm, a squared-ReLU MLP).

Parameter names follow the kit (``wte``, ``blocks.i.attn.q_proj``, ``blocks.i.mlp.gate``, ...);
:mod:`dlscratch.models.llama_hf` maps them one to one onto Hugging Face's ``LlamaForCausalLM``.
Introduced in chapter 21, *LLaMA from scratch*. Symbols: B batch, T time, C ``n_embd``,
V vocabulary, nh heads, nkv key/value heads, hs head size, F the feed-forward width.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention.modules import MultiHeadAttention
from ..layers.attention.qk_norm import QKNormAttention
from ..layers.checks import check_positive_int
from ..layers.dropout import dropout
from ..layers.feedforward import MLP, SwiGLU, swiglu_hidden
from ..layers.norms import make_norm
from ..layers.rope import RoPE
from ..layers.transformer import Block
from .decoder import DecoderLM, gpt2_init

__all__ = ["LlamaConfig", "llama_block", "LLaMA", "ladder"]

CHOICES = {
    "norm": ("rmsnorm", "layernorm"),
    "positions": ("rope", "learned"),
    "mlp": ("swiglu", "gelu", "relu2"),
    "kernels": ("written", "fused"),
}


@dataclass(frozen=True)
class LlamaConfig:
    r"""Sizes and parts of a LLaMA. Presets: :meth:`cpu` (the chapter's) and :meth:`gpu` (nanoGPT's GPU size).

    The defaults of the part fields are LLaMA's; the ladder of chapter 21 sets them to GPT's
    (``norm="layernorm"``, ``positions="learned"``, ``mlp="gelu"``, ``bias=True``, ...).
    """

    vocab_size: int = 65  # V: distinct tokens (65 characters in TinyShakespeare)
    block_size: int = 64  # longest context the model accepts
    n_layer: int = 2  # L: number of Transformer blocks
    n_head: int = 4  # nh: query heads per block
    n_kv_head: int = 2  # nkv: key/value heads (GQA); n_head for multi-head, 1 for multi-query attention
    n_embd: int = 128  # C: width of the residual stream; hs = C / nh
    ffn_hidden: int = 352  # F: the feed-forward width (swiglu_hidden(C, 32) for SwiGLU, 4C for a GELU MLP)
    rope_base: float = 10000.0  # RoPE's frequency base (LLaMA 1 and 2: 10,000)
    norm_eps: float = 1e-6  # the norms' epsilon (HF's LlamaConfig default)
    norm: str = "rmsnorm"  # "rmsnorm" (LLaMA) or "layernorm" (GPT)
    positions: str = "rope"  # "rope" (LLaMA) or "learned" (a GPT position table)
    mlp: str = "swiglu"  # "swiglu" (LLaMA), "gelu" (GPT) or "relu2" (the speedruns' squared ReLU)
    bias: bool = False  # biases in every Linear (and LayerNorm): LLaMA has none
    tie_embeddings: bool = False  # head shares the token embedding (GPT) or has its own matrix (LLaMA)
    qk_norm: bool = False  # RMSNorm on each head's queries and keys before RoPE (speedruns, Qwen 3)
    dropout: float = 0.0  # on attention weights, residual branches and embeddings (training only)
    kernels: str = "written"  # "written": our attention and norms; "fused": PyTorch's kernels, same maths

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_hidden"):
            check_positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} (n_embd % n_head = {self.n_embd % self.n_head})")
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(
                f"n_head={self.n_head} must be a multiple of n_kv_head={self.n_kv_head} "
                f"(n_head % n_kv_head = {self.n_head % self.n_kv_head}): each key/value head serves a whole group of query heads"
            )
        hs = self.n_embd // self.n_head
        if self.positions == "rope" and hs % 2:
            raise ValueError(
                f"RoPE rotates pairs of channels, so the head size n_embd / n_head must be even, "
                f"got n_embd={self.n_embd} / n_head={self.n_head} = {hs}"
            )
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {name}={getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={self.dropout!r}")
        if not self.norm_eps > 0 or not self.rope_base > 1:
            raise ValueError(f"need norm_eps > 0 and rope_base > 1, got norm_eps={self.norm_eps!r}, rope_base={self.rope_base!r}")

    @property
    def head_size(self) -> int:
        r"""hs = C / nh."""
        return self.n_embd // self.n_head

    @classmethod
    def cpu(cls, vocab_size: int = 65) -> LlamaConfig:
        r"""The chapter's CPU model: 1 block, 128 wide, 4 query and 2 key/value heads, SwiGLU 352 wide, context 64.

        As for chapter 17's GPT, a single block beats two at a budget of one CPU minute: a two-block
        model takes about 1.7 times as long per step and ends behind after the same time (chapter 21).
        """
        return cls(vocab_size=vocab_size, block_size=64, n_layer=1, n_head=4, n_kv_head=2, n_embd=128,
                   ffn_hidden=swiglu_hidden(128, 32))

    @classmethod
    def gpu(cls, vocab_size: int = 65) -> LlamaConfig:
        r"""nanoGPT's GPU size (6 blocks, 6 heads, 384 wide, context 256, dropout 0.2) with 2 key/value heads."""
        return cls(vocab_size=vocab_size, block_size=256, n_layer=6, n_head=6, n_kv_head=2, n_embd=384,
                   ffn_hidden=swiglu_hidden(384, 32), dropout=0.2)


def llama_block(c: LlamaConfig) -> Block:
    r"""One pre-norm block: (QK-norm) rotary GQA attention and a SwiGLU (or GELU / ReLU²) feed-forward network."""
    attend = "sdpa" if c.kernels == "fused" else "written"
    kw = {"bias": c.bias, "dropout": c.dropout, "causal": True, "attend": attend}
    if c.qk_norm:
        attn: MultiHeadAttention = QKNormAttention(c.n_embd, c.n_head, c.n_kv_head, eps=c.norm_eps, kernels=c.kernels, **kw)
    else:
        attn = MultiHeadAttention(c.n_embd, c.n_head, c.n_kv_head, **kw)
    if c.positions == "rope":
        attn.positions = RoPE(c.head_size, c.rope_base).hook()  # rotate q and k at their positions (chapter 18)
    if c.mlp == "swiglu":
        mlp: nn.Module = SwiGLU(c.n_embd, c.ffn_hidden, bias=c.bias)
    else:
        mlp = MLP(c.n_embd, c.ffn_hidden, activation=c.mlp, bias=c.bias)
    norm = partial(make_norm, c.norm, c.n_embd, kernels=c.kernels, eps=c.norm_eps, bias=c.bias)
    return Block(attn, mlp, norm, dropout=c.dropout)


class LLaMA(DecoderLM):
    r"""LLaMA's decoder: token embedding, ``n_layer`` :func:`llama_block`\ s, RMSNorm, an untied head.

    .. math::

        h_0 = W_E[x_t], \qquad h_\ell = \operatorname{Block}_\ell(h_{\ell-1}), \qquad
        p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(W_{\text{head}}\, \operatorname{RMSNorm}(h_L))

    Positions enter only inside attention, as rotations of queries and keys; the head
    :math:`W_{\text{head}}` is its own :math:`V \times C` matrix, as in LLaMA (``tie_embeddings``
    makes it :math:`W_E`, as in GPT). Initialisation as GPT's (chapter 17): weights from
    :math:`\mathcal{N}(0, 0.02^2)`, the last projection of each residual branch from
    :math:`\mathcal{N}(0, (0.02/\sqrt{2L})^2)`, norm gains 1, biases 0. Chapter 21.

    Shape:
        - idx: :math:`(B, T)`; targets: :math:`(B, T)`; output: ``(logits, loss)``, logits :math:`(B, T, V)`
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        c = self.config = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)  # token embedding W_E, (V, C)
        self.wpe = nn.Embedding(c.block_size, c.n_embd) if c.positions == "learned" else None  # only on the ladder
        self.blocks = nn.ModuleList([llama_block(c) for _ in range(c.n_layer)])
        self.norm_f = make_norm(c.norm, c.n_embd, kernels=c.kernels, eps=c.norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)  # (V, C)
        self.apply(gpt2_init)  # N(0, 0.02^2) weights, zero biases (chapter 17)
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.scale_residual_init()  # the residual projections, N(0, (0.02 / sqrt(2L))^2)

    def embed(self, idx: torch.Tensor, offset: int) -> torch.Tensor:
        r"""The token embeddings (plus a position table's rows on the ladder's GPT rungs)."""
        x = F.embedding(idx, self.wte.weight)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe.weight[offset : offset + idx.size(1)]  # (B, T, C) + (T, C)
        return dropout(x, self.config.dropout, self.training)

    def num_parameters(self, non_embedding: bool = True) -> int:
        r"""Number of parameters (a tied matrix once), without a position table when ``non_embedding``."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding and self.wpe is not None else n


def ladder(base: LlamaConfig) -> dict[str, LlamaConfig]:
    r"""GPT to LLaMA one change at a time, at the sizes of ``base``: name -> configuration.

    The first rung is GPT-2's architecture (chapter 17 with biases): LayerNorm, a learned position
    table, a GELU MLP :math:`4C` wide, multi-head attention, biases, a tied head. Each next rung
    changes one thing: RMSNorm, RoPE, SwiGLU (:math:`F = ` ``base.ffn_hidden``), GQA
    (``base.n_kv_head``), no biases, an untied head, which is ``base`` itself.
    """
    gpt = replace(base, norm="layernorm", positions="learned", mlp="gelu", ffn_hidden=4 * base.n_embd,
                  n_kv_head=base.n_head, bias=True, tie_embeddings=True, qk_norm=False)
    rungs = {"GPT (LayerNorm, learned positions, GELU, MHA, biases, tied)": gpt}
    rungs["+ RMSNorm"] = c = replace(gpt, norm="rmsnorm")
    rungs["+ RoPE"] = c = replace(c, positions="rope")
    rungs["+ SwiGLU"] = c = replace(c, mlp="swiglu", ffn_hidden=base.ffn_hidden)
    rungs["+ GQA"] = c = replace(c, n_kv_head=base.n_kv_head)
    rungs["no biases"] = c = replace(c, bias=False)
    rungs["untied head (= LLaMA)"] = replace(c, tie_embeddings=False)
    return rungs
