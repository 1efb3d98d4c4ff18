r"""Mixture of experts: a router sends each token to ``top_k`` of ``E`` feed-forward experts.

* :func:`route`: the router softmax and top-:math:`k` gates, Switch-style (the top experts'
  probabilities) or Mixtral-style (a softmax over the top-:math:`k` logits).
* :func:`load_balancing_loss` (Switch Transformer) and :func:`router_z_loss` (ST-MoE).
* :func:`expert_capacity` and :func:`drop_fraction`: how many assignments an expert accepts, and
  what share of them a capacity factor drops.
* :class:`MoE`: the layer. It replaces a Transformer block's feed-forward network
  (:math:`(B, T, C) \to (B, T, C)`), dispatches the tokens grouped by expert (one stable sort, a
  loop over the :math:`E` experts, ``index_add_`` back; never a loop over tokens) and keeps its
  auxiliary loss in ``aux_loss`` for the model to add to the training loss.

Introduced in chapter 22, *Mixture of Experts*. Symbols: B batch, T time, C channels, N = B T
tokens, E experts, k experts per token, F an expert's hidden width.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .checks import check_positive_int
from .feedforward import ACTIVATIONS, MLP, SwiGLU

__all__ = [
    "GATINGS",
    "check_top_k",
    "check_capacity_factor",
    "route",
    "load_balancing_loss",
    "router_z_loss",
    "expert_capacity",
    "drop_fraction",
    "Routing",
    "MoE",
    "mixtral_state_dict",
]

GATINGS = ("switch", "mixtral")


def check_top_k(top_k: int, num_experts: int) -> None:
    r"""Raise ``ValueError`` naming both unless :math:`1 \le` ``top_k`` :math:`\le` ``num_experts``."""
    check_positive_int("num_experts", num_experts)
    check_positive_int("top_k", top_k)
    if top_k > num_experts:
        raise ValueError(f"top_k={top_k} is larger than num_experts={num_experts}: a token cannot pick more experts than there are")


def check_capacity_factor(capacity_factor: float | None) -> None:
    r"""Raise ``ValueError`` naming the value unless ``capacity_factor`` is ``None`` or :math:`> 0`."""
    if capacity_factor is not None and not capacity_factor > 0:
        raise ValueError(f"capacity_factor must be > 0 (or None: no limit), got capacity_factor={capacity_factor!r}")


def route(logits: torch.Tensor, top_k: int, gating: str = "switch") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The router's probabilities and each token's ``top_k`` experts with their gates.

    .. math::

        p(x) = \operatorname{softmax}(W_r x), \qquad
        \mathcal{T}(x) = \operatorname{top-}k\,(p(x)), \qquad
        g_i(x) = \begin{cases} p_i(x) & \text{Switch} \\
        p_i(x) / \sum_{j \in \mathcal{T}(x)} p_j(x) & \text{Mixtral} \end{cases}
        \quad (i \in \mathcal{T}(x))

    Mixtral's renormalised gates are the softmax over the top-:math:`k` logits. With
    :math:`k = 1` they are all 1, so only Switch's gate lets the language-model loss reach the
    router. Chapter 22.

    Shape:
        - logits: :math:`(N, E)`; outputs: probs :math:`(N, E)`, gates :math:`(N, k)`, experts :math:`(N, k)` int64
    """
    check_top_k(top_k, logits.size(-1))
    if gating not in GATINGS:
        raise ValueError(f"gating must be one of {GATINGS}, got gating={gating!r}")
    probs = logits.softmax(dim=-1)  # (N, E)
    top_p, experts = probs.topk(top_k, dim=-1)  # (N, k), (N, k)
    gates = top_p / top_p.sum(dim=-1, keepdim=True) if gating == "mixtral" else top_p  # (N, k)
    return probs, gates, experts


def load_balancing_loss(probs: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    r"""Switch Transformer's auxiliary loss: :math:`E \sum_i f_i P_i`, 1 at uniform load.

    .. math::

        f_i = \frac{1}{kN} \sum_{n, j} \mathbb{1}[\mathcal{T}_j(x_n) = i], \qquad
        P_i = \frac{1}{N} \sum_n p_i(x_n), \qquad
        \mathcal{L}_\text{bal} = E \sum_{i=1}^{E} f_i P_i

    :math:`f_i` is the share of the :math:`kN` assignments that go to expert :math:`i` (a count:
    no gradient), :math:`P_i` its mean router probability (differentiable). Both are
    :math:`1/E` at uniform load, where the loss is 1; the model multiplies it by :math:`\alpha`.
    Hugging Face's ``load_balancing_loss_func`` counts :math:`f_i` per token instead of per
    assignment, so its value is :math:`k` times this one. Chapter 22.

    Shape:
        - probs: :math:`(N, E)`; experts: :math:`(N, k)`; output: scalar
    """
    N, E = probs.shape
    counts = torch.bincount(experts.reshape(-1), minlength=E).to(probs.dtype)  # (E,)
    f = counts / experts.numel()  # (E,) share of the assignments
    P = probs.mean(dim=0)  # (E,) mean router probability
    return E * (f * P).sum()


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    r"""ST-MoE's router z-loss: the mean squared log-partition of the router logits.

    .. math:: \mathcal{L}_z = \frac{1}{N} \sum_{n=1}^{N} \Bigl(\log \sum_{i=1}^{E} e^{z_{n,i}}\Bigr)^2

    It keeps the logits small, where the router softmax stays numerically stable (Zoph et al.,
    2022). Chapter 22.

    Shape:
        - logits: :math:`(N, E)`; output: scalar
    """
    return torch.logsumexp(logits, dim=-1).square().mean()


def expert_capacity(num_tokens: int, num_experts: int, top_k: int, capacity_factor: float) -> int:
    r"""How many assignments one expert accepts: :math:`\lceil \mathrm{cf} \cdot kN / E \rceil`.

    At capacity factor 1 every expert has room for exactly its fair share of the :math:`kN`
    assignments; the excess of a busier expert is dropped (the token skips the layer through the
    residual connection). Chapter 22.
    """
    check_top_k(top_k, num_experts)
    check_capacity_factor(capacity_factor)
    return math.ceil(capacity_factor * top_k * num_tokens / num_experts)


def drop_fraction(experts: torch.Tensor, num_experts: int, capacity_factor: float) -> float:
    r"""The share of the assignments that a capacity factor drops: :math:`\sum_i \max(0, c_i - \text{cap}) / kN`.

    :math:`c_i` counts the assignments to expert :math:`i`; ``experts`` are the routing
    decisions of a batch (:func:`route`). Chapter 22.

    Shape:
        - experts: :math:`(N, k)`
    """
    N, k = experts.shape
    cap = expert_capacity(N, num_experts, k, capacity_factor)
    counts = torch.bincount(experts.reshape(-1), minlength=num_experts)  # (E,)
    return (counts - cap).clamp(min=0).sum().item() / experts.numel()


class Routing(NamedTuple):
    r"""What one :class:`MoE` forward pass decided, for the losses and the plots."""

    logits: torch.Tensor  # (N, E) router logits
    probs: torch.Tensor  # (N, E) router softmax
    gates: torch.Tensor  # (N, k) the weights of the chosen experts
    experts: torch.Tensor  # (N, k) the chosen experts, best first
    tokens_per_expert: torch.Tensor  # (E,) assignments each expert was sent (before the capacity)
    dropped: int  # assignments dropped by the capacity


class MoE(nn.Module):
    r"""A sparse mixture of ``num_experts`` feed-forward networks, ``top_k`` of them per token.

    .. math::

        y(x) = \sum_{i \in \mathcal{T}(x)} g_i(x)\, \operatorname{FFN}_i(x), \qquad
        \mathcal{L}_\text{aux} = \alpha\, \mathcal{L}_\text{bal} + \beta\, \mathcal{L}_z

    with the gates of :func:`route`, :func:`load_balancing_loss` and :func:`router_z_loss`. The
    experts are :class:`~dlscratch.layers.feedforward.SwiGLU`\ s (``activation="swiglu"``, as
    Mixtral) or :class:`~dlscratch.layers.feedforward.MLP`\ s; the router is a bias-free
    ``Linear`` :math:`C \to E`. Dispatch is grouped by expert: the :math:`kN` (token, expert)
    assignments are stably sorted by expert (first choices ahead of second choices), each expert
    runs once on its contiguous slice, and ``index_add_`` sums the gated outputs back per token.
    With a ``capacity_factor`` each expert keeps only its first :func:`expert_capacity`
    assignments; the dropped ones contribute nothing. One expert with ``top_k=1`` is the dense
    FFN. Each forward pass sets ``aux_loss`` (a scalar with its graph) and ``routing``
    (a detached :class:`Routing`). Chapter 22.

    Args:
        dim: :math:`C`.
        hidden_dim: :math:`F`, each expert's hidden width.
        num_experts: :math:`E`.
        top_k: :math:`k`, experts per token (:math:`1 \le k \le E`).
        gating: ``"switch"`` (gates are the probabilities) or ``"mixtral"`` (renormalised over the top :math:`k`).
        capacity_factor: ``None`` (no limit, Mixtral) or a positive factor (Switch: between 1 and 2).
        aux_loss_coef: :math:`\alpha` (Switch: 0.01).
        z_loss_coef: :math:`\beta` (ST-MoE: 0.001).
        activation: ``"swiglu"`` or an :class:`~dlscratch.layers.feedforward.MLP` activation.
        bias: biases in the experts' linear maps.

    Shape:
        - x: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(
        self, dim: int, hidden_dim: int, num_experts: int, top_k: int = 1, *, gating: str = "switch",
        capacity_factor: float | None = None, aux_loss_coef: float = 0.01, z_loss_coef: float = 0.0,
        activation: str = "swiglu", bias: bool = False,
    ) -> None:
        super().__init__()
        check_top_k(top_k, num_experts)
        check_capacity_factor(capacity_factor)
        if gating not in GATINGS:
            raise ValueError(f"gating must be one of {GATINGS}, got gating={gating!r}")
        if activation != "swiglu" and activation not in ACTIVATIONS:
            raise ValueError(f"activation must be 'swiglu' or one of {sorted(ACTIVATIONS)}, got activation={activation!r}")
        if not aux_loss_coef >= 0 or not z_loss_coef >= 0:
            raise ValueError(f"need aux_loss_coef >= 0 and z_loss_coef >= 0, got {aux_loss_coef!r} and {z_loss_coef!r}")
        self.num_experts, self.top_k, self.gating = num_experts, top_k, gating
        self.capacity_factor, self.aux_loss_coef, self.z_loss_coef = capacity_factor, aux_loss_coef, z_loss_coef
        self.router = nn.Linear(dim, num_experts, bias=False)  # W_r, (E, C)

        def expert() -> nn.Module:
            if activation == "swiglu":
                return SwiGLU(dim, hidden_dim, bias=bias)
            return MLP(dim, hidden_dim, activation=activation, bias=bias)

        self.experts = nn.ModuleList(expert() for _ in range(num_experts))
        self.aux_loss: torch.Tensor | None = None  # alpha * L_bal + beta * L_z of the last forward pass
        self.routing: Routing | None = None  # the last forward pass's decisions (detached)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        h = x.reshape(B * T, C)  # (N, C)
        logits = self.router(h)  # (N, C) @ (C, E) -> (N, E)
        probs, gates, experts = route(logits, self.top_k, self.gating)  # (N, E), (N, k), (N, k)
        y, counts, dropped = self.dispatch(h, gates, experts)  # (N, C)
        self.aux_loss = self.aux_loss_coef * load_balancing_loss(probs, experts) + self.z_loss_coef * router_z_loss(logits)
        self.routing = Routing(logits.detach(), probs.detach(), gates.detach(), experts, counts, dropped)
        return y.view(B, T, C)  # (B, T, C)

    def dispatch(self, h: torch.Tensor, gates: torch.Tensor, experts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        r"""Run every expert once on the tokens routed to it: :math:`\sum_{i \in \mathcal{T}(x)} g_i(x) \operatorname{FFN}_i(x)`.

        Returns the output :math:`(N, C)`, the assignments per expert :math:`(E,)` (before the
        capacity) and the number dropped.
        """
        N, k = experts.shape
        expert_of = experts.t().reshape(-1)  # (k N,): all first choices, then all second choices
        token_of = torch.arange(N, device=h.device).repeat(k)  # (k N,)
        gate_of = gates.t().reshape(-1)  # (k N,)
        order = torch.argsort(expert_of, stable=True)  # (k N,) grouped by expert, first choices first
        counts = torch.bincount(expert_of, minlength=self.num_experts)  # (E,)
        kept = counts
        if self.capacity_factor is not None:
            cap = expert_capacity(N, self.num_experts, k, self.capacity_factor)
            start = torch.cumsum(counts, 0) - counts  # (E,) where each expert's slice begins
            rank = torch.arange(k * N, device=h.device) - start[expert_of[order]]  # (k N,) place in its expert's queue
            order, kept = order[rank < cap], counts.clamp(max=cap)
        y = torch.zeros_like(h)  # (N, C)
        for e, slots in enumerate(order.split(kept.tolist())):  # a loop over experts, never over tokens
            if slots.numel() == 0:
                continue
            tokens = token_of[slots]  # (n_e,)
            out = self.experts[e](h[tokens]) * gate_of[slots, None]  # (n_e, C) * (n_e, 1)
            y.index_add_(0, tokens, out.to(y.dtype))  # (N, C); under autocast the experts may return bf16
        return y, counts, int((counts - kept).sum().item())

    def extra_repr(self) -> str:
        cf = "none" if self.capacity_factor is None else f"{self.capacity_factor:g}"
        return f"num_experts={self.num_experts}, top_k={self.top_k}, gating={self.gating}, capacity_factor={cf}"


def mixtral_state_dict(moe: MoE, grads: bool = False) -> dict[str, torch.Tensor]:
    r"""``moe``'s weights (or their gradients) in the layout of ``transformers``' ``MixtralSparseMoeBlock``.

    Hugging Face stores the router as ``gate.weight`` :math:`(E, C)` and the experts fused:
    ``experts.gate_up_proj`` :math:`(E, 2F, C)`, each expert's ``gate`` rows on top of its ``up``
    rows, and ``experts.down_proj`` :math:`(E, C, F)`. With ``grads``, the gradients in that layout
    (zero for an expert that got no token). Chapter 22.
    """
    if not all(isinstance(e, SwiGLU) for e in moe.experts):
        raise ValueError("Mixtral's experts are SwiGLUs: build the MoE with activation='swiglu'")
    def get(p: torch.Tensor) -> torch.Tensor:  # an expert that got no token has no gradient: zeros, as in HF's fused tensor
        if not grads:
            return p.detach()
        return torch.zeros_like(p) if p.grad is None else p.grad

    return {
        "gate.weight": get(moe.router.weight),  # (E, C)
        "experts.gate_up_proj": torch.stack([torch.cat([get(e.gate.weight), get(e.up.weight)]) for e in moe.experts]),  # (E, 2F, C)
        "experts.down_proj": torch.stack([get(e.down.weight) for e in moe.experts]),  # (E, C, F)
    }
