r"""An attention-only Transformer: the smallest model in which induction heads form (chapter 30).

Token and learned position embeddings, ``n_layer`` pre-LayerNorm blocks that hold only causal
:class:`~dlscratch.layers.attention.modules.MultiHeadAttention` (no MLP), a final LayerNorm and
a head tied to the token embedding: GPT-2's layout with the feed-forward sublayers taken out, as
in the attention-only models of Elhage et al. (2021) and Olsson et al. (2022). The forward pass
can return every head's attention weights and can *ablate* heads: a knocked-out head's output is
set to zero before the output projection, so the residual stream never sees it.

Introduced in chapter 30, *In-context learning and induction heads*. Symbols: B batch, T time,
C channels (``n_embd``), nh heads, hs head size, V vocabulary, L layers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention.functional import merge_heads, split_heads
from ..layers.attention.modules import MultiHeadAttention
from ..layers.checks import check_positive_int
from ..layers.norms import LayerNorm
from ..layers.rope import RoPE
from .decoder import gpt2_init

__all__ = ["AttnOnlyConfig", "AttnOnlyTransformer", "AttnOnlyOutput", "gpt2_config", "to_gpt2_state_dict", "from_gpt2_state_dict"]


@dataclass(frozen=True)
class AttnOnlyConfig:
    r"""Sizes of an attention-only Transformer. Presets: :meth:`cpu` and :meth:`gpu` (chapter 30's)."""

    vocab_size: int = 64  # V: distinct tokens
    block_size: int = 64  # longest context (rows of the position table)
    n_layer: int = 2  # L: attention-only blocks (1: the control that cannot form an induction head)
    n_head: int = 2  # nh: heads per block
    n_embd: int = 64  # C: width of the residual stream; hs = C / nh
    positions: str = "learned"  # "learned": a position table added to the tokens (GPT-2); "rope": rotary (chapter 18)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} (n_embd % n_head = {self.n_embd % self.n_head})"
            )
        if self.positions not in ("learned", "rope"):
            raise ValueError(f"positions must be 'learned' or 'rope', got positions={self.positions!r}")

    @classmethod
    def cpu(cls, vocab_size: int = 128, n_layer: int = 2) -> AttnOnlyConfig:
        r"""The chapter's CPU model: one head per layer, 64 wide, context 32, rotary positions."""
        return cls(vocab_size=vocab_size, block_size=32, n_layer=n_layer, n_head=1, n_embd=64, positions="rope")

    @classmethod
    def gpu(cls, vocab_size: int = 256, n_layer: int = 2) -> AttnOnlyConfig:
        r"""The chapter's GPU model: one head per layer, 128 wide, context 64, rotary positions."""
        return cls(vocab_size=vocab_size, block_size=64, n_layer=n_layer, n_head=1, n_embd=128, positions="rope")


@dataclass
class AttnOnlyOutput:
    r"""What :meth:`AttnOnlyTransformer.forward` returns."""

    logits: torch.Tensor  # (B, T, V)
    loss: torch.Tensor | None  # mean cross-entropy over the targets that are not ignore_index, or None
    weights: list[torch.Tensor] | None  # per layer (B, nh, T, T) attention weights, if asked for


class AttnOnlyTransformer(nn.Module):
    r"""Embeddings, ``n_layer`` attention-only residual blocks, LayerNorm, tied head.

    .. math::

        h_0 = W_E[x_t] + W_P[t], \qquad
        h_\ell = h_{\ell-1} + \sum_{h=1}^{n_h} m_{\ell h}\, \operatorname{head}_{\ell h}\bigl(\operatorname{LN}_\ell(h_{\ell-1})\bigr) W_O^{(\ell h)\top} + b_O^{(\ell)},
        \qquad p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(\operatorname{LN}(h_L) W_E^\top)

    where :math:`W_O^{(\ell h)}` is head :math:`h`'s block of columns of layer :math:`\ell`'s
    output projection and the mask :math:`m_{\ell h}` is 1, or 0 for an ablated head. Weights
    start from GPT-2's :math:`\mathcal{N}(0, 0.02^2)`. Chapter 30.

    Shape:
        - idx, targets: :math:`(B, T)` int64, :math:`T \le` ``block_size``
        - output: :class:`AttnOnlyOutput` with logits :math:`(B, T, V)`
    """

    def __init__(self, config: AttnOnlyConfig) -> None:
        super().__init__()
        c = self.config = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)  # W_E, (V, C)
        self.wpe = nn.Embedding(c.block_size, c.n_embd) if c.positions == "learned" else None  # W_P, (block, C)
        self.norms = nn.ModuleList([LayerNorm(c.n_embd) for _ in range(c.n_layer)])
        self.attns = nn.ModuleList([MultiHeadAttention(c.n_embd, c.n_head, causal=True) for _ in range(c.n_layer)])
        if c.positions == "rope":
            for attn in self.attns:
                attn.positions = RoPE(c.n_embd // c.n_head).hook()  # rotate q and k at their positions
        self.norm_f = LayerNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        self.apply(gpt2_init)

    def head_mask(self, ablate: Iterable[tuple[int, int]] = ()) -> torch.Tensor:
        r"""The :math:`(L, n_h)` mask of :math:`m_{\ell h}`: ones, and zeros at the ``(layer, head)`` pairs in ``ablate``."""
        c = self.config
        mask = torch.ones(c.n_layer, c.n_head, device=self.wte.weight.device, dtype=self.wte.weight.dtype)
        for pair in ablate:
            layer, head = pair
            if not (0 <= layer < c.n_layer and 0 <= head < c.n_head):
                raise ValueError(f"ablate: expected (layer, head) with layer in [0, {c.n_layer}) and head in [0, {c.n_head}), got {pair!r}")
            mask[layer, head] = 0.0
        return mask

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
        ablate: Iterable[tuple[int, int]] = (), return_weights: bool = False,
    ) -> AttnOnlyOutput:
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length T={T} exceeds block_size={self.config.block_size}")
        mask = self.head_mask(ablate)  # (L, nh)
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe.weight[:T]  # (B, T, C) + (T, C)
        weights = []
        for layer, (norm, attn) in enumerate(zip(self.norms, self.attns)):
            h = norm(x)  # (B, T, C)
            q = split_heads(attn.q_proj(h), attn.num_heads)  # (B, nh, T, hs)
            k = split_heads(attn.k_proj(h), attn.num_heads)  # (B, nh, T, hs)
            v = split_heads(attn.v_proj(h), attn.num_heads)  # (B, nh, T, hs)
            out, w = attn.attend_heads(q, k, v, causal=True)  # (B, nh, T, hs), (B, nh, T, T)
            out = out * mask[layer][None, :, None, None]  # zero the ablated heads
            x = x + attn.out_proj(merge_heads(out))  # (B, nh, T, hs) -> (B, T, C)
            if return_weights:
                weights.append(w.detach())
        logits = self.lm_head(self.norm_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # ignore_index = -100
        return AttnOnlyOutput(logits, loss, weights if return_weights else None)


def gpt2_config(config: AttnOnlyConfig) -> dict:
    r"""Keyword arguments of a ``transformers.GPT2Config`` with this model's sizes (learned positions, no dropout).

    GPT-2 has an MLP in every block; :func:`to_gpt2_state_dict` sets its output projection to
    zero, so that the blocks are attention-only. Chapter 30's twin check.
    """
    if config.positions != "learned":
        raise ValueError(f"GPT-2 has learned positions; got a config with positions={config.positions!r}")
    c = config
    return {"vocab_size": c.vocab_size, "n_positions": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer,
            "n_head": c.n_head, "n_inner": 4 * c.n_embd, "activation_function": "gelu_new", "resid_pdrop": 0.0,
            "embd_pdrop": 0.0, "attn_pdrop": 0.0, "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True,
            "bos_token_id": 0, "eos_token_id": 0, "attn_implementation": "eager"}


@torch.no_grad()
def to_gpt2_state_dict(model: AttnOnlyTransformer, mlp_weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    r"""Our weights under ``GPT2LMHeadModel``'s names and layout, with every MLP output zeroed.

    GPT-2 stores each block's :math:`W_Q, W_K, W_V` as one ``Conv1D`` weight
    :math:`[W_Q; W_K; W_V]^\top` of shape :math:`(C, 3C)` and its output projection transposed.
    ``mlp_weights`` supplies the MLP entries (``...mlp.c_fc.*``, from the GPT-2 being loaded);
    the ``mlp.c_proj`` weight and bias are set to zero, so each MLP adds exactly nothing.
    """
    sd = {"transformer.wte.weight": model.wte.weight, "transformer.wpe.weight": model.wpe.weight,
          "transformer.ln_f.weight": model.norm_f.weight, "transformer.ln_f.bias": model.norm_f.bias,
          "lm_head.weight": model.wte.weight}
    for i, (norm, attn) in enumerate(zip(model.norms, model.attns)):
        p = f"transformer.h.{i}."
        sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = norm.weight, norm.bias
        sd[p + "attn.c_attn.weight"] = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]).T  # (C, 3C)
        sd[p + "attn.c_attn.bias"] = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])  # (3C,)
        sd[p + "attn.c_proj.weight"], sd[p + "attn.c_proj.bias"] = attn.out_proj.weight.T, attn.out_proj.bias
        for name in ("ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias"):
            sd[p + name] = mlp_weights[p + name]
        sd[p + "mlp.c_proj.weight"] = torch.zeros_like(mlp_weights[p + "mlp.c_proj.weight"])
        sd[p + "mlp.c_proj.bias"] = torch.zeros_like(mlp_weights[p + "mlp.c_proj.bias"])
    return {k: v.detach().clone() for k, v in sd.items()}


def from_gpt2_state_dict(sd: dict[str, torch.Tensor], config: AttnOnlyConfig) -> dict[str, torch.Tensor]:
    r"""The inverse of :func:`to_gpt2_state_dict`: GPT-2's attention, norm and embedding tensors under our names.

    The MLP entries are dropped. Applied to a dict of GPT-2's *gradients*, it gives them in our
    layout, which is how the twin check compares every gradient.
    """
    C = config.n_embd
    out = {"wte.weight": sd["transformer.wte.weight"], "wpe.weight": sd["transformer.wpe.weight"],
           "norm_f.weight": sd["transformer.ln_f.weight"], "norm_f.bias": sd["transformer.ln_f.bias"]}
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        out[f"norms.{i}.weight"], out[f"norms.{i}.bias"] = sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]
        w, b = sd[p + "attn.c_attn.weight"].T, sd[p + "attn.c_attn.bias"]  # (3C, C), (3C,)
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[f"attns.{i}.{name}.weight"], out[f"attns.{i}.{name}.bias"] = w[j * C : (j + 1) * C], b[j * C : (j + 1) * C]
        out[f"attns.{i}.out_proj.weight"], out[f"attns.{i}.out_proj.bias"] = sd[p + "attn.c_proj.weight"].T, sd[p + "attn.c_proj.bias"]
    return out
