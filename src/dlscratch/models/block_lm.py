r"""A decoder LM whose block is a choice: norm placement, norm kind and feed-forward kind.

:class:`BlockLM` is chapter 17's GPT with three switches, for the experiments of chapter 20
(*Normalization and activations*): pre-LN or post-LN blocks (``norm_first``), LayerNorm or
RMSNorm (``norm``), and a ReLU/GELU :class:`~dlscratch.layers.feedforward.MLP` or a
:class:`~dlscratch.layers.feedforward.SwiGLU` (``ffn``). Everything else is GPT's: learned
positions, a head tied to the token embedding, and the forward pass, loss, caches and
generation of :class:`~dlscratch.models.decoder.DecoderLM`. With the defaults it builds the same
network as :class:`~dlscratch.models.gpt.GPT` (tested: same parameters, same logits).

Symbols: B batch, T time, C channels (``n_embd``), F the feed-forward width, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention.modules import MultiHeadAttention
from ..layers.checks import check_positive_int
from ..layers.feedforward import ACTIVATIONS, MLP, SwiGLU, swiglu_hidden
from ..layers.norms import NORMS, make_norm
from ..layers.transformer import Block
from .decoder import DecoderLM

__all__ = ["BlockLMConfig", "block_lm_block", "BlockLM"]

FFNS = (*ACTIVATIONS, "swiglu")  # an MLP with one of the activations, or the gated unit
INITS = ("gpt2", "xavier")


@dataclass(frozen=True)
class BlockLMConfig:
    r"""Sizes and block choices of a :class:`BlockLM`; the defaults are :class:`~dlscratch.models.gpt.GPTConfig`'s."""

    vocab_size: int = 65  # V: distinct tokens
    block_size: int = 64  # longest context (rows of the position table)
    n_layer: int = 4  # L: number of blocks
    n_head: int = 4  # nh: attention heads per block
    n_embd: int = 128  # C: width of the residual stream
    norm_first: bool = True  # True: pre-LN (GPT-2, LLaMA); False: post-LN (the original Transformer)
    norm: str = "layernorm"  # "layernorm" or "rmsnorm"
    ffn: str = "gelu"  # "relu", "gelu", "gelu_tanh", "silu" (an MLP) or "swiglu" (gated)
    ffn_hidden: int = 0  # F; 0 picks 4C for an MLP and swiglu_hidden(C, ffn_multiple_of) for SwiGLU
    ffn_multiple_of: int = 8  # SwiGLU's default F is rounded up to a multiple of this
    init: str = "gpt2"  # "gpt2": N(0, 0.02^2), residual projections / sqrt(2L); "xavier": Xavier-uniform matrices
    bias: bool = False  # biases in the linear maps and LayerNorms
    kernels: str = "written"  # "written": our attention and norms; "fused": PyTorch's kernels, same maths

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "ffn_multiple_of"):
            check_positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got norm={self.norm!r}")
        if self.ffn not in FFNS:
            raise ValueError(f"ffn must be one of {list(FFNS)}, got ffn={self.ffn!r}")
        if isinstance(self.ffn_hidden, bool) or not isinstance(self.ffn_hidden, int) or self.ffn_hidden < 0:
            raise ValueError(f"ffn_hidden must be a non-negative integer (0: default), got ffn_hidden={self.ffn_hidden!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got init={self.init!r}")
        if self.kernels not in ("written", "fused"):
            raise ValueError(f"kernels must be 'written' or 'fused', got kernels={self.kernels!r}")

    @property
    def hidden(self) -> int:
        r"""The feed-forward width :math:`F` the blocks get."""
        if self.ffn_hidden:
            return self.ffn_hidden
        return swiglu_hidden(self.n_embd, self.ffn_multiple_of) if self.ffn == "swiglu" else 4 * self.n_embd


def block_lm_block(c: BlockLMConfig) -> Block:
    r"""One block: causal attention and the chosen FFN, each behind the chosen norm, pre- or post-LN."""
    attn = MultiHeadAttention(c.n_embd, c.n_head, bias=c.bias, causal=True, attend="sdpa" if c.kernels == "fused" else "written")
    if c.ffn == "swiglu":
        mlp: nn.Module = SwiGLU(c.n_embd, c.hidden, bias=c.bias)
    else:
        mlp = MLP(c.n_embd, c.hidden, activation=c.ffn, bias=c.bias)
    norm = partial(make_norm, c.norm, c.n_embd, kernels=c.kernels, bias=c.bias)
    return Block(attn, mlp, norm, norm_first=c.norm_first)


class BlockLM(DecoderLM):
    r"""Learned positions, ``n_layer`` :func:`block_lm_block`\ s, a final norm (pre-LN only), tied head.

    .. math::

        h_0 = W_E[x_t] + W_P[t], \qquad h_\ell = \operatorname{Block}_\ell(h_{\ell-1}), \qquad
        p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(\operatorname{N}(h_L)\, W_E^\top)

    A pre-LN stack ends with a norm :math:`\operatorname{N}`, since its residual stream is never
    normalised; a post-LN stack's last operation already is one, so :math:`\operatorname{N}` is
    the identity there (as in the original Transformer). ``init="gpt2"`` is GPT's
    initialisation; ``init="xavier"`` draws every linear map's weight Xavier-uniform (the original
    Transformer, and Xiong et al., 2020), the embeddings from :math:`\mathcal{N}(0, 0.02^2)`.
    Chapter 20.

    Shape:
        - idx: :math:`(B, T)`; targets: :math:`(B, T)`; output: logits :math:`(B, T, V)` and the loss
    """

    def __init__(self, config: BlockLMConfig) -> None:
        super().__init__()
        c = self.config = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)  # token embedding W_E, (V, C)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)  # position embedding W_P, (block, C)
        self.blocks = nn.ModuleList([block_lm_block(c) for _ in range(c.n_layer)])
        self.norm_f = make_norm(c.norm, c.n_embd, kernels=c.kernels, bias=c.bias) if c.norm_first else nn.Identity()
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        for name, module in self.named_modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            elif isinstance(module, nn.Linear):  # the head, last, is the tied embedding: N(0, 0.02^2) again
                if c.init == "xavier" and name != "lm_head":
                    nn.init.xavier_uniform_(module.weight)
                else:
                    nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if c.init == "gpt2":
            for block in self.blocks:  # the last layer of each residual branch
                for p in (block.attn.out_proj.weight, block.mlp.down.weight):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    def embed(self, idx: torch.Tensor, offset: int) -> torch.Tensor:
        r"""Token plus position embeddings of the tokens at positions ``offset ... offset + T - 1``."""
        pos_emb = self.wpe.weight[offset : offset + idx.size(1)]  # (T, C)
        return F.embedding(idx, self.wte.weight) + pos_emb  # (B, T, C)

    def num_parameters(self, non_embedding: bool = True) -> int:
        r"""Number of parameters, the tied matrix counted once; without ``wpe`` when ``non_embedding``."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def ffn_parameters(self) -> int:
        r"""Parameters of all feed-forward networks (the part the activation experiments match)."""
        return sum(p.numel() for block in self.blocks for p in block.mlp.parameters())
