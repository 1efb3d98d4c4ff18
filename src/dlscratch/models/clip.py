r"""CLIP: an image tower and a text tower trained to agree (Radford et al., 2021), from kit parts.

The vision tower is a Vision Transformer as CLIP builds it: a patch embedding without bias, a
learned class embedding in front of the patches, learned positions, a LayerNorm *before* the
blocks, pre-LN blocks with the quick-GELU MLP, and a LayerNorm on the class token's output. The
text tower is a causal Transformer over characters: token and position embeddings, pre-LN
blocks, a final LayerNorm, read at the end-of-text token. Each tower ends in a linear projection
without bias into one shared embedding space, where the two unit vectors are compared by a dot
product times a learned inverse temperature :math:`e^t` (``logit_scale`` :math:`= t`).

The weights map one to one onto Hugging Face's ``CLIPModel`` (:mod:`dlscratch.models.clip_hf`).
Introduced in chapter 34, *CLIP*. Symbols: B batch, C channels, H, W image sides, P patch size,
N patches, T text length, D a tower's width, E the shared embedding width, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention.modules import MultiHeadAttention
from ..layers.checks import check_positive_int
from ..layers.feedforward import MLP
from ..layers.losses import clip_loss
from ..layers.norms import make_norm
from ..layers.patch import PatchEmbedding, check_patch_size
from ..layers.transformer import Block

__all__ = ["CLIPTowerConfig", "CLIPConfig", "clip_block", "CLIPVisionTower", "eot_positions", "CLIPTextTower", "CLIPOutput", "CLIP", "clip_init"]


@dataclass(frozen=True)
class CLIPTowerConfig:
    r"""The Transformer of one tower (the sizes Hugging Face's ``CLIPVisionConfig`` / ``CLIPTextConfig`` name)."""

    width: int = 64  # D: width of the tower's tokens (hidden_size)
    n_layer: int = 2  # L: pre-LN blocks (num_hidden_layers)
    n_head: int = 4  # nh: attention heads; must divide width
    ffn_dim: int = 256  # F: the MLP's hidden width (intermediate_size; 4D in CLIP)

    def __post_init__(self) -> None:
        for name in ("width", "n_layer", "n_head", "ffn_dim"):
            check_positive_int(name, getattr(self, name))
        if self.width % self.n_head:
            raise ValueError(f"width={self.width} must be divisible by n_head={self.n_head} (width % n_head = {self.width % self.n_head})")


@dataclass(frozen=True)
class CLIPConfig:
    r"""Sizes of a CLIP. Presets :meth:`cpu` and :meth:`gpu` (chapter 34's, for 28×28 digits and character captions)."""

    vocab_size: int = 37  # V: caption token ids (characters, <pad>, <eot>)
    eot_id: int = 36  # the end-of-text id; the text tower is read at its first occurrence
    context_length: int = 32  # T_max: rows of the text position table (longest caption + <eot>)
    image_size: int = 28  # H = W
    patch_size: int = 7  # P; must divide image_size
    channels: int = 1  # C
    vision: CLIPTowerConfig = field(default_factory=CLIPTowerConfig)  # the image Transformer
    text: CLIPTowerConfig = field(default_factory=CLIPTowerConfig)  # the text Transformer
    embed_dim: int = 64  # E: the shared embedding space (projection_dim)
    logit_scale_init: float = math.log(1 / 0.07)  # t at initialisation: a temperature of 0.07 (CLIP's)
    max_logit_scale: float = 100.0  # e^t is clipped here (CLIP's)
    eps: float = 1e-5  # every LayerNorm's epsilon
    kernels: str = "written"  # "written": our attention and LayerNorm; "fused": PyTorch's kernels, same maths

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "image_size", "patch_size", "channels", "embed_dim"):
            check_positive_int(name, getattr(self, name))
        if not 0 <= self.eot_id < self.vocab_size:
            raise ValueError(f"eot_id must be a token id in [0, vocab_size={self.vocab_size}), got eot_id={self.eot_id}")
        check_patch_size(self.image_size, self.image_size, self.patch_size)
        if not self.max_logit_scale > 1.0 or not self.logit_scale_init <= math.log(self.max_logit_scale):
            raise ValueError(f"need max_logit_scale > 1 and exp(logit_scale_init) <= max_logit_scale, got "
                             f"{self.max_logit_scale} and exp({self.logit_scale_init}) = {math.exp(self.logit_scale_init):.4g}")
        if self.kernels not in ("written", "fused"):
            raise ValueError(f"kernels must be 'written' or 'fused', got kernels={self.kernels!r}")

    @property
    def n_patches(self) -> int:
        r""":math:`N = (H / P)^2`."""
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def cpu(cls, vocab_size: int, eot_id: int, context_length: int = 32) -> CLIPConfig:
        r"""The chapter's CPU model: 7×7 patches of 28×28 digits, two towers of 2 blocks, 64 wide, 4 heads; E = 64."""
        tower = CLIPTowerConfig(width=64, n_layer=2, n_head=4, ffn_dim=256)
        return cls(vocab_size=vocab_size, eot_id=eot_id, context_length=context_length, vision=tower, text=tower,
                   embed_dim=64, kernels="fused")

    @classmethod
    def gpu(cls, vocab_size: int, eot_id: int, context_length: int = 32) -> CLIPConfig:
        r"""The chapter's GPU model: 4×4 patches, a vision tower of 6 blocks 192 wide, a text tower of 4 blocks 128 wide; E = 128."""
        return cls(vocab_size=vocab_size, eot_id=eot_id, context_length=context_length, patch_size=4,
                   vision=CLIPTowerConfig(width=192, n_layer=6, n_head=6, ffn_dim=768),
                   text=CLIPTowerConfig(width=128, n_layer=4, n_head=4, ffn_dim=512), embed_dim=128, kernels="fused")


def clip_block(tower: CLIPTowerConfig, *, causal: bool, kernels: str = "written", eps: float = 1e-5) -> Block:
    r"""One CLIP block: pre-LN, attention with biases (causal in the text tower), a quick-GELU MLP."""
    attn = MultiHeadAttention(tower.width, tower.n_head, causal=causal, attend="sdpa" if kernels == "fused" else "written")
    mlp = MLP(tower.width, tower.ffn_dim, activation="quick_gelu")
    return Block(attn, mlp, partial(make_norm, "layernorm", tower.width, kernels=kernels, eps=eps), norm_first=True)


class CLIPVisionTower(nn.Module):
    r"""CLIP's image encoder: a ViT read at its class token.

    .. math::

        h_0 = \operatorname{LN}_{\text{pre}}\bigl([\mathbf{c};\, \mathbf{W}\mathbf{p}_1; \ldots; \mathbf{W}\mathbf{p}_N] + \mathbf{P}\bigr),
        \qquad h_\ell = \operatorname{Block}_\ell(h_{\ell-1}), \qquad
        \mathbf{f} = \operatorname{LN}_{\text{post}}(h_L[0])

    Chapter 34.

    Shape:
        - images: :math:`(B, C, H, W)`; output: :math:`(B, D)`
    """

    def __init__(self, c: CLIPConfig) -> None:
        super().__init__()
        D = c.vision.width
        norm = partial(make_norm, "layernorm", D, kernels=c.kernels, eps=c.eps)
        self.image_size = c.image_size
        self.patch = PatchEmbedding(c.channels, c.patch_size, D, bias=False)  # W, as a strided convolution
        self.class_embedding = nn.Parameter(torch.zeros(D))  # c, the [CLS] token
        self.position = nn.Embedding(c.n_patches + 1, D)  # P, one row per token, [CLS] first
        self.pre_norm = norm()
        self.blocks = nn.ModuleList(clip_block(c.vision, causal=False, kernels=c.kernels, eps=c.eps) for _ in range(c.vision.n_layer))
        self.post_norm = norm()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"expected images of shape (B, C, {self.image_size}, {self.image_size}), got {tuple(images.shape)}")
        x = self.patch(images)  # (B, N, D)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1) + self.position.weight  # (B, N + 1, D)
        x = self.pre_norm(x)
        for block in self.blocks:
            x = block(x)  # (B, N + 1, D)
        return self.post_norm(x[:, 0])  # (B, D)


def eot_positions(ids: torch.Tensor, eot_id: int) -> torch.Tensor:
    r"""The position of the first ``eot_id`` in every row of ``ids`` :math:`(B, T)`; ``ValueError`` for a row without one."""
    is_eot = ids == eot_id  # (B, T)
    missing = ~is_eot.any(dim=1)
    if missing.any():
        raise ValueError(f"every caption must contain the end-of-text id {eot_id}; row {int(missing.nonzero()[0])} has none")
    return is_eot.int().argmax(dim=1)  # (B,) first occurrence


class CLIPTextTower(nn.Module):
    r"""CLIP's text encoder: a causal Transformer read at the end-of-text token.

    .. math::

        h_0[t] = \mathbf{W}_E[x_t] + \mathbf{P}[t], \qquad h_\ell = \operatorname{Block}_\ell(h_{\ell-1}), \qquad
        \mathbf{g} = \operatorname{LN}(h_L)[t_{\text{eot}}]

    Causal attention means the vector at :math:`t_{\text{eot}}` has read the whole caption and
    nothing of the padding after it, so no padding mask is needed. Chapter 34.

    Shape:
        - ids: :math:`(B, T)` long, :math:`T \le` ``context_length``; output: :math:`(B, D)`
    """

    def __init__(self, c: CLIPConfig) -> None:
        super().__init__()
        D = c.text.width
        self.eot_id = c.eot_id
        self.token = nn.Embedding(c.vocab_size, D)  # W_E
        self.position = nn.Embedding(c.context_length, D)  # P
        self.blocks = nn.ModuleList(clip_block(c.text, causal=True, kernels=c.kernels, eps=c.eps) for _ in range(c.text.n_layer))
        self.final_norm = make_norm("layernorm", D, kernels=c.kernels, eps=c.eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.shape[1] > self.position.num_embeddings:
            raise ValueError(f"expected token ids of shape (B, T) with T <= {self.position.num_embeddings}, got {tuple(ids.shape)}")
        B, T = ids.shape
        eot = eot_positions(ids, self.eot_id)  # (B,)
        x = self.token(ids) + self.position.weight[:T]  # (B, T, D)
        for block in self.blocks:
            x = block(x)  # (B, T, D), causal
        x = self.final_norm(x)
        return x[torch.arange(B, device=ids.device), eot]  # (B, D)


class CLIPOutput(NamedTuple):
    r"""What :class:`CLIP` returns for a batch of pairs."""

    logits_per_image: torch.Tensor  # (B, B): row n image n against every text
    logits_per_text: torch.Tensor  # (B, B): its transpose
    image_embeds: torch.Tensor  # (B, E) unit vectors
    text_embeds: torch.Tensor  # (B, E) unit vectors
    loss: torch.Tensor  # () the symmetric contrastive loss, pair n = (image n, text n)


def clip_init(model: CLIP) -> None:
    r"""CLIP's initialisation (as Hugging Face's ``CLIPModel``, ``initializer_factor`` 1).

    Embeddings :math:`\mathcal{N}(0, 0.02^2)`, the class embedding :math:`\mathcal{N}(0, 1/D)`;
    in each block the attention's input maps :math:`\mathcal{N}(0, 1/(2LD))`, its output map
    :math:`\mathcal{N}(0, 1/D)`, the MLP's up map :math:`\mathcal{N}(0, 1/(2D))` and its down map
    :math:`\mathcal{N}(0, 1/(2LD))`; the projections :math:`\mathcal{N}(0, 1/D)`; biases 0.
    """
    with torch.no_grad():
        for tower, cfg in ((model.vision, model.config.vision), (model.text, model.config.text)):
            D, L = cfg.width, cfg.n_layer
            for emb in (tower.position, getattr(tower, "token", None), getattr(tower, "patch", None)):
                if emb is not None:
                    nn.init.normal_(emb.weight, std=0.02)
            for block in tower.blocks:
                for lin, std in ((block.attn.q_proj, (2 * L * D) ** -0.5), (block.attn.k_proj, (2 * L * D) ** -0.5),
                                 (block.attn.v_proj, (2 * L * D) ** -0.5), (block.attn.out_proj, D ** -0.5),
                                 (block.mlp.up, (2 * D) ** -0.5), (block.mlp.down, (2 * L * D) ** -0.5)):
                    nn.init.normal_(lin.weight, std=std)
                    nn.init.zeros_(lin.bias)
        nn.init.normal_(model.vision.class_embedding, std=model.config.vision.width ** -0.5)
        nn.init.normal_(model.visual_projection.weight, std=model.config.vision.width ** -0.5)
        nn.init.normal_(model.text_projection.weight, std=model.config.text.width ** -0.5)


class CLIP(nn.Module):
    r"""Two towers, two projections and a learned temperature.

    .. math::

        \hat{\mathbf{u}} = \frac{\mathbf{W}_i \mathbf{f}(\text{image})}{\lVert \mathbf{W}_i \mathbf{f} \rVert}, \qquad
        \hat{\mathbf{v}} = \frac{\mathbf{W}_t \mathbf{g}(\text{text})}{\lVert \mathbf{W}_t \mathbf{g} \rVert}, \qquad
        S_{nm} = \min(e^{t}, 100)\; \hat{\mathbf{u}}_n^\top \hat{\mathbf{v}}_m

    with :math:`t` initialised to :math:`\ln(1/0.07)`. Call :meth:`clamp_logit_scale_` after every
    optimizer step, as CLIP's training code does, so that :math:`t` itself never passes
    :math:`\ln 100` (a clamp inside the forward pass alone would stop its gradient there). Equals
    Hugging Face's ``CLIPModel`` with copied weights. Chapter 34.

    Shape:
        - images: :math:`(B, C, H, W)`; ids: :math:`(B, T)`; logits: :math:`(B, B)`; embeddings: :math:`(B, E)`
    """

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        c = self.config = config
        self.vision = CLIPVisionTower(c)
        self.text = CLIPTextTower(c)
        self.visual_projection = nn.Linear(c.vision.width, c.embed_dim, bias=False)  # W_i
        self.text_projection = nn.Linear(c.text.width, c.embed_dim, bias=False)  # W_t
        self.logit_scale = nn.Parameter(torch.tensor(c.logit_scale_init))  # t
        clip_init(self)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        r"""Image embeddings :math:`(B, E)`, unit vectors unless ``normalize=False``."""
        u = self.visual_projection(self.vision(images))  # (B, E)
        return F.normalize(u, dim=-1) if normalize else u

    def encode_text(self, ids: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        r"""Text embeddings :math:`(B, E)`, unit vectors unless ``normalize=False``."""
        v = self.text_projection(self.text(ids))  # (B, E)
        return F.normalize(v, dim=-1) if normalize else v

    def scale(self) -> torch.Tensor:
        r"""The inverse temperature :math:`\min(e^t, 100)`, a scalar tensor."""
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        r"""Clip :math:`t` to :math:`[0, \ln 100]` in place (after an optimizer step)."""
        self.logit_scale.clamp_(0.0, math.log(self.config.max_logit_scale))

    def similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        r"""Scaled cosine similarities :math:`(B_i, B_t)` of unit image and text embeddings."""
        return self.scale() * image_embeds @ text_embeds.T  # (B_i, E) @ (E, B_t)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> CLIPOutput:
        if images.shape[0] != ids.shape[0]:
            raise ValueError(f"need one caption per image, got {images.shape[0]} images and {ids.shape[0]} captions")
        u, v = self.encode_image(images), self.encode_text(ids)  # (B, E), (B, E)
        logits = self.similarity(u, v)  # (B, B)
        return CLIPOutput(logits, logits.T, u, v, clip_loss(logits))
