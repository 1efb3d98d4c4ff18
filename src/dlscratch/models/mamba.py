r"""Mamba: a language model of selective state-space blocks, no attention.

Gu & Dao (2023) replace the Transformer's attention and MLP by one block: project the input
up to ``2 * d_inner`` channels, run one half through a short causal depthwise convolution, a
SiLU and a *selective* SSM (its step :math:`\Delta`, input map :math:`B` and output map
:math:`C` computed from the input at every position,
:func:`~dlscratch.layers.ssm.selective_scan`), gate it with the SiLU of the other half, and
project back down. :class:`Mamba` stacks such blocks with pre-RMSNorm residuals.

Decoding needs no growing cache: each block carries its convolution's last ``d_conv - 1``
inputs and the SSM state :math:`(d_\text{inner}, N)` (:class:`MambaState`), the same size after
one token or a million. Parameter names and shapes are those of Hugging Face's
``MambaForCausalLM`` without its ``backbone.`` prefix (:func:`to_hf_state_dict`).
:class:`TimeInvariantMixer` is the same block with :math:`\Delta`, :math:`B`, :math:`C` learned
but fixed (an S4D layer in Mamba's block), the control of the selective-copying experiment.

Introduced in chapter 25, *State-space models and Mamba*. Symbols: B batch, T time,
C ``d_model``, Di ``d_inner``, N ``d_state``, R ``dt_rank``, K ``d_conv``, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.checks import check_positive_int
from ..layers.norms import RMSNorm
from ..layers.scan import SCANS
from ..layers.ssm import check_state_size, selective_scan
from .sampling import sample_logits

__all__ = ["MambaConfig", "MambaState", "MambaMixer", "TimeInvariantMixer", "MambaBlock", "Mamba", "to_hf_state_dict", "hf_config"]


@dataclass(frozen=True)
class MambaConfig:
    r"""Sizes of a Mamba LM (Hugging Face's ``MambaConfig`` fields under the paper's names)."""

    vocab_size: int = 65  # V: distinct tokens
    block_size: int = 64  # training window length (the model itself has no context limit)
    n_layer: int = 2  # L: Mamba blocks
    d_model: int = 64  # C: width of the residual stream
    d_state: int = 16  # N: state size per channel
    expand: int = 2  # d_inner = expand * d_model
    d_conv: int = 4  # K: width of the causal depthwise convolution
    dt_rank: int = 0  # R: rank of the projection to Delta; 0 means ceil(d_model / 16), as in the paper
    bias: bool = False  # biases in in_proj and out_proj (Mamba: none)
    conv_bias: bool = True  # bias of the convolution (Mamba: yes)
    norm_eps: float = 1e-5  # RMSNorm's epsilon (HF's layer_norm_epsilon)
    tie_embeddings: bool = True  # the head is the token embedding (Mamba and HF: tied)
    selective: bool = True  # Delta, B, C from the input (S6); False: learned constants (S4D, time-invariant)
    scan: str = "blelloch"  # how to run the recurrence: "sequential", "hillis_steele" or "blelloch"
    dt_min: float = 1e-3  # initial Delta drawn log-uniformly in [dt_min, dt_max]
    dt_max: float = 1e-1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "d_model", "expand", "d_conv"):
            check_positive_int(name, getattr(self, name))
        check_state_size(self.d_state)
        if isinstance(self.dt_rank, bool) or not isinstance(self.dt_rank, int) or self.dt_rank < 0:
            raise ValueError(f"dt_rank must be an integer >= 0 (0: ceil(d_model / 16)), got dt_rank={self.dt_rank!r}")
        if self.scan not in SCANS:
            raise ValueError(f"scan must be one of {tuple(SCANS)}, got scan={self.scan!r}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={self.dt_min!r}, dt_max={self.dt_max!r}")

    @property
    def d_inner(self) -> int:
        r"""Di = expand * C."""
        return self.expand * self.d_model

    @property
    def rank(self) -> int:
        r"""R: ``dt_rank``, or ceil(C / 16) when it is 0."""
        return self.dt_rank or math.ceil(self.d_model / 16)


@dataclass
class MambaState:
    r"""One block's decoding state: the convolution's last K - 1 inputs and the SSM state. Its size does not grow with t."""

    conv: torch.Tensor  # (B, Di, K - 1)
    ssm: torch.Tensor  # (B, Di, N)

    def nbytes(self) -> int:
        return self.conv.numel() * self.conv.element_size() + self.ssm.numel() * self.ssm.element_size()


class MambaMixer(nn.Module):
    r"""Mamba's block body: in-projection, causal depthwise conv, SiLU, selective SSM, SiLU gate, out-projection.

    .. math::

        (x, z) = W_\text{in} u, \quad x \leftarrow \operatorname{SiLU}(\operatorname{conv}(x)), \quad
        (\delta, B_t, C_t) = W_x x, \quad \Delta_t = \operatorname{softplus}(W_\Delta \delta + b_\Delta),

        y = W_\text{out}\bigl(\operatorname{SSM}_{A, \Delta_t, B_t, C_t, D}(x) \odot \operatorname{SiLU}(z)\bigr),
        \qquad A = -e^{A_\text{log}}

    With a :class:`MambaState`, the convolution starts from its stored inputs and the scan from
    its stored state, and both are updated: ``T = 1`` is one step of the recurrence.

    Shape:
        - u: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, c: MambaConfig) -> None:
        super().__init__()
        Di, N, R = c.d_inner, c.d_state, c.rank
        self.config = c
        self.in_proj = nn.Linear(c.d_model, 2 * Di, bias=c.bias)  # (2Di, C)
        self.conv1d = nn.Conv1d(Di, Di, c.d_conv, groups=Di, padding=c.d_conv - 1, bias=c.conv_bias)  # (Di, 1, K)
        self.init_ssm_params(c)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(Di, 1))  # (Di, N): S4D-Real
        self.D = nn.Parameter(torch.ones(Di))  # (Di,) skip
        self.out_proj = nn.Linear(Di, c.d_model, bias=c.bias)  # (C, Di)
        self.scan = SCANS[c.scan]

    def init_ssm_params(self, c: MambaConfig) -> None:
        r"""x_proj (Di -> R + 2N) and dt_proj (R -> Di), with Delta's bias so that softplus(bias) is log-uniform in [dt_min, dt_max]."""
        Di, N, R = c.d_inner, c.d_state, c.rank
        self.x_proj = nn.Linear(Di, R + 2 * N, bias=False)  # (R + 2N, Di)
        self.dt_proj = nn.Linear(R, Di, bias=True)  # (Di, R)
        with torch.no_grad():
            self.dt_proj.weight.uniform_(-(R**-0.5), R**-0.5)
            self.dt_proj.bias.copy_(inverse_softplus(log_uniform(Di, c.dt_min, c.dt_max)))

    def ssm_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""The selection: :math:`\Delta_t` per channel, :math:`B_t` and :math:`C_t` per token, from ``x`` :math:`(B, T, Di)`."""
        N, R = self.config.d_state, self.config.rank
        dt, B, C = self.x_proj(x).split([R, N, N], dim=-1)  # (B, T, R), (B, T, N), (B, T, N)
        delta = F.softplus(self.dt_proj(dt))  # (B, T, Di)
        return delta, B.unsqueeze(2), C.unsqueeze(2)  # (B, T, Di), (B, T, 1, N), (B, T, 1, N): shared by the channels

    def forward(self, u: torch.Tensor, state: MambaState | None = None) -> torch.Tensor:
        B, T, _ = u.shape
        K = self.conv1d.kernel_size[0]
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, T, Di) each
        x = x.transpose(1, 2)  # (B, Di, T)
        past = state.conv if state is not None else x.new_zeros(B, x.size(1), K - 1)  # (B, Di, K - 1)
        x = torch.cat([past, x], dim=-1)  # (B, Di, K - 1 + T)
        if state is not None:
            state.conv = x[:, :, x.size(-1) - (K - 1) :]  # the last K - 1 inputs
        x = F.conv1d(x, self.conv1d.weight, self.conv1d.bias, groups=x.size(1))  # (B, Di, T): causal, depthwise
        x = F.silu(x.transpose(1, 2))  # (B, T, Di)
        delta, Bt, Ct = self.ssm_params(x)
        A = -torch.exp(self.A_log)  # (Di, N), negative: a decaying state
        y, h = selective_scan(x, delta, A, Bt, Ct, self.D, h0=None if state is None else state.ssm, scan=self.scan)
        if state is not None:
            state.ssm = h  # (B, Di, N)
        return self.out_proj(y * F.silu(z))  # (B, T, C)


class TimeInvariantMixer(MambaMixer):
    r""":class:`MambaMixer` with a time-invariant SSM: :math:`\Delta`, :math:`B`, :math:`C` are learned per channel but the same at every step.

    .. math::

        \Delta = \operatorname{softplus}(b_\Delta), \qquad B, C \in \mathbb{R}^{D_i \times N}

    An S4D layer inside Mamba's block (the convolution and the gate still see the input): the
    control of chapter 25's selective-copying experiment.

    Shape:
        - u: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def init_ssm_params(self, c: MambaConfig) -> None:
        Di, N = c.d_inner, c.d_state
        self.dt_bias = nn.Parameter(inverse_softplus(log_uniform(Di, c.dt_min, c.dt_max)))  # (Di,)
        self.B = nn.Parameter(torch.ones(Di, N))  # (Di, N)
        self.C = nn.Parameter(torch.randn(Di, N) * N**-0.5)  # (Di, N)

    def ssm_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return F.softplus(self.dt_bias), self.B, self.C  # (Di,), (Di, N), (Di, N): broadcast over (B, T)


def log_uniform(n: int, lo: float, hi: float) -> torch.Tensor:
    r""":math:`n` values :math:`e^{U(\log lo, \log hi)}`, Mamba's initial steps :math:`\Delta`."""
    return torch.exp(torch.rand(n) * (math.log(hi) - math.log(lo)) + math.log(lo))


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    r""":math:`x` with :math:`\operatorname{softplus}(x) = y`: :math:`x = y + \log(1 - e^{-y})`."""
    return y + torch.log(-torch.expm1(-y))


class MambaBlock(nn.Module):
    r"""Pre-norm residual block: :math:`u \leftarrow u + \operatorname{Mixer}(\operatorname{RMSNorm}(u))`.

    Shape:
        - u: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, c: MambaConfig) -> None:
        super().__init__()
        self.norm = RMSNorm(c.d_model, eps=c.norm_eps)
        self.mixer = MambaMixer(c) if c.selective else TimeInvariantMixer(c)

    def forward(self, u: torch.Tensor, state: MambaState | None = None) -> torch.Tensor:
        return u + self.mixer(self.norm(u), state)  # (B, T, C)


class Mamba(nn.Module):
    r"""Mamba LM: embedding, ``n_layer`` :class:`MambaBlock`\ s, RMSNorm, a (tied) head.

    .. math::

        u_0 = W_E[x_t], \qquad u_\ell = u_{\ell-1} + \operatorname{Mixer}_\ell(\operatorname{RMSNorm}(u_{\ell-1})), \qquad
        p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(W_E\, \operatorname{RMSNorm}(u_L))

    Initialisation as the paper's code: the embedding :math:`\mathcal{N}(0, 0.02^2)`, the linear
    maps and the convolution PyTorch's defaults, ``out_proj`` scaled by :math:`1/\sqrt{L}`.

    Shape:
        - idx: :math:`(B, T)`; targets: :math:`(B, T)` (``-100`` ignored); output ``(logits, loss)``, logits :math:`(B, T, V)`
    """

    def __init__(self, config: MambaConfig) -> None:
        super().__init__()
        c = self.config = config
        self.embeddings = nn.Embedding(c.vocab_size, c.d_model)  # (V, C)
        self.layers = nn.ModuleList([MambaBlock(c) for _ in range(c.n_layer)])
        self.norm_f = RMSNorm(c.d_model, eps=c.norm_eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)  # (V, C)
        nn.init.normal_(self.embeddings.weight, std=0.02)
        if c.tie_embeddings:
            self.lm_head.weight = self.embeddings.weight
        with torch.no_grad():
            for block in self.layers:
                block.mixer.out_proj.weight /= math.sqrt(c.n_layer)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: list[MambaState] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""Logits for every position; with ``state`` (:meth:`new_state`), continue from it and update it."""
        u = self.embeddings(idx)  # (B, T, C)
        for i, block in enumerate(self.layers):
            u = block(u, None if state is None else state[i])  # (B, T, C)
        logits = self.lm_head(self.norm_f(u))  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    def new_state(self, batch_size: int) -> list[MambaState]:
        r"""Zero decoding states, one per block: :math:`L\,B\,D_i\,(K - 1 + N)` numbers, whatever the length decoded."""
        c, p = self.config, self.embeddings.weight
        return [MambaState(p.new_zeros(batch_size, c.d_inner, c.d_conv - 1), p.new_zeros(batch_size, c.d_inner, c.d_state))
                for _ in range(c.n_layer)]

    def num_parameters(self) -> int:
        r"""Number of parameters (a tied matrix once)."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, *, use_cache: bool = True, **sampling: Any) -> torch.Tensor:
        r"""Append ``max_new_tokens`` sampled tokens: the prompt once, then one token at a time through the state.

        ``use_cache=False`` reruns the whole sequence for every token instead (the same logits).
        ``sampling``: ``temperature``, ``top_k``, ``top_p``, ``generator`` of :func:`~dlscratch.models.sampling.sample_logits`.
        """
        state = self.new_state(idx.size(0)) if use_cache else None
        out, step = idx, idx
        for _ in range(max_new_tokens):
            logits, _ = self(step, state=state) if use_cache else self(out)  # (B, T, V)
            nxt = sample_logits(logits[:, -1], **sampling)  # (B,)
            out = torch.cat([out, nxt[:, None]], dim=1)  # (B, T + 1)
            step = nxt[:, None]  # (B, 1)
        return out


def to_hf_state_dict(model: Mamba) -> dict[str, torch.Tensor]:
    r"""Our state dict under ``MambaForCausalLM``'s names: everything but the head gets the ``backbone.`` prefix."""
    return {(k if k.startswith("lm_head.") else f"backbone.{k}"): v for k, v in model.state_dict().items()}


def hf_config(c: MambaConfig) -> dict[str, Any]:
    r"""The ``transformers.MambaConfig`` fields of ``c``. Residuals stay in the model's dtype, as ours do."""
    if not c.selective:
        raise ValueError("Hugging Face's Mamba has no time-invariant mixer: hf_config needs selective=True")
    return {"vocab_size": c.vocab_size, "hidden_size": c.d_model, "state_size": c.d_state, "num_hidden_layers": c.n_layer,
            "expand": c.expand, "conv_kernel": c.d_conv, "time_step_rank": c.rank, "use_bias": c.bias,
            "use_conv_bias": c.conv_bias, "layer_norm_epsilon": c.norm_eps, "tie_word_embeddings": c.tie_embeddings,
            "residual_in_fp32": False, "hidden_act": "silu"}
