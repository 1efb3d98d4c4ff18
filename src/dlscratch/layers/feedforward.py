r"""The Transformer's position-wise feed-forward blocks: :class:`MLP` and :class:`SwiGLU`.

Both take ``(dim, hidden_dim, *, bias, dropout)`` and map :math:`(B, T, C) \to (B, T, C)`, one
position at a time, so a model swaps one for the other (and, in chapter 22, for a mixture of
experts) without touching anything else. Parameter names: ``up`` (:math:`C \to F`), ``down``
(:math:`F \to C`) and, for the gated unit, ``gate``.

Introduced in chapter 15 (:class:`MLP` with ReLU, the original Transformer's FFN), used with GELU
by GPT (chapter 17); :class:`SwiGLU` is chapter 20's.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .activations import quick_gelu
from .checks import check_positive_int
from .dropout import Dropout

__all__ = ["relu2", "ACTIVATIONS", "MLP", "SwiGLU", "swiglu_hidden"]


def relu2(x: torch.Tensor) -> torch.Tensor:
    r"""The squared ReLU, :math:`\operatorname{ReLU}(x)^2` (So et al., 2021; the speedruns' MLP). Chapter 21."""
    return F.relu(x).square()


ACTIVATIONS = {  # PyTorch's kernels; the GELU written out: dlscratch.layers.activations.gelu
    "relu": F.relu,
    "gelu": F.gelu,  # exact (erf) GELU, as nanoGPT
    "gelu_tanh": partial(F.gelu, approximate="tanh"),  # GPT-2's tanh approximation
    "silu": F.silu,
    "relu2": relu2,  # squared ReLU (chapter 21)
    "quick_gelu": quick_gelu,  # x sigmoid(1.702 x), OpenAI CLIP's (chapter 34)
}


def _check_sizes(dim: int, hidden_dim: int) -> None:
    check_positive_int("feed-forward dim", dim)
    check_positive_int("feed-forward hidden_dim", hidden_dim)


class MLP(nn.Module):
    r"""Two linear maps with a non-linearity between them, applied to every position.

    .. math:: \operatorname{FFN}(x) = W_{\text{down}}\, \phi(W_{\text{up}} x + b_{\text{up}}) + b_{\text{down}}

    with :math:`\phi` = ReLU (Vaswani et al., 2017), GELU (GPT) or the squared ReLU (chapter 21). ``dropout`` acts on the hidden
    activations, as in ``nn.TransformerEncoderLayer``. Parameters: :math:`2CF + F + C` with
    biases, :math:`2CF` without. Chapter 15.

    Args:
        dim: :math:`C`, input and output width.
        hidden_dim: :math:`F`, the hidden width (:math:`4C` in the paper and in GPT).
        activation: ``"relu"``, ``"gelu"``, ``"gelu_tanh"``, ``"silu"``, ``"relu2"`` or ``"quick_gelu"`` (CLIP's, chapter 34).
        bias: biases in both linear maps.
        dropout: drop probability on the hidden activations (training only).

    Shape:
        - x: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, dim: int, hidden_dim: int, *, activation: str = "gelu", bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        _check_sizes(dim, hidden_dim)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        self.activation = activation
        self.act = ACTIVATIONS[activation]
        self.up = nn.Linear(dim, hidden_dim, bias=bias)  # C -> F
        self.dropout = Dropout(dropout)
        self.down = nn.Linear(hidden_dim, dim, bias=bias)  # F -> C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(self.act(self.up(x))))  # (B, T, C) -> (B, T, F) -> (B, T, C)

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class SwiGLU(nn.Module):
    r"""The gated feed-forward unit of PaLM and LLaMA (Shazeer, 2020).

    .. math:: \operatorname{SwiGLU}(x) = W_{\text{down}} \bigl(\operatorname{SiLU}(W_{\text{gate}} x) \odot W_{\text{up}} x\bigr),
        \qquad \operatorname{SiLU}(z) = z\,\sigma(z)

    Three matrices instead of two, so LLaMA shrinks the hidden width to :math:`\tfrac{2}{3} \cdot 4C`
    to keep the parameter count of a :math:`4C` :class:`MLP`. Parameters: :math:`3CF` (no biases
    by default). Chapter 20.

    Args:
        dim: :math:`C`, input and output width.
        hidden_dim: :math:`F`.
        bias: biases in the three linear maps.
        dropout: drop probability on the gated hidden activations.

    Shape:
        - x: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, dim: int, hidden_dim: int, *, bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        _check_sizes(dim, hidden_dim)
        self.gate = nn.Linear(dim, hidden_dim, bias=bias)  # C -> F
        self.up = nn.Linear(dim, hidden_dim, bias=bias)  # C -> F
        self.dropout = Dropout(dropout)
        self.down = nn.Linear(hidden_dim, dim, bias=bias)  # F -> C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.gate(x)) * self.up(x)  # (B, T, F)
        return self.down(self.dropout(h))  # (B, T, C)


def swiglu_hidden(dim: int, multiple_of: int = 256, ffn_dim_multiplier: float | None = None) -> int:
    r"""LLaMA's hidden width for a :class:`SwiGLU`: :math:`\tfrac23 \cdot 4C`, rounded up to a multiple.

    .. math:: F = m \left\lceil \frac{\lfloor \alpha \lfloor 8C/3 \rfloor \rfloor}{m} \right\rceil

    with :math:`m` = ``multiple_of`` and :math:`\alpha` = ``ffn_dim_multiplier`` (1 when
    ``None``), as in Meta's ``llama/model.py``. Three :math:`C \times F` matrices then hold about
    as many parameters as the two :math:`C \times 4C` ones of an :class:`MLP`: :math:`3CF \approx 8C^2`.
    Chapter 20.
    """
    check_positive_int("swiglu_hidden dim", dim)
    check_positive_int("swiglu_hidden multiple_of", multiple_of)
    hidden = int(2 * 4 * dim / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)
