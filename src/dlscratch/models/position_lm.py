r"""One small decoder LM, five ways to tell it where a token is: the chapter-18 comparison model.

:class:`PositionLM` is chapter 17's GPT (pre-LN :func:`~dlscratch.models.gpt.gpt_block`\ s, a
final LayerNorm, a head tied to the token embedding, GPT-2's initialisation) with the position
scheme as a config field:

* ``"sinusoidal"`` and ``"learned"``: a vector added to each token's embedding (chapter 13);
* ``"rope"``: every attention layer rotates its queries and keys
  (:class:`~dlscratch.layers.rope.RoPE`, with position interpolation by ``rope_scale``);
* ``"alibi"``: every attention layer adds distance penalties to its scores
  (:class:`~dlscratch.layers.alibi.ALiBi`);
* ``"none"``: no positions at all (a causal mask alone still lets a decoder infer some).

:meth:`PositionLM.set_context` raises (or lowers) the longest accepted sequence after training,
to measure length extrapolation; a learned table refuses to go past its rows.

Introduced in chapter 18, *RoPE and ALiBi*. Symbols: B batch, T time, C channels, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.alibi import ALiBi
from ..layers.checks import check_positive_int
from ..layers.norms import make_norm
from ..layers.positional import sinusoidal_encoding
from ..layers.rope import RoPE
from .decoder import DecoderLM, gpt2_init
from .gpt import GPTConfig, gpt_block

__all__ = ["POSITIONS", "PositionLMConfig", "PositionLM"]

POSITIONS = ("sinusoidal", "learned", "rope", "alibi", "none")


@dataclass(frozen=True)
class PositionLMConfig:
    r"""Sizes and position scheme of a :class:`PositionLM`. Preset: :meth:`cpu` (the chapter's)."""

    vocab_size: int = 65  # V: distinct tokens (65 characters in TinyShakespeare)
    block_size: int = 64  # longest accepted sequence; the learned table has this many rows when built
    n_layer: int = 2  # L: number of Transformer blocks
    n_head: int = 4  # nh: attention heads per block (ALiBi: one slope each)
    n_embd: int = 128  # C: width of the residual stream; hs = C / nh (even, for RoPE)
    positions: str = "rope"  # one of POSITIONS
    rope_base: float = 10000.0  # RoPE's frequency base (chapter 13's 10,000)
    rope_scale: float = 1.0  # position interpolation: RoPE divides positions by this (1: none)
    sinusoidal_scale: float = 0.02  # amplitude of the sinusoidal table (GPT-2's embedding init std)
    kernels: str = "fused"  # "written": our attention and LayerNorm; "fused": PyTorch's, same maths

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got positions={self.positions!r}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_positive_int(name, getattr(self, name))
        if self.positions == "rope" and (self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2):
            raise ValueError(
                f"RoPE needs an even head size n_embd / n_head, got n_embd={self.n_embd}, n_head={self.n_head}"
            )
        if self.rope_scale != 1.0 and self.positions != "rope":
            raise ValueError(f"rope_scale only applies to positions='rope', got rope_scale={self.rope_scale!r} "
                             f"with positions={self.positions!r}")
        if not self.rope_scale > 0 or not self.rope_base > 1:
            raise ValueError(f"need rope_scale > 0 and rope_base > 1, got {self.rope_scale!r}, {self.rope_base!r}")

    def gpt(self) -> GPTConfig:
        r"""The :class:`~dlscratch.models.gpt.GPTConfig` of the same sizes (no dropout, no biases)."""
        return GPTConfig(vocab_size=self.vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, kernels=self.kernels)

    @classmethod
    def cpu(cls, positions: str, vocab_size: int = 65) -> PositionLMConfig:
        r"""The chapter's CPU model: 2 blocks, 4 heads, 64 wide, trained at context 64."""
        return cls(vocab_size=vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64, positions=positions)


class PositionLM(DecoderLM):
    r"""A GPT whose positions are ``config.positions``: added to the input, or inside attention.

    .. math::

        h_0 = W_E[x_t] + P_t \ (\text{sinusoidal: } P_t = \sigma\, PE_t;\ \text{learned: } P_t = W_P[t];\ \text{else } 0),

    then :math:`L` blocks whose attention scores are, per head,
    :math:`\langle R_i q_i, R_j k_j\rangle / \sqrt{hs}` (RoPE), :math:`q_i^\top k_j / \sqrt{hs} - m_h (i - j)`
    (ALiBi) or :math:`q_i^\top k_j / \sqrt{hs}` (the others), a final LayerNorm and the tied head.
    Chapter 18, *RoPE and ALiBi*.

    Shape:
        - idx: :math:`(B, T)`, :math:`T \le` ``config.block_size``; output as :class:`~dlscratch.models.decoder.DecoderLM`
    """

    pe: torch.Tensor

    def __init__(self, config: PositionLMConfig) -> None:
        super().__init__()
        c = self.config = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)  # token embedding W_E, (V, C)
        self.wpe = nn.Embedding(c.block_size, c.n_embd) if c.positions == "learned" else None  # W_P, (block, C)
        self.register_buffer("pe", torch.empty(0), persistent=False)  # sinusoidal table, filled by _install
        self.blocks = nn.ModuleList([gpt_block(c.gpt()) for _ in range(c.n_layer)])
        self.norm_f = make_norm("layernorm", c.n_embd, kernels=c.kernels, bias=False)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in GPT
        self.apply(gpt2_init)  # GPT-2's N(0, 0.02^2) (chapter 17)
        self.scale_residual_init()  # and the residual projections, N(0, (0.02 / sqrt(2L))^2)
        self._install_positions()

    def _install_positions(self) -> None:
        c = self.config
        if c.positions == "sinusoidal":
            w = self.wte.weight
            self.pe = c.sinusoidal_scale * sinusoidal_encoding(c.block_size, c.n_embd, device=w.device, dtype=w.dtype)
        hs = c.n_embd // c.n_head
        for block in self.blocks:
            if c.positions == "rope":
                block.attn.positions = RoPE(hs, c.rope_base, c.rope_scale).hook()
            elif c.positions == "alibi":
                block.attn.positions = ALiBi(c.n_head, dtype=self.wte.weight.dtype).hook()  # biases in the weights' dtype
            else:
                block.attn.positions = None

    def set_context(self, block_size: int, rope_scale: float = 1.0) -> PositionLM:
        r"""Accept sequences of up to ``block_size`` tokens from now on; returns ``self``.

        For RoPE, ``rope_scale`` :math:`s` divides every position (position interpolation,
        Chen et al., 2023: :math:`s = T_{\text{eval}} / T_{\text{train}}` keeps all angles in the
        trained range). A learned table cannot grow: it refuses more positions than it has rows.
        """
        check_positive_int("block_size", block_size)
        if self.wpe is not None and block_size > self.wpe.num_embeddings:
            raise ValueError(
                f"learned positions have a table of {self.wpe.num_embeddings} rows: there is no embedding for "
                f"positions {self.wpe.num_embeddings}..{block_size - 1}, so block_size={block_size} is refused"
            )
        self.config = replace(self.config, block_size=block_size, rope_scale=rope_scale)
        self._install_positions()
        return self

    def embed(self, idx: torch.Tensor, offset: int) -> torch.Tensor:
        r"""Token embeddings, plus the position vectors of positions ``offset ... offset + T - 1`` if the scheme adds them."""
        x = F.embedding(idx, self.wte.weight)  # (B, T, C)
        T = idx.size(1)
        if self.wpe is not None:
            x = x + self.wpe.weight[offset : offset + T]  # (B, T, C) + (T, C)
        elif self.config.positions == "sinusoidal":
            x = x + self.pe[offset : offset + T].to(x.dtype)  # (B, T, C) + (T, C)
        return x

    def _apply(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = super()._apply(fn, *args, **kwargs)  # .to(), .double(), ...: tables and biases follow the weights
        self._install_positions()
        return out
