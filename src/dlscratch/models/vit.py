r"""The Vision Transformer (Dosovitskiy et al., 2021): an image as a sequence of patch tokens.

Patch embedding (:class:`~dlscratch.layers.patch.PatchEmbedding`), an optional ``[CLS]`` token,
learned 1-D or fixed 2-D sin-cos positions (:func:`~dlscratch.layers.positional.sincos_2d_encoding`),
``n_layer`` pre-LayerNorm :class:`~dlscratch.layers.transformer.Block`\ s of bidirectional
:class:`~dlscratch.layers.attention.modules.MultiHeadAttention` and a GELU
:class:`~dlscratch.layers.feedforward.MLP`, a final LayerNorm, pooling (the ``[CLS]`` token or the
mean of the patch tokens) and a linear head. With ``stem_channels`` the patches are cut from the
feature map of a small convolutional stem (chapter 9's :class:`~dlscratch.models.cnn.BasicBlock`\ s)
instead of the pixels: the paper's *hybrid*. The weights map one to one onto Hugging Face's
``ViTModel`` (:mod:`~dlscratch.models.vit_hf`).

Introduced in chapter 33, *Vision Transformer*. Symbols: B batch, T tokens, N patches, C channels
(``n_embd``), P patch size, K classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..layers.attention.modules import MultiHeadAttention
from ..layers.checks import check_positive_int
from ..layers.conv import Conv2d
from ..layers.feedforward import MLP
from ..layers.norms import BatchNorm2d, make_norm
from ..layers.patch import PatchEmbedding, check_patch_size
from ..layers.positional import LearnedPositionalEmbedding, sincos_2d_encoding
from ..layers.transformer import Block
from .cnn import BasicBlock

__all__ = ["ViTConfig", "vit_block", "conv_stem", "ViT", "vit_init"]


@dataclass(frozen=True)
class ViTConfig:
    r"""Sizes of a Vision Transformer. Presets: :meth:`mnist` and :meth:`hybrid_mnist` (chapter 33's), :meth:`base` (ViT-B/16)."""

    image_size: int = 28  # H = W of the input images
    patch_size: int = 7  # P: side of a square patch (of the pixels, or of the stem's feature map)
    in_channels: int = 1  # channels of the input images
    n_classes: int = 10  # K: logits of the head (0: no head, forward returns the pooled features)
    n_layer: int = 4  # L: Transformer blocks
    n_head: int = 4  # nh: attention heads per block
    n_embd: int = 64  # C: width of every token; hs = C / nh
    mlp_dim: int = 128  # hidden width of each block's MLP (4C in the paper)
    dropout: float = 0.0  # on the embeddings, attention weights and each sublayer's output (training only)
    pool: str = "cls"  # "cls": a learned [CLS] token is the image's representation; "mean": the mean of the patch tokens
    pos: str = "learned"  # "learned": a learned vector per token (1-D); "sincos2d": the fixed 2-D sin-cos table
    stem_channels: tuple[int, ...] = ()  # hybrid: channels of a conv stem (3x3 conv, then one stride-2 BasicBlock per further entry)
    representation: bool = False  # a dense + tanh "pre-logits" layer on the pooled vector (the paper's; Hugging Face's pooler)
    eps: float = 1e-6  # LayerNorm epsilon (1e-6 in the paper's code)
    kernels: str = "written"  # "written": our attention and LayerNorm (attention weights available); "fused": PyTorch's kernels

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "in_channels", "n_layer", "n_head", "n_embd", "mlp_dim"):
            check_positive_int(name, getattr(self, name))
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int) or self.n_classes < 0:
            raise ValueError(f"n_classes must be a non-negative integer (0: no head), got {self.n_classes!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} (n_embd % n_head = {self.n_embd % self.n_head})")
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.stem_channels):
            raise ValueError(f"stem_channels must be positive integers, got {self.stem_channels!r}")
        halvings = max(len(self.stem_channels) - 1, 0)
        if self.image_size % 2**halvings:
            raise ValueError(f"the conv stem halves the image {halvings} times: image_size={self.image_size} must be divisible by {2**halvings}")
        check_patch_size(self.feature_size, self.feature_size, self.patch_size)
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got pool={self.pool!r}")
        if self.pos not in ("learned", "sincos2d"):
            raise ValueError(f"pos must be 'learned' or 'sincos2d', got pos={self.pos!r}")
        if self.pos == "sincos2d" and (self.n_embd % 4 or self.n_embd < 8):
            raise ValueError(f"pos='sincos2d' needs n_embd to be a multiple of 4 (at least 8), got n_embd={self.n_embd}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got dropout={self.dropout!r}")
        if self.kernels not in ("written", "fused"):
            raise ValueError(f"kernels must be 'written' or 'fused', got kernels={self.kernels!r}")

    @property
    def feature_size(self) -> int:
        r"""Side of what the patches are cut from: the image, or the conv stem's feature map."""
        return self.image_size // 2 ** max(len(self.stem_channels) - 1, 0)

    @property
    def grid(self) -> int:
        r"""Patches per side, :math:`\sqrt{N}`."""
        return self.feature_size // self.patch_size

    @property
    def n_tokens(self) -> int:
        r"""Tokens the Transformer sees: :math:`N`, plus one for the ``[CLS]`` token."""
        return self.grid**2 + (self.pool == "cls")

    @classmethod
    def mnist(cls, **overrides) -> ViTConfig:
        r"""The chapter's ViT for 14×14 digits: 7×7 patches (4 tokens and [CLS]), 4 blocks, 4 heads, 48 wide, MLP 96."""
        return cls(**{**dict(image_size=14, patch_size=7, n_layer=4, n_head=4, n_embd=48, mlp_dim=96), **overrides})

    @classmethod
    def hybrid_mnist(cls, **overrides) -> ViTConfig:
        r"""The chapter's hybrid: a 3×3 conv stem of 8 channels, 7×7 patches of its feature map, 3 blocks (as many parameters as :meth:`mnist`)."""
        return cls.mnist(**{"stem_channels": (8,), "n_layer": 3, **overrides})

    @classmethod
    def base(cls, n_classes: int = 1000) -> ViTConfig:
        r"""ViT-B/16 (Dosovitskiy et al., 2021): 224×224 RGB, 16×16 patches, 12 blocks, 12 heads, 768 wide, MLP 3072."""
        return cls(image_size=224, patch_size=16, in_channels=3, n_classes=n_classes, n_layer=12, n_head=12,
                   n_embd=768, mlp_dim=3072, eps=1e-12)


def vit_block(c: ViTConfig) -> Block:
    r"""One ViT block: pre-LN, bidirectional attention with biases, a GELU MLP; dropout on each sublayer's output."""
    attn = MultiHeadAttention(c.n_embd, c.n_head, dropout=c.dropout, causal=False, attend="sdpa" if c.kernels == "fused" else "written")
    mlp = MLP(c.n_embd, c.mlp_dim, activation="gelu")
    return Block(attn, mlp, partial(make_norm, "layernorm", c.n_embd, kernels=c.kernels, eps=c.eps), norm_first=True, dropout=c.dropout)


def conv_stem(in_channels: int, channels: tuple[int, ...]) -> nn.Sequential:
    r"""The hybrid's stem: a 3×3 conv, batch norm and ReLU to ``channels[0]``, then a stride-2 :class:`~dlscratch.models.cnn.BasicBlock` per further entry.

    Shape:
        - x: :math:`(B, C_\text{in}, H, W)`; output: :math:`(B, \text{channels}[-1], H / 2^{k}, W / 2^{k})`, :math:`k` = ``len(channels) - 1``
    """
    layers: list[nn.Module] = [Conv2d(in_channels, channels[0], 3, padding=1, bias=False), BatchNorm2d(channels[0]), nn.ReLU()]
    layers += [BasicBlock(c_in, c_out, stride=2) for c_in, c_out in zip(channels, channels[1:])]
    return nn.Sequential(*layers)


@torch.no_grad()
def vit_init(module: nn.Module, std: float = 0.02) -> None:
    r"""Initialise one module: Linear weights from a truncated :math:`\mathcal{N}(0, \text{std}^2)`, biases 0 (as Hugging Face's and timm's ViT)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ViT(nn.Module):
    r"""A Vision Transformer classifier: patches, positions, pre-LN blocks, pooling, head.

    .. math::

        z_0 = [\,x_\text{cls};\ \mathbf{W}\mathbf{p}_1 + \mathbf{b};\ \ldots;\ \mathbf{W}\mathbf{p}_N + \mathbf{b}\,] + E_\text{pos}, \qquad
        z_\ell = \operatorname{Block}_\ell(z_{\ell-1}), \qquad
        y = W_\text{head}\, \operatorname{pool}(\operatorname{LN}(z_L)) + b_\text{head}

    with :math:`\operatorname{pool}` the ``[CLS]`` row (``pool="cls"``) or the mean of the
    :math:`N` patch rows (``pool="mean"``, no ``[CLS]`` token). :meth:`forward_features` returns
    the normalised tokens :math:`\operatorname{LN}(z_L)` (Hugging Face's ``last_hidden_state``),
    :meth:`forward_head` pools them and applies the head (``pre_logits=True``: stops before the
    head), and :meth:`forward` is the two. Chapter 33.

    Shape:
        - x: :math:`(B, C_\text{in}, H, W)`; output: :math:`(B, K)` logits, or :math:`(B, C)` when ``n_classes=0``
    """

    pos_table: torch.Tensor | None

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.stem = conv_stem(c.in_channels, c.stem_channels) if c.stem_channels else nn.Identity()
        patch_in = c.stem_channels[-1] if c.stem_channels else c.in_channels
        self.patch_embed = PatchEmbedding(patch_in, c.patch_size, c.n_embd)  # (B, N, C)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.n_embd)) if c.pool == "cls" else None
        self.pos_embed = LearnedPositionalEmbedding(c.n_embd, c.n_tokens) if c.pos == "learned" else None
        table = None
        if c.pos == "sincos2d":  # the [CLS] token, if any, gets position 0 everywhere (no position)
            table = torch.cat([torch.zeros(c.n_tokens - c.grid**2, c.n_embd), sincos_2d_encoding(c.grid, c.grid, c.n_embd)])
        self.register_buffer("pos_table", table, persistent=False)  # (T, C) or None
        self.emb_drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([vit_block(c) for _ in range(c.n_layer)])
        self.norm = make_norm("layernorm", c.n_embd, kernels=c.kernels, eps=c.eps)
        self.pre_logits = nn.Linear(c.n_embd, c.n_embd) if c.representation else None
        self.head = nn.Linear(c.n_embd, c.n_classes) if c.n_classes else nn.Identity()
        self.apply(vit_init)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        r"""Stem, patch embedding, ``[CLS]`` token and positions: :math:`(B, C_\text{in}, H, W) \to (B, T, C)`."""
        c = self.config
        if x.dim() != 4 or x.shape[1:] != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"expected images of shape (B, {c.in_channels}, {c.image_size}, {c.image_size}), got {tuple(x.shape)}")
        z = self.patch_embed(self.stem(x))  # (B, N, C)
        if self.cls_token is not None:
            z = torch.cat([self.cls_token.expand(z.size(0), -1, -1), z], dim=1)  # (B, 1 + N, C)
        z = self.pos_embed(z) if self.pos_embed is not None else z + self.pos_table.to(z.dtype)  # (B, T, C)
        return self.emb_drop(z)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        r"""The normalised output tokens :math:`\operatorname{LN}(z_L)`, :math:`(B, T, C)`."""
        z = self.embed(x)  # (B, T, C)
        for block in self.blocks:
            z = block(z)  # (B, T, C)
        return self.norm(z)

    def forward_head(self, h: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        r"""Pool the tokens (``[CLS]`` row or mean of the patches), the optional tanh layer, then the head unless ``pre_logits``."""
        v = h[:, 0] if self.config.pool == "cls" else h.mean(dim=1)  # (B, C)
        if self.pre_logits is not None:
            v = torch.tanh(self.pre_logits(v))  # (B, C)
        return v if pre_logits else self.head(v)  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, K)

    def attention_weights(self, x: torch.Tensor) -> list[torch.Tensor]:
        r"""Every block's attention weights on ``x``: a list of ``n_layer`` tensors :math:`(B, nh, T, T)`.

        Raises:
            ValueError: for ``kernels="fused"``, whose attention returns no weights (load the state
                dict into a ``kernels="written"`` copy).
        """
        if self.config.kernels != "written":
            raise ValueError("attention weights need kernels='written' (PyTorch's fused attention returns none); "
                             f"got kernels={self.config.kernels!r}")
        attns = [block.attn for block in self.blocks]
        for a in attns:
            a.keep_weights = True
        try:
            self.forward_features(x)
            return [a.last_weights for a in attns]
        finally:
            for a in attns:
                a.keep_weights, a.last_weights = False, None

    def num_parameters(self) -> int:
        r"""Number of trainable parameters (the sin-cos table is a buffer, not counted)."""
        return sum(p.numel() for p in self.parameters())
