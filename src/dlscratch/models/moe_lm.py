r"""A LLaMA whose feed-forward networks are mixtures of experts (Mixtral's layout, Switch's options).

:class:`MoELM` is chapter 21's :class:`~dlscratch.models.llama.LLaMA` with every block's SwiGLU
replaced by a :class:`~dlscratch.layers.moe.MoE` of ``num_experts`` SwiGLUs, ``ffn_hidden`` wide
each, ``top_k`` of them per token: Mixtral 8x7B is this with 8 experts and :math:`k = 2`
(Jiang et al., 2024). :class:`MoELMConfig` adds the mixture's fields to
:class:`~dlscratch.models.llama.LlamaConfig`. The forward pass adds every layer's auxiliary loss
(load balancing and router z-loss) to the cross-entropy it returns, as Hugging Face's
``MixtralForCausalLM`` does, so the training loop of chapter 17 trains the router with no change;
the logits, and so the validation loss, are the language model's alone.

Introduced in chapter 22, *Mixture of Experts*. Symbols: B batch, T time, C ``n_embd``,
V vocabulary, E ``num_experts``, k ``top_k``, F an expert's width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..layers.moe import GATINGS, MoE, check_capacity_factor, check_top_k
from ..layers.norms import make_norm
from ..layers.transformer import Block
from .decoder import DecoderLM, gpt2_init
from .llama import LLaMA, LlamaConfig, llama_block

__all__ = ["MoELMConfig", "moe_block", "MoELM", "active_parameters"]


@dataclass(frozen=True)
class MoELMConfig(LlamaConfig):
    r"""A :class:`~dlscratch.models.llama.LlamaConfig` plus the mixture: ``ffn_hidden`` is each expert's width."""

    num_experts: int = 4  # E: experts per layer (Mixtral: 8)
    top_k: int = 1  # k: experts per token (Switch: 1, Mixtral: 2)
    gating: str = "switch"  # "switch": gate = router probability; "mixtral": softmax over the top-k logits
    capacity_factor: float | None = None  # None: every assignment is kept (Mixtral); > 0: Switch's capacity
    aux_loss_coef: float = 0.01  # alpha, the load-balancing loss's weight (Switch: 0.01)
    z_loss_coef: float = 0.0  # beta, the router z-loss's weight (ST-MoE: 0.001)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_top_k(self.top_k, self.num_experts)
        check_capacity_factor(self.capacity_factor)
        if self.gating not in GATINGS:
            raise ValueError(f"gating must be one of {GATINGS}, got gating={self.gating!r}")
        if self.mlp not in ("swiglu", "gelu", "relu2"):
            raise ValueError(f"mlp must be 'swiglu', 'gelu' or 'relu2', got mlp={self.mlp!r}")
        if not self.aux_loss_coef >= 0 or not self.z_loss_coef >= 0:
            raise ValueError(f"need aux_loss_coef >= 0 and z_loss_coef >= 0, got {self.aux_loss_coef!r} and {self.z_loss_coef!r}")


def moe_block(c: MoELMConfig) -> Block:
    r"""Chapter 21's :func:`~dlscratch.models.llama.llama_block` with a :class:`~dlscratch.layers.moe.MoE` as its FFN."""
    block = llama_block(c)  # attention, norms, residuals: LLaMA's
    block.mlp = MoE(c.n_embd, c.ffn_hidden, c.num_experts, c.top_k, gating=c.gating, capacity_factor=c.capacity_factor,
                    aux_loss_coef=c.aux_loss_coef, z_loss_coef=c.z_loss_coef, activation=c.mlp, bias=c.bias)
    return block


class MoELM(LLaMA):
    r"""LLaMA with sparse mixture-of-experts feed-forward networks (Mixtral, Switch).

    .. math::

        \mathcal{L} = \operatorname{CE} + \sum_{\ell=1}^{L} \bigl(\alpha\, \mathcal{L}_{\text{bal}}^{(\ell)}
        + \beta\, \mathcal{L}_z^{(\ell)}\bigr)

    Embedding, attention, norms, head and initialisation are :class:`~dlscratch.models.llama.LLaMA`'s
    (the experts' ``down`` maps get the scaled residual initialisation, as the dense ``down`` does).
    :meth:`forward` returns the logits and the cross-entropy plus the auxiliary losses of the
    pass. Chapter 22.

    Shape:
        - idx: :math:`(B, T)`; targets: :math:`(B, T)`; output: ``(logits, loss)``, logits :math:`(B, T, V)`
    """

    def __init__(self, config: MoELMConfig) -> None:
        DecoderLM.__init__(self)  # LLaMA's parts, built here with moe_block instead of llama_block
        c = self.config = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)  # token embedding W_E, (V, C)
        self.wpe = nn.Embedding(c.block_size, c.n_embd) if c.positions == "learned" else None
        self.blocks = nn.ModuleList([moe_block(c) for _ in range(c.n_layer)])
        self.norm_f = make_norm(c.norm, c.n_embd, kernels=c.kernels, eps=c.norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)  # (V, C)
        self.apply(gpt2_init)  # N(0, 0.02^2) weights (router included), zero biases
        if c.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.scale_residual_init()

    def scale_residual_init(self) -> None:
        r"""GPT-2's :math:`\mathcal{N}(0, (0.02/\sqrt{2L})^2)` for attention's ``out_proj`` and every expert's ``down``."""
        std = 0.02 / math.sqrt(2 * len(self.blocks))
        for block in self.blocks:
            for p in (block.attn.out_proj.weight, *(e.down.weight for e in block.mlp.experts)):
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits, loss = super().forward(idx, targets)  # (B, T, V), cross-entropy
        if loss is None:
            return logits, None
        return logits, loss + self.aux_loss()

    def aux_loss(self) -> torch.Tensor:
        r"""The sum over layers of :math:`\alpha \mathcal{L}_\text{bal} + \beta \mathcal{L}_z` of the last forward pass."""
        return sum(block.mlp.aux_loss for block in self.blocks)  # type: ignore[return-value]

    def moe_layers(self) -> list[MoE]:
        r"""The mixture of every block, first to last (their ``routing`` holds the last pass's decisions)."""
        return [block.mlp for block in self.blocks]


def active_parameters(model: nn.Module) -> int:
    r"""Parameters that touch one token: all but the unchosen experts, :math:`N - \sum_\ell (E - k) N_\text{expert}`.

    A dense model's active parameters are all of them. Chapter 22.
    """
    n = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if isinstance(m, MoE):
            per_expert = sum(p.numel() for p in m.experts[0].parameters())
            n -= (m.num_experts - m.top_k) * per_expert
    return n
