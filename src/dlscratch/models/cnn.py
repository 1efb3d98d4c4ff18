r"""Convolutional classifiers for small images: a LeNet-style network and a small ResNet.

Both are built from the book's own layers (:class:`~dlscratch.layers.conv.Conv2d`,
:class:`~dlscratch.layers.pooling.MaxPool2d`, :class:`~dlscratch.layers.norms.BatchNorm2d`) and
map images ``(B, C, H, W)`` to class logits ``(B, n_classes)``. A residual block computes

.. math::

    \mathbf{y} = \operatorname{ReLU}\big(F(\mathbf{x}) + S(\mathbf{x})\big),

with :math:`F` two 3×3 convolutions with batch norm and :math:`S` the identity, or a strided
1×1 convolution with batch norm when the shape changes. ``skip=False`` drops :math:`S` and gives
the "plain" network of the same depth. Introduced in chapter 9 (convolutional networks and
ResNet).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers.conv import Conv2d
from ..layers.norms import BatchNorm2d
from ..layers.pooling import MaxPool2d

__all__ = ["LeNetConfig", "LeNet", "ResNetConfig", "BasicBlock", "ResNet"]


@dataclass(frozen=True)
class LeNetConfig:
    r"""Hyper-parameters of :class:`LeNet`."""

    in_channels: int = 1  # channels of the input images
    image_size: int = 8  # height = width of the input images
    channels: tuple[int, ...] = (16, 32)  # output channels of each conv -> ReLU -> 2x2 max-pool stage
    kernel_size: int = 3  # odd, with padding k // 2 so a conv keeps the size and only pooling halves it
    hidden: int = 64  # width of the fully connected hidden layer
    n_classes: int = 10  # number of classes (logits)

    def __post_init__(self) -> None:
        for name in ("in_channels", "image_size", "kernel_size", "hidden", "n_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got {self.channels}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (so padding k // 2 keeps the size), got {self.kernel_size}")
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**{len(self.channels)} = "
                f"{2 ** len(self.channels)} ({len(self.channels)} stages each halve it)"
            )

    @property
    def final_size(self) -> int:
        r"""Height (= width) of the last feature map."""
        return self.image_size // 2 ** len(self.channels)

    @classmethod
    def digits(cls) -> LeNetConfig:
        r"""The preset for the 8×8 scikit-learn digits: 8×8 → 4×4 → 2×2, then 128 → 64 → 10."""
        return cls()


class LeNet(nn.Module):
    r"""LeNet-style classifier: (conv → ReLU → max-pool) stages, then two fully connected layers.

    Shape:
        - input: :math:`(B, C_\text{in}, S, S)` with :math:`S` = ``config.image_size``
        - output: :math:`(B, \text{n\_classes})`
    """

    def __init__(self, config: LeNetConfig) -> None:
        super().__init__()
        self.config = config
        stages: list[nn.Module] = []
        c_in = config.in_channels
        for c_out in config.channels:
            stages += [Conv2d(c_in, c_out, config.kernel_size, padding=config.kernel_size // 2), nn.ReLU(), MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * config.final_size**2, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        c = self.config
        if (C, H, W) != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(
                f"expected images of shape (B, {c.in_channels}, {c.image_size}, {c.image_size}), got {tuple(x.shape)}"
            )
        return self.classifier(self.features(x))  # (B, n_classes)


@dataclass(frozen=True)
class ResNetConfig:
    r"""Hyper-parameters of :class:`ResNet`."""

    in_channels: int = 1  # channels of the input images
    n_classes: int = 10  # number of classes (logits)
    stem_channels: int = 16  # channels of the first 3x3 convolution
    widths: tuple[int, ...] = (16, 32)  # channels of each stage; every stage after the first halves H and W
    blocks: tuple[int, ...] = (2, 2)  # basic blocks per stage
    skip: bool = True  # identity / projection shortcuts; False builds the plain network of the same depth

    def __post_init__(self) -> None:
        for name in ("in_channels", "n_classes", "stem_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ValueError(
                f"widths and blocks need one entry per stage, got {len(self.widths)} widths {self.widths} "
                f"and {len(self.blocks)} block counts {self.blocks}"
            )
        if min(self.widths) < 1 or min(self.blocks) < 1:
            raise ValueError(f"widths and blocks must be positive, got widths {self.widths}, blocks {self.blocks}")

    @property
    def n_conv_layers(self) -> int:
        r"""3×3 convolutions on the main path: the stem plus two per block (shortcuts not counted)."""
        return 1 + 2 * sum(self.blocks)

    @classmethod
    def digits(cls, skip: bool = True) -> ResNetConfig:
        r"""The CPU preset for 8×8 digits: 16 channels at 8×8, then 32 at 4×4; 9 conv layers."""
        return cls(skip=skip)

    @classmethod
    def digits_wide(cls, skip: bool = True) -> ResNetConfig:
        r"""The GPU preset for 8×8 digits: twice the channels of :meth:`digits` (32, then 64)."""
        return cls(stem_channels=32, widths=(32, 64), skip=skip)

    @classmethod
    def deep(cls, n_blocks: int = 12, width: int = 16, skip: bool = True) -> ResNetConfig:
        r"""One stage of ``n_blocks`` blocks at constant width: ``2 n_blocks + 1`` conv layers, no projection."""
        return cls(stem_channels=width, widths=(width,), blocks=(n_blocks,), skip=skip)


class BasicBlock(nn.Module):
    r"""Two 3×3 conv + batch-norm layers and a shortcut: :math:`\operatorname{ReLU}(F(x) + S(x))`.

    :math:`S` is the identity when the shape is kept, a strided 1×1 convolution with batch norm
    (a projection) when ``stride > 1`` or the channel count changes, and absent when
    ``skip=False``.

    Shape:
        - input: :math:`(B, C_\text{in}, H, W)`
        - output: :math:`(B, C_\text{out}, \lceil H/s \rceil, \lceil W/s \rceil)`
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, skip: bool = True) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        self.shortcut: nn.Module | None
        if not skip:
            self.shortcut = None
        elif stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:  # projection: match the channels and the spatial size of the main path
            self.shortcut = nn.Sequential(
                Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))  # (B, C_out, H/s, W/s)
        out = self.bn2(self.conv2(out))  # (B, C_out, H/s, W/s)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return torch.relu(out)


class ResNet(nn.Module):
    r"""A small ResNet: 3×3 stem, stages of :class:`BasicBlock`, global average pool, linear head.

    Shape:
        - input: :math:`(B, C_\text{in}, H, W)`
        - output: :math:`(B, \text{n\_classes})`
    """

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(
            Conv2d(config.in_channels, config.stem_channels, 3, padding=1, bias=False),
            BatchNorm2d(config.stem_channels),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        c_in = config.stem_channels
        for stage, (width, n) in enumerate(zip(config.widths, config.blocks)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1  # each later stage starts by halving H, W
                blocks.append(BasicBlock(c_in, width, stride, skip=config.skip))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected images of shape (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        x = self.blocks(self.stem(x))  # (B, C_last, H', W')
        return self.head(x.mean(dim=(2, 3)))  # global average pool (B, C_last) -> (B, n_classes)
