r"""Noise predictors :math:`\epsilon_\theta(\mathbf{x}_t, t, c)` for chapter 35's diffusion models.

- :class:`ToyDenoiser`: a residual MLP for 2-D points (two moons).
- :class:`CaptionEncoder`: characters of a caption through the kit's Transformer encoder, one
  vector per token; the text tower of the text-to-image model.
- :class:`UNet`: a small convolutional U-Net for digit images, with the timestep added in every
  residual block and the caption read by cross-attention at the bottleneck, as in latent
  diffusion (Rombach et al. 2022):

  .. math::

      \mathbf{h} \leftarrow \mathbf{h} + \operatorname{softmax}\Bigl(
      \frac{(\mathbf{h} W_Q)(\mathbf{c} W_K)^\top}{\sqrt{hs}}\Bigr)(\mathbf{c} W_V) W_O,

  queries from the image positions, keys and values from the caption tokens :math:`\mathbf{c}`.
- :class:`TextToImage`: the two together, trained jointly.

The timestep enters through :class:`TimeEmbedding`: chapter 13's sinusoidal table, indexed by
:math:`t`, then an MLP. Chapter 35.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention.modules import MultiHeadAttention
from ..layers.positional import LearnedPositionalEmbedding, sinusoidal_encoding
from ..layers.transformer import TransformerEncoder, TransformerLayerConfig

__all__ = [
    "TimeEmbedding", "ToyDenoiserConfig", "ToyDenoiser", "CaptionEncoder", "UNetConfig", "ResBlock",
    "CrossAttention2d", "UNet", "TextToImage",
]


class TimeEmbedding(nn.Module):
    r"""The timestep as a vector: row :math:`t` of the sinusoidal table (chapter 13), then Linear, SiLU, Linear.

    Args:
        n_timesteps: :math:`T`, the rows of the table.
        dim: the width of the table and of the output (even).

    Shape:
        - t: :math:`(B,)` integers in :math:`0 \ldots T - 1`; output: :math:`(B, \text{dim})`
    """

    def __init__(self, n_timesteps: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_encoding(n_timesteps, dim), persistent=False)  # (T, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if t.dim() != 1 or t.is_floating_point() or int(t.min()) < 0 or int(t.max()) >= len(self.table):
            raise ValueError(f"expected integer timesteps (B,) in 0..{len(self.table) - 1}, got {t.dtype} of shape {tuple(t.shape)}")
        return self.mlp(self.table[t])  # (B, dim)


@dataclass(frozen=True)
class ToyDenoiserConfig:
    r"""Hyper-parameters of :class:`ToyDenoiser`."""

    dim: int = 2  # the data's dimension
    hidden: int = 128  # width of the residual MLP
    n_blocks: int = 3  # residual blocks
    n_timesteps: int = 1000  # T, the diffusion steps the model knows

    def __post_init__(self) -> None:
        for name in ("dim", "hidden", "n_blocks", "n_timesteps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.hidden % 2:
            raise ValueError(f"hidden must be even (sin and cos pairs of the time table), got {self.hidden}")


class ToyDenoiser(nn.Module):
    r"""A residual MLP :math:`\epsilon_\theta(\mathbf{x}_t, t)` for low-dimensional points.

    :math:`\mathbf{h} = W_\text{in}\mathbf{x}_t + \operatorname{temb}(t)`, then blocks
    :math:`\mathbf{h} \leftarrow \mathbf{h} + W_2\operatorname{SiLU}(W_1 \operatorname{SiLU}(\mathbf{h}))`, then a linear read-out.

    Shape:
        - x: :math:`(B, D)`; t: :math:`(B,)`; output: :math:`(B, D)`
    """

    def __init__(self, config: ToyDenoiserConfig) -> None:
        super().__init__()
        self.config = c = config
        self.inp = nn.Linear(c.dim, c.hidden)
        self.time = TimeEmbedding(c.n_timesteps, c.hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(c.hidden, c.hidden), nn.SiLU(), nn.Linear(c.hidden, c.hidden)) for _ in range(c.n_blocks)
        )
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(c.hidden, c.dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.config.dim:
            raise ValueError(f"expected points of shape (B, {self.config.dim}), got {tuple(x.shape)}")
        h = self.inp(x) + self.time(t)  # (B, H)
        for block in self.blocks:
            h = h + block(h)  # (B, H)
        return self.out(h)  # (B, D)


class CaptionEncoder(nn.Module):
    r"""Token embedding + learned positions + a pre-LN Transformer encoder over caption tokens.

    Args:
        vocab_size: :math:`V`, the caption tokenizer's vocabulary.
        max_len: the longest caption, in tokens.
        dim: :math:`C`, the token width.
        n_head: attention heads.
        n_layers: encoder layers.
        pad_id: the padding token, masked out of attention.

    Shape:
        - ids: :math:`(B, L)`; output: :math:`(B, L, C)` (padding positions are computed but
          never attended to)
    """

    def __init__(self, vocab_size: int, max_len: int, dim: int = 64, n_head: int = 4, n_layers: int = 2, pad_id: int = 0) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = LearnedPositionalEmbedding(dim, max_len)
        cfg = TransformerLayerConfig(d_model=dim, nhead=n_head, dim_feedforward=2 * dim, dropout=0.0, norm_first=True)
        self.encoder = TransformerEncoder(cfg, n_layers)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.shape[1] > self.pos.weight.shape[0]:
            raise ValueError(f"expected caption ids (B, L) with L <= {self.pos.weight.shape[0]}, got shape {tuple(ids.shape)}")
        h = self.pos(self.tok(ids))  # (B, L, C)
        return self.encoder(h, key_padding_mask=ids == self.pad_id)  # (B, L, C)


@dataclass(frozen=True)
class UNetConfig:
    r"""Hyper-parameters of :class:`UNet`."""

    image_size: int = 8  # H = W of the images; even (one 2x down- and up-sampling)
    in_channels: int = 1  # image channels
    channels: int = 32  # feature channels at full resolution
    channels_low: int = 64  # feature channels at half resolution (the bottleneck)
    n_timesteps: int = 1000  # T
    time_dim: int = 128  # width of the time embedding
    context_dim: int = 64  # width of the conditioning tokens
    n_head: int = 4  # heads of the cross-attention; must divide channels_low
    groups: int = 8  # GroupNorm groups; must divide channels and channels_low

    def __post_init__(self) -> None:
        for name in ("image_size", "in_channels", "channels", "channels_low", "n_timesteps", "time_dim", "context_dim", "n_head", "groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.image_size % 2:
            raise ValueError(f"image_size must be even (the U-Net halves it once), got {self.image_size}")
        if self.channels_low % self.n_head:
            raise ValueError(f"n_head {self.n_head} must divide channels_low {self.channels_low}")
        if self.channels % self.groups or self.channels_low % self.groups:
            raise ValueError(f"groups {self.groups} must divide channels {self.channels} and channels_low {self.channels_low}")


class ResBlock(nn.Module):
    r"""GroupNorm, SiLU, 3×3 conv; add the projected time embedding; GroupNorm, SiLU, 3×3 conv; plus a skip.

    Shape:
        - x: :math:`(B, C_\text{in}, H, W)`; temb: :math:`(B, D_t)`; output: :math:`(B, C_\text{out}, H, W)`
    """

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.time(F.silu(temb))[:, :, None, None]  # (B, C_out, 1, 1) broadcast over H, W
        h = self.conv2(F.silu(self.norm2(h)))  # (B, C_out, H, W)
        return self.skip(x) + h


class CrossAttention2d(nn.Module):
    r"""Image positions attend to conditioning tokens (the kit's :class:`MultiHeadAttention`), pre-LN, residual.

    Shape:
        - x: :math:`(B, C, H, W)`; context: :math:`(B, S, D_c)`; context_pad: :math:`(B, S)` bool,
          ``True`` = padding; output: :math:`(B, C, H, W)`
    """

    def __init__(self, channels: int, context_dim: int, n_head: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.context = nn.Linear(context_dim, channels)  # caption width -> image width
        self.attn = MultiHeadAttention(channels, n_head)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_pad: torch.Tensor | None = None) -> torch.Tensor:
        B, C, H, W = x.shape
        h = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        y, _ = self.attn(self.norm(h), self.context(context), key_padding_mask=context_pad, need_weights=False)  # (B, HW, C)
        return x + y.transpose(1, 2).reshape(B, C, H, W)


class UNet(nn.Module):
    r"""A one-level U-Net :math:`\epsilon_\theta(\mathbf{x}_t, t, \mathbf{c})` for small images.

    The conditioning enters twice, as in Imagen: the mean of the context tokens is projected and
    added to the time embedding (a global signal every block sees), and the bottleneck reads the
    tokens one by one by cross-attention.

    Full resolution: conv in, a :class:`ResBlock`; 2× down (strided conv); bottleneck: ResBlock,
    :class:`CrossAttention2d` to the context, ResBlock; 2× up (transposed conv); concatenate the
    full-resolution features (the U's skip); ResBlock; GroupNorm, SiLU, conv out (zero-initialised,
    so the untrained model predicts :math:`\hat{\boldsymbol\epsilon} = 0`).

    Shape:
        - x: :math:`(B, C_\text{in}, S, S)`; t: :math:`(B,)`; context: :math:`(B, L, D_c)`;
          context_pad: :math:`(B, L)`; output: :math:`(B, C_\text{in}, S, S)`
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = c = config
        self.time = TimeEmbedding(c.n_timesteps, c.time_dim)
        self.pooled = nn.Linear(c.context_dim, c.time_dim)  # the mean context token, added to the time embedding
        self.conv_in = nn.Conv2d(c.in_channels, c.channels, 3, padding=1)
        self.down_block = ResBlock(c.channels, c.channels, c.time_dim, c.groups)
        self.down = nn.Conv2d(c.channels, c.channels_low, 3, stride=2, padding=1)
        self.mid1 = ResBlock(c.channels_low, c.channels_low, c.time_dim, c.groups)
        self.cross = CrossAttention2d(c.channels_low, c.context_dim, c.n_head)
        self.mid2 = ResBlock(c.channels_low, c.channels_low, c.time_dim, c.groups)
        self.up = nn.ConvTranspose2d(c.channels_low, c.channels, 2, stride=2)
        self.up_block = ResBlock(2 * c.channels, c.channels, c.time_dim, c.groups)
        self.norm_out = nn.GroupNorm(c.groups, c.channels)
        self.conv_out = nn.Conv2d(c.channels, c.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, context_pad: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if x.dim() != 4 or x.shape[1:] != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"expected images (B, {c.in_channels}, {c.image_size}, {c.image_size}), got {tuple(x.shape)}")
        keep = torch.ones(context.shape[:2], device=x.device, dtype=x.dtype) if context_pad is None else (~context_pad).to(x.dtype)  # (B, L)
        pooled = (context * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)  # (B, D_c), the mean real token
        temb = self.time(t) + self.pooled(pooled)  # (B, D_t)
        h = self.down_block(self.conv_in(x), temb)  # (B, C, S, S)
        z = self.mid1(self.down(h), temb)  # (B, C_low, S/2, S/2)
        z = self.mid2(self.cross(z, context, context_pad), temb)  # (B, C_low, S/2, S/2)
        u = self.up_block(torch.cat([self.up(z), h], dim=1), temb)  # (B, 2C, S, S) -> (B, C, S, S)
        return self.conv_out(F.silu(self.norm_out(u)))  # (B, C_in, S, S)


class TextToImage(nn.Module):
    r"""A :class:`CaptionEncoder` and a :class:`UNet` trained together: :math:`\epsilon_\theta(\mathbf{x}_t, t, \text{caption})`.

    Captions repeat within a batch (a few templates per digit), so each distinct row of ``ids`` is
    encoded once and its tokens are shared by every image that asked for it.

    Shape:
        - x: :math:`(B, C_\text{in}, S, S)`; t: :math:`(B,)`; ids: :math:`(B, L)`; output: like x
    """

    def __init__(self, text: CaptionEncoder, unet: UNet) -> None:
        super().__init__()
        if text.tok.embedding_dim != unet.config.context_dim:
            raise ValueError(f"the caption width {text.tok.embedding_dim} must equal the U-Net's context_dim {unet.config.context_dim}")
        self.text, self.unet = text, unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[0] != x.shape[0]:
            raise ValueError(f"need one caption per image, got {ids.shape[0]} captions for {x.shape[0]} images")
        uniq, inverse = torch.unique(ids, dim=0, return_inverse=True)  # (U, L), (B,)
        context = self.text(uniq)[inverse]  # (U, L, C) -> (B, L, C)
        return self.unet(x, t, context, ids == self.text.pad_id)  # (B, C_in, S, S)
