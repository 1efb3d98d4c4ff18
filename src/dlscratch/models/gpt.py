r"""GPT: a decoder-only Transformer language model (Radford et al., 2018, 2019), from kit parts.

Token and learned position embeddings, ``n_layer`` pre-LayerNorm :class:`~dlscratch.layers.transformer.Block`\ s
of causal :class:`~dlscratch.layers.attention.modules.MultiHeadAttention` and a GELU
:class:`~dlscratch.layers.feedforward.MLP`, a final LayerNorm, and a head that shares its weight
with the token embedding; the forward pass, the loss, the KV caches and generation are
:class:`~dlscratch.models.decoder.DecoderLM`'s. GPT-2 initialisation, with the residual
projections scaled by :math:`1/\sqrt{2 n_{\text{layer}}}` (nanoGPT, Karpathy, 2022).

Introduced in chapter 17, *GPT*. Symbols: B batch, T time, C channels (``n_embd``), V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention.modules import MultiHeadAttention
from ..layers.checks import check_positive_int
from ..layers.dropout import dropout
from ..layers.feedforward import MLP
from ..layers.norms import make_norm
from ..layers.transformer import Block
from .decoder import DecoderLM, gpt2_init

__all__ = ["GPTConfig", "gpt_block", "GPT", "pool_kv_heads"]


@dataclass(frozen=True)
class GPTConfig:
    r"""Sizes of a GPT. Presets: :meth:`cpu` (chapter 17's), :meth:`gpu` (nanoGPT's recipe), :meth:`gpt1` and :meth:`gpt2` (the papers', chapter 27)."""

    vocab_size: int = 65  # V: distinct tokens (65 characters in TinyShakespeare)
    block_size: int = 64  # longest context the model accepts (rows of the position table)
    n_layer: int = 4  # L: number of Transformer blocks
    n_head: int = 4  # nh: attention heads per block
    n_kv_head: int | None = None  # nkv: key/value heads, dividing n_head (None: n_head, MHA; 1: MQA; chapter 19)
    window: int | None = None  # sliding window of keys per query, at most block_size (None: all; chapter 19)
    n_embd: int = 128  # C: width of the residual stream; hs = C / nh
    dropout: float = 0.0  # on attention weights, residual branches and embeddings (training only)
    bias: bool = False  # biases in the Linear and LayerNorm layers (nanoGPT's recipe: none)
    kernels: str = "written"  # "written": our attention and LayerNorm; "fused": PyTorch's kernels, same maths
    activation: str = "gelu"  # the MLP's: "gelu" (exact, nanoGPT) or "gelu_tanh" (GPT-1 and GPT-2's approximation; chapter 27)
    norm_first: bool = True  # pre-LN blocks and a final LayerNorm (GPT-2); False: post-LN, no final norm (GPT-1; chapter 27)
    norm_eps: float = 1e-5  # every LayerNorm's epsilon (GPT-2: 1e-5)
    tie_embeddings: bool = True  # the head shares the token embedding W_E (GPT-1, GPT-2); False: its own (V, C) matrix
    scale_residual_init: bool = True  # residual projections from N(0, (0.02 / sqrt(2L))^2) (GPT-2); False: N(0, 0.02^2) (GPT-1)

    def __post_init__(self) -> None:
        _check_config(self)

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

    @classmethod
    def gpt1(cls, vocab_size: int = 40478) -> GPTConfig:
        r"""GPT-1 (Radford et al., 2018): 12 post-LN blocks, 768 wide, 512 positions, 40,478 BPE tokens. Chapter 27."""
        return cls(vocab_size=vocab_size, block_size=512, n_layer=12, n_head=12, n_embd=768, dropout=0.1, bias=True,
                   activation="gelu_tanh", norm_first=False, scale_residual_init=False)

    @classmethod
    def gpt2(cls, size: str = "small") -> GPTConfig:
        r"""GPT-2 (Radford et al., 2019) of ``size`` small (124M), medium, large or xl (1.5B): pre-LN, 1,024 positions, 50,257 tokens.

        Chapter 27. The sizes are those of Hugging Face's ``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``.
        """
        sizes = {"small": (12, 12, 768), "medium": (24, 16, 1024), "large": (36, 20, 1280), "xl": (48, 25, 1600)}
        if size not in sizes:
            raise ValueError(f"GPT-2 size must be one of {sorted(sizes)}, got size={size!r}")
        n_layer, n_head, n_embd = sizes[size]
        return cls(vocab_size=50257, block_size=1024, n_layer=n_layer, n_head=n_head, n_embd=n_embd, dropout=0.1, bias=True,
                   activation="gelu_tanh")


def _check_config(c: GPTConfig) -> None:
    for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
        check_positive_int(name, getattr(c, name))
    if c.n_embd % c.n_head != 0:
        raise ValueError(f"n_embd={c.n_embd} must be divisible by n_head={c.n_head} (n_embd % n_head = {c.n_embd % c.n_head})")
    if c.n_kv_head is not None:
        check_positive_int("n_kv_head", c.n_kv_head)
        if c.n_head % c.n_kv_head != 0:
            raise ValueError(
                f"n_head={c.n_head} must be a multiple of n_kv_head={c.n_kv_head} (n_head % n_kv_head = {c.n_head % c.n_kv_head})"
            )
    if c.window is not None and (isinstance(c.window, bool) or not isinstance(c.window, int) or not 1 <= c.window <= c.block_size):
        raise ValueError(f"window must be an integer in [1, block_size={c.block_size}], got window={c.window!r}")
    if not 0.0 <= c.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got dropout={c.dropout!r}")
    if c.kernels not in ("written", "fused"):
        raise ValueError(f"kernels must be 'written' or 'fused', got kernels={c.kernels!r}")
    if c.activation not in ("gelu", "gelu_tanh"):
        raise ValueError(f"activation must be 'gelu' or 'gelu_tanh', got activation={c.activation!r}")
    if not c.norm_eps > 0:
        raise ValueError(f"norm_eps must be positive, got norm_eps={c.norm_eps!r}")


def gpt_block(c: GPTConfig) -> Block:
    r"""One GPT block: pre-LN (post-LN for GPT-1), causal attention (GQA and a sliding window if configured), a GELU MLP four times as wide."""
    attn = MultiHeadAttention(c.n_embd, c.n_head, c.n_kv_head, bias=c.bias, dropout=c.dropout, causal=True,
                              window=c.window, attend="sdpa" if c.kernels == "fused" else "written")
    mlp = MLP(c.n_embd, 4 * c.n_embd, activation=c.activation, bias=c.bias)
    norm = partial(make_norm, "layernorm", c.n_embd, kernels=c.kernels, eps=c.norm_eps, bias=c.bias)
    return Block(attn, mlp, norm, norm_first=c.norm_first, dropout=c.dropout)


class GPT(DecoderLM):
    r"""GPT-2's decoder: learned positions, ``n_layer`` :func:`gpt_block`\ s, LayerNorm, tied head (GPT-1's with ``norm_first=False``).

    .. math::

        h_0 = W_E[x_t] + W_P[t], \qquad h_\ell = \operatorname{Block}_\ell(h_{\ell-1}), \qquad
        p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(\operatorname{LN}(h_L)\, W_E^\top)

    The head reuses the token embedding :math:`W_E` (weight tying, Press & Wolf, 2017). Linear
    and embedding weights start from :math:`\mathcal{N}(0, 0.02^2)`, the output projection of
    every residual branch from :math:`\mathcal{N}(0, (0.02/\sqrt{2L})^2)`, biases at 0 (GPT-2).
    With ``norm_first=False`` the blocks are post-LN and there is no final norm (GPT-1:
    :math:`\text{logits} = h_L W_E^\top`); ``tie_embeddings`` and ``scale_residual_init`` switch
    the tying and the scaled initialisation off. Chapter 17, *GPT*; the GPT-1 and GPT-2 forms,
    chapter 27.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)  # token embedding W_E, (V, C)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)  # position embedding W_P, (block, C)
        self.blocks = nn.ModuleList([gpt_block(c) for _ in range(c.n_layer)])
        # pre-LN: a final LayerNorm; post-LN (GPT-1): every block already ends with one
        self.norm_f = make_norm("layernorm", c.n_embd, kernels=c.kernels, eps=c.norm_eps, bias=c.bias) if c.norm_first else nn.Identity()
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight  # weight tying: one (V, C) tensor
        self.apply(gpt2_init)  # N(0, 0.02^2) weights, zero biases
        if c.scale_residual_init:
            self.scale_residual_init()  # then the residual projections, N(0, (0.02 / sqrt(2L))^2)

    def embed(self, idx: torch.Tensor, offset: int) -> torch.Tensor:
        r"""Token plus position embeddings of the tokens at positions ``offset ... offset + T - 1``."""
        pos_emb = self.wpe.weight[offset : offset + idx.size(1)]  # (T, C): rows W_P[offset], ...
        x = F.embedding(idx, self.wte.weight) + pos_emb  # (B, T, C) + (T, C) -> (B, T, C)
        return dropout(x, self.config.dropout, self.training)

    def num_parameters(self, non_embedding: bool = True) -> int:
        r"""Number of parameters, the tied matrix counted once; without ``wpe`` when ``non_embedding``.

        The position table is left out by default (as nanoGPT does) because it costs no FLOPs;
        the token table stays in, since as the head it does.
        """
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n


@torch.no_grad()
def pool_kv_heads(model: GPT, n_kv_head: int) -> GPT:
    r"""A GQA copy of ``model`` whose key/value heads are the means of the original heads in each group.

    .. math::

        W_K^{(g)} = \frac{1}{r} \sum_{j=0}^{r-1} W_K^{(g r + j)}, \qquad
        W_V^{(g)} = \frac{1}{r} \sum_{j=0}^{r-1} W_V^{(g r + j)}, \qquad r = n_h / n_{kv}

    (and the biases alike): query head :math:`h` reads group :math:`\lfloor h / r \rfloor`, as
    :func:`~dlscratch.layers.attention.attend.repeat_kv` lays them out. Every other weight is
    copied. The *uptraining* of Ainslie et al. (2023) converts a multi-head checkpoint this way,
    then continues training briefly. Chapter 19.

    Args:
        model: a GPT (multi-head, or already grouped with a multiple of ``n_kv_head`` heads).
        n_kv_head: the key/value heads of the copy; must divide the model's key/value heads.
    """
    c = model.config
    nkv_old = c.n_head if c.n_kv_head is None else c.n_kv_head
    check_positive_int("n_kv_head", n_kv_head)
    if nkv_old % n_kv_head != 0:
        raise ValueError(f"the model's {nkv_old} key/value heads cannot be pooled into n_kv_head={n_kv_head} groups")
    r, hs = nkv_old // n_kv_head, c.n_embd // c.n_head
    pooled = GPT(replace(c, n_kv_head=n_kv_head)).to(device=model.wte.weight.device, dtype=model.wte.weight.dtype)
    state = model.state_dict()
    for name, tensor in state.items():
        if name.split(".")[-2] in ("k_proj", "v_proj"):  # (nkv_old hs, C) or (nkv_old hs,)
            state[name] = tensor.view(n_kv_head, r, hs, *tensor.shape[1:]).mean(1).flatten(0, 1)  # (n_kv_head hs, ...)
    pooled.load_state_dict(state)
    return pooled
