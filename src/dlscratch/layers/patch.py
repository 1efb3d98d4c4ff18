r"""Patch embedding: an image as a sequence of tokens, the input of a Vision Transformer.

An image :math:`\mathbf{x} \in \mathbb{R}^{C \times H \times W}` is cut into
:math:`N = (H/P)(W/P)` non-overlapping :math:`P \times P` patches; each patch, flattened to a
vector :math:`\mathbf{p}_n \in \mathbb{R}^{C P^2}` (channel, then row, then column), is mapped
to a token by one shared linear map,

.. math::

    \mathbf{z}_n = \mathbf{W} \mathbf{p}_n + \mathbf{b}, \qquad
    \mathbf{W} \in \mathbb{R}^{D \times C P^2}.

The same map is a convolution with kernel size and stride :math:`P` whose ``(D, C, P, P)``
kernel is :math:`\mathbf{W}` reshaped; :class:`PatchEmbedding` uses that form, and
:func:`patchify` with a linear layer is the other. Introduced in chapter 33 (Vision Transformer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["check_patch_size", "patchify", "unpatchify", "PatchEmbedding"]


def check_patch_size(height: int, width: int, patch_size: int) -> None:
    r"""Raise :class:`ValueError` unless ``patch_size`` is positive and divides both image sides."""
    if not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"the image size {height}x{width} is not divisible by the patch size {patch_size}: "
            f"{height} % {patch_size} = {height % patch_size}, {width} % {patch_size} = {width % patch_size}"
        )


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    r"""Cut images into flattened non-overlapping patches, in raster order.

    Element ``[b, n, c P^2 + u P + v]`` of the output is pixel ``(c, i P + u, j P + v)`` of image
    ``b``, where patch ``n = i (W / P) + j``: the layout of a ``(D, C, P, P)`` convolution kernel.

    Args:
        x: images.
        patch_size: :math:`P`, which must divide :math:`H` and :math:`W`.

    Shape:
        - x: :math:`(B, C, H, W)`
        - output: :math:`(B, N, C P^2)` with :math:`N = HW / P^2`
    """
    if x.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    B, C, H, W = x.shape
    check_patch_size(H, W, patch_size)
    P = patch_size
    x = x.reshape(B, C, H // P, P, W // P, P)  # (B, C, h, P, w, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, h, w, C, P, P)
    return x.reshape(B, (H // P) * (W // P), C * P * P)  # (B, N, C*P*P)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int, height: int, width: int) -> torch.Tensor:
    r"""The inverse of :func:`patchify`: ``unpatchify(patchify(x, P), P, C, H, W) == x``.

    Shape:
        - patches: :math:`(B, N, C P^2)`
        - output: :math:`(B, C, H, W)`
    """
    check_patch_size(height, width, patch_size)
    P, C = patch_size, channels
    h, w = height // P, width // P
    if patches.dim() != 3 or patches.shape[1:] != (h * w, C * P * P):
        raise ValueError(
            f"expected patches of shape (B, {h * w}, {C * P * P}) for {C}x{height}x{width} images and "
            f"patch size {P}, got shape {tuple(patches.shape)}"
        )
    B = patches.shape[0]
    x = patches.reshape(B, h, w, C, P, P).permute(0, 3, 1, 4, 2, 5)  # (B, C, h, P, w, P)
    return x.reshape(B, C, height, width)


class PatchEmbedding(nn.Module):
    r"""Linear patch embedding written as a strided convolution (kernel size = stride = :math:`P`).

    Its ``weight`` ``(D, C, P, P)`` reshaped to ``(D, C P^2)`` is the :math:`\mathbf{W}` of
    :math:`\mathbf{z}_n = \mathbf{W}\mathbf{p}_n + \mathbf{b}` on :func:`patchify`'s patches. The
    parameter names match ``torch.nn.Conv2d`` (``weight``, ``bias``).

    Args:
        in_channels: :math:`C`.
        patch_size: :math:`P`.
        dim: :math:`D`, the token width.
        bias: whether to add :math:`\mathbf{b}` (CLIP's vision tower has none).

    Shape:
        - x: :math:`(B, C, H, W)`
        - output: :math:`(B, N, D)`
    """

    def __init__(self, in_channels: int, patch_size: int, dim: int, bias: bool = True) -> None:
        super().__init__()
        check_patch_size(patch_size, patch_size, patch_size)
        self.in_channels, self.patch_size, self.dim = in_channels, patch_size, dim
        self.weight = nn.Parameter(torch.empty(dim, in_channels, patch_size, patch_size))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        check_patch_size(x.shape[2], x.shape[3], self.patch_size)
        y = F.conv2d(x, self.weight, self.bias, stride=self.patch_size)  # (B, D, H/P, W/P)
        return y.flatten(2).transpose(1, 2)  # (B, N, D)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, patch_size={self.patch_size}, dim={self.dim}, bias={self.bias is not None}"
