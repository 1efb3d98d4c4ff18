r"""Exercise checkers for chapter 33, "Vision Transformer" (topic prefix ``vit.``).

The function checkers run the package's own tested :func:`~dlscratch.layers.patch.patchify` and
:func:`~dlscratch.viz.attention.attention_rollout` on seeded random inputs and compare; the
parameter count is measured on a :class:`~dlscratch.models.vit.ViT` built from
:data:`PARAM_VALUES`. A wrong answer gets a hint that names the usual mistake. The reference
solutions live in the tests.
"""

from __future__ import annotations

from typing import Any

import torch

from ..layers.patch import patchify
from ..models.vit import ViT, ViTConfig
from ..viz.attention import attention_rollout
from .answers import require_callable, require_number
from .core import exercise

__all__ = ["PARAM_VALUES", "check_patchify", "check_param_count", "check_rollout"]

# vit.param_count: the ViT whose parameters the reader counts (RGB 32x32 images, like CIFAR-10)
PARAM_VALUES = {"image_size": 32, "patch_size": 4, "in_channels": 3, "n_embd": 48, "n_layer": 2, "n_head": 3,
                "mlp_dim": 96, "n_classes": 10}


def _images(gen: torch.Generator) -> list[tuple[torch.Tensor, int]]:
    return [(torch.rand(2, 1, 8, 8, generator=gen), 4), (torch.rand(3, 3, 6, 9, generator=gen), 3),
            (torch.rand(1, 2, 5, 5, generator=gen), 1), (torch.rand(2, 3, 4, 4, generator=gen), 4)]


@exercise("vit.patchify")
def check_patchify(answer: Any) -> None:
    r"""``answer(x, P)``: images :math:`(B, C, H, W)` to patches :math:`(B, N, C P^2)` in raster order, channel first."""
    fn = require_callable(answer, "my_patchify")
    for x, P in _images(torch.Generator().manual_seed(33)):
        B, C, H, W = x.shape
        want = patchify(x, P)
        with torch.no_grad():
            got = fn(x.clone(), P)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
            raise AssertionError(f"for x of shape {tuple(x.shape)} and P={P} return (B, N, C*P*P) = {tuple(want.shape)}, "
                                 f"got {getattr(got, 'shape', type(got).__name__)}")
        if torch.allclose(got, want):
            continue
        h, w = H // P, W // P
        blocks = x.reshape(B, C, h, P, w, P)
        if torch.allclose(got, blocks.permute(0, 2, 4, 3, 5, 1).reshape(B, h * w, -1)):
            raise AssertionError("your patches are flattened channel last (row, column, channel); the convolution kernel "
                                 "(D, C, P, P) flattens channel first: permute to (B, h, w, C, P, P).")
        if torch.allclose(got, blocks.permute(0, 4, 2, 1, 3, 5).reshape(B, h * w, -1)):
            raise AssertionError("your patches run down the columns first; raster order goes along each row of patches "
                                 "(patch n = i * (W / P) + j): permute to (B, h, w, ...), not (B, w, h, ...).")
        if torch.allclose(got, x.reshape(B, h * w, -1)):
            raise AssertionError("a plain reshape cuts the image into strips of whole rows, not P x P squares: split H and "
                                 "W each into (number of patches, P) and move the two patch axes in front.")
        raise AssertionError(f"wrong values for x of shape {tuple(x.shape)} and P={P}: element [b, i*(W/P) + j, c*P*P + u*P + v] "
                             "must be pixel x[b, c, i*P + u, j*P + v].")


@exercise("vit.param_count")
def check_param_count(answer: Any) -> None:
    r"""The number of parameters of ``ViT(ViTConfig(**PARAM_VALUES))``, predicted by hand."""
    got = require_number(answer, "the number of parameters")
    c = ViTConfig(**PARAM_VALUES)
    want = ViT(c).num_parameters()
    if got == want:
        return
    C, K = c.n_embd, c.n_classes
    misses = {  # what a count that is short by this much left out
        C: "the [CLS] token (C), or its row of the position table (N + 1 rows, not N), or the patch embedding's bias",
        2 * C: "the [CLS] token together with its position, or the final LayerNorm (a gain and a bias of C each)",
        C * K + K: "the classification head, a (K, C) matrix and K biases",
        c.n_layer * 4 * C: "the LayerNorms: two per block, each with a gain and a bias of C",
        c.n_layer * (5 * C + c.mlp_dim): "the biases in the blocks: four in attention (4C), two in the MLP (F + C)",
    }
    if want - got in misses:
        raise AssertionError(f"{want - got:g} short: you left out {misses[want - got]}.")
    raise AssertionError(f"{got:g} is not it: add the patch embedding (C_in P^2 C + C), the [CLS] token (C), the positions "
                         "((N + 1) C), per block 4C^2 + 4C (attention) + 2CF + F + C (MLP) + 4C (two norms), the final "
                         "norm (2C) and the head (CK + K).")


@exercise("vit.rollout")
def check_rollout(answer: Any) -> None:
    r"""``answer(weights, residual)``: attention rollout over a list of per-layer weights :math:`(B, nh, T, T)`."""
    fn = require_callable(answer, "my_attention_rollout")
    gen = torch.Generator().manual_seed(33)
    for L, B, nh, T, r in ((3, 2, 4, 5, 0.5), (1, 1, 1, 3, 0.5), (4, 2, 2, 6, 0.2)):
        ws = [torch.randn(B, nh, T, T, generator=gen, dtype=torch.float64).mul(2).softmax(-1) for _ in range(L)]
        want = attention_rollout(ws, r)
        with torch.no_grad():
            got = fn(ws, r)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (B, T, T):
            raise AssertionError(f"return the rollout of every image, shape (B, T, T) = {(B, T, T)}, got {getattr(got, 'shape', type(got).__name__)}")
        if torch.allclose(got.double(), want, atol=1e-8):
            continue
        eye = torch.eye(T, dtype=torch.float64)
        mixed = [(1 - r) * w.mean(1) + r * eye for w in ws]
        reverse = mixed[0]
        for a in mixed[1:]:
            reverse = reverse @ a
        if torch.allclose(got.double(), reverse, atol=1e-8):
            raise AssertionError("the layers are multiplied in the wrong order: the last layer acts last, so it stands on the "
                                 "left, R = A_L ... A_2 A_1 (update R <- A_l R).")
        plain = ws[0].mean(1)
        for w in ws[1:]:
            plain = w.mean(1) @ plain
        if torch.allclose(got.double(), plain, atol=1e-8):
            raise AssertionError("the residual connection is missing: mix each layer's mean weights with the identity, "
                                 "(1 - r) A + r I, before multiplying.")
        raise AssertionError(f"wrong values for {L} layers of {nh} heads (r = {r}): average the heads, mix with r I, multiply.")
