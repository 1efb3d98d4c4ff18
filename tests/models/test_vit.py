"""The Vision Transformer: equal to transformers' ViTModel with copied weights, its variants, and its bad input."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from dlscratch.layers.positional import sincos_2d_encoding
from dlscratch.models.vit import ViT, ViTConfig
from dlscratch.models.vit_hf import hf_vit_config, hf_vit_grads, hf_vit_name, vit_state_dict_from_hf
from tests.helpers import assert_same_forward_backward

transformers = pytest.importorskip("transformers")

SMALL = ViTConfig(image_size=12, patch_size=4, n_layer=2, n_head=2, n_embd=16, mlp_dim=24, n_classes=0, representation=True)
ODD = replace(SMALL, image_size=10, patch_size=5, in_channels=3, n_layer=1, n_head=3, n_embd=9, mlp_dim=7, eps=1e-5)
ONE_PATCH = replace(SMALL, image_size=6, patch_size=6, n_head=1)  # T = 2: [CLS] and one patch


def twins(cfg: ViTConfig, attention: str) -> tuple[ViT, torch.nn.Module]:
    hf = transformers.ViTModel(transformers.ViTConfig(**hf_vit_config(cfg, attn_implementation=attention))).double().eval()
    with torch.no_grad():  # norm gains away from 1, biases away from 0: a mix-up would show
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = ViT(cfg).double().eval()
    ours.load_state_dict(vit_state_dict_from_hf(hf.state_dict(), ours.state_dict()))
    return ours, hf


def ours_out(model: ViT, x: torch.Tensor) -> torch.Tensor:
    h = model.forward_features(x)  # (B, T, C)
    return torch.cat([h.flatten(1), model.forward_head(h)], dim=1)  # last hidden state and pooled output


def hf_out(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(pixel_values=x)
    return torch.cat([out.last_hidden_state.flatten(1), out.pooler_output], dim=1)


@pytest.mark.parametrize("cfg", [SMALL, ODD, ONE_PATCH], ids=["small", "odd", "one-patch"])
def test_equals_hf_vit_model_with_sdpa(cfg: ViTConfig) -> None:
    ours, hf = twins(cfg, "sdpa")
    x = torch.randn(3, cfg.in_channels, cfg.image_size, cfg.image_size, dtype=torch.float64)
    assert_same_forward_backward(lambda t: ours_out(ours, t), lambda t: hf_out(hf, t), [x], modules=(ours, hf),
                                 grads=(lambda m: {k: p.grad for k, p in m.named_parameters()}, lambda m: hf_vit_grads(ours, m)))


def test_equals_hf_vit_model_with_eager_attention_up_to_its_float32_softmax() -> None:
    # ViTModel's eager attention takes the softmax in float32 (then casts back): agreement to about 1e-7
    ours, hf = twins(SMALL, "eager")
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    assert_same_forward_backward(lambda t: ours_out(ours, t), lambda t: hf_out(hf, t), [x], modules=(ours, hf),
                                 grads=(lambda m: {k: p.grad for k, p in m.named_parameters()}, lambda m: hf_vit_grads(ours, m)),
                                 atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # and the attention weights of every layer, the same tensors HF returns
        theirs = hf(pixel_values=x, output_attentions=True).attentions
        for mine, their in zip(ours.attention_weights(x), theirs, strict=True):
            torch.testing.assert_close(mine, their, atol=1e-6, rtol=1e-5)


def test_every_parameter_has_a_hugging_face_name_and_back() -> None:
    ours = ViT(SMALL)
    hf = transformers.ViTModel(transformers.ViTConfig(**hf_vit_config(SMALL)))
    assert {hf_vit_name(k) for k in ours.state_dict()} == set(hf.state_dict())
    with pytest.raises(ValueError, match="no Hugging Face ViTModel name for parameter 'head.weight'"):
        hf_vit_name("head.weight")
    with pytest.raises(ValueError, match="lacks 'layernorm.weight'"):
        vit_state_dict_from_hf({}, {"norm.weight": torch.zeros(3)})


def test_hf_config_refuses_what_vit_model_cannot_express() -> None:
    for cfg in (replace(SMALL, pool="mean"), replace(SMALL, pos="sincos2d"), ViTConfig.hybrid_mnist()):
        with pytest.raises(ValueError, match="ViTModel has a \\[CLS\\] token"):
            hf_vit_config(cfg)


@pytest.mark.parametrize("variant", [dict(), dict(pool="mean"), dict(pos="sincos2d"), dict(stem_channels=(4, 6), patch_size=3)])
def test_fused_kernels_equal_written(variant: dict) -> None:
    cfg = replace(SMALL, n_classes=5, representation=False, **variant)
    written = ViT(cfg).double().eval()
    fused = ViT(replace(cfg, kernels="fused")).double().eval()
    fused.load_state_dict(written.state_dict())
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    assert_same_forward_backward(written, fused, [x])


def test_mean_pooling_has_no_cls_token_and_averages_the_patches() -> None:
    model = ViT(replace(SMALL, pool="mean", representation=False)).double()
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    h = model.forward_features(x)
    assert model.cls_token is None and h.shape == (2, 9, 16) and model.config.n_tokens == 9
    torch.testing.assert_close(model(x), h.mean(dim=1))  # n_classes=0: forward returns the pooled features


def test_sincos_positions_are_a_fixed_buffer_and_cls_gets_none() -> None:
    model = ViT(replace(SMALL, pos="sincos2d"))
    assert model.pos_embed is None and "pos_table" not in model.state_dict()
    torch.testing.assert_close(model.pos_table[0], torch.zeros(16))
    torch.testing.assert_close(model.pos_table[1:], sincos_2d_encoding(3, 3, 16))
    learned = ViT(SMALL)
    assert learned.num_parameters() - model.num_parameters() == 10 * 16  # the learned table: T = 10 rows of C


def test_positions_tell_the_patches_apart() -> None:
    # without positions, a Transformer cannot tell a permutation of the patches from the original
    model = ViT(replace(SMALL, pool="mean", representation=False)).double().eval()
    x = torch.randn(1, 1, 12, 12, dtype=torch.float64)
    flipped = x.flip(-1).flip(-2)  # the patches in reverse order (and each patch flipped)
    assert not torch.allclose(model(x), model(flipped))


def test_hybrid_stem_makes_the_token_grid() -> None:
    cfg = ViTConfig.hybrid_mnist(image_size=28, stem_channels=(16, 32), patch_size=2)
    model = ViT(cfg)
    assert (cfg.feature_size, cfg.grid, cfg.n_tokens) == (14, 7, 50)
    x = torch.randn(2, 1, 28, 28)
    assert model.stem(x).shape == (2, 32, 14, 14)
    assert model.forward_features(x).shape == (2, 50, 48) and model(x).shape == (2, 10)
    chapter = ViT(ViTConfig.hybrid_mnist())
    assert chapter.stem(torch.randn(2, 1, 14, 14)).shape == (2, 8, 14, 14) and chapter.config.n_tokens == 5


def test_attention_weights_need_written_kernels() -> None:
    model = ViT(replace(SMALL, kernels="fused"))
    with pytest.raises(ValueError, match="attention weights need kernels='written'"):
        model.attention_weights(torch.randn(1, 1, 12, 12))
    written = ViT(SMALL)
    weights = written.attention_weights(torch.randn(2, 1, 12, 12))
    assert len(weights) == 2 and weights[0].shape == (2, 2, 10, 10)
    assert all(not b.attn.keep_weights and b.attn.last_weights is None for b in written.blocks)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(image_size=28, patch_size=5), "the image size 28x28 is not divisible by the patch size 5"),
        (dict(image_size=28, patch_size=4, stem_channels=(8, 16)), "the image size 14x14 is not divisible by the patch size 4"),
        (dict(image_size=30, stem_channels=(8, 16, 32)), "image_size=30 must be divisible by 4"),
        (dict(n_embd=30, n_head=4), "n_embd=30 must be divisible by n_head=4"),
        (dict(pool="max"), "pool must be 'cls' or 'mean', got pool='max'"),
        (dict(pos="rope"), "pos must be 'learned' or 'sincos2d', got pos='rope'"),
        (dict(pos="sincos2d", n_embd=18, n_head=2), "multiple of 4 .* got n_embd=18"),
        (dict(n_classes=-1), "n_classes must be a non-negative integer"),
        (dict(stem_channels=(8, 0)), "stem_channels must be positive integers"),
        (dict(dropout=1.0), "dropout must be in"),
        (dict(kernels="flash"), "kernels must be 'written' or 'fused'"),
        (dict(patch_size=0), "patch_size must be a positive integer, got 0"),
    ],
)
def test_bad_config_is_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ViTConfig(**kwargs)


def test_wrong_image_shape_is_refused() -> None:
    model = ViT(ViTConfig.mnist())
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, 14, 14\), got \(2, 1, 28, 28\)"):
        model(torch.randn(2, 1, 28, 28))
