"""The noise predictors of chapter 35: time embedding, cross-attention conditioning, caption sharing."""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers.positional import sinusoidal_encoding
from dlscratch.models.denoisers import CaptionEncoder, CrossAttention2d, TextToImage, TimeEmbedding, ToyDenoiser, ToyDenoiserConfig
from dlscratch.models.denoisers import UNet, UNetConfig


def small_unet(**kw: int) -> UNet:
    torch.manual_seed(0)
    unet = UNet(UNetConfig(image_size=6, channels=8, channels_low=16, time_dim=16, context_dim=12, n_head=2, groups=4, n_timesteps=50, **kw))
    torch.nn.init.normal_(unet.conv_out.weight, std=0.1)  # zero at init: make the output depend on everything
    return unet.double()


def test_time_embedding_is_the_sinusoidal_row_through_the_mlp() -> None:
    emb = TimeEmbedding(20, 8).double()
    t = torch.tensor([0, 7, 19])
    want = emb.mlp(sinusoidal_encoding(20, 8, dtype=torch.float64)[t])
    torch.testing.assert_close(emb(t), want)
    with pytest.raises(ValueError, match=r"0..19"):
        emb(torch.tensor([20]))
    with pytest.raises(ValueError, match="integer timesteps"):
        emb(torch.tensor([1.0]))


def test_toy_denoiser_depends_on_time_and_checks_input() -> None:
    model = ToyDenoiser(ToyDenoiserConfig(hidden=16, n_timesteps=10)).double()
    x = torch.randn(4, 2, dtype=torch.float64)
    assert not torch.allclose(model(x, torch.full((4,), 1)), model(x, torch.full((4,), 8)))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        model(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="even"):
        ToyDenoiserConfig(hidden=15)


def test_cross_attention_equals_torch_multihead_attention() -> None:
    """The block is LayerNorm, a context projection and attention over the context, added to the input."""
    torch.manual_seed(0)
    block = CrossAttention2d(8, 5, 2).double()
    x, ctx = torch.randn(3, 8, 2, 3, dtype=torch.float64), torch.randn(3, 4, 5, dtype=torch.float64)
    pad = torch.tensor([[False, False, True, True], [False] * 4, [False, True, True, True]])
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()
    block.attn.copy_to_torch(mha)
    h = x.flatten(2).transpose(1, 2)
    y, _ = mha(block.norm(h), block.context(ctx), block.context(ctx), key_padding_mask=pad)
    torch.testing.assert_close(block(x, ctx, pad), x + y.transpose(1, 2).reshape(3, 8, 2, 3))


def test_unet_reads_the_context_and_ignores_padding() -> None:
    unet = small_unet()
    x, t = torch.randn(2, 1, 6, 6, dtype=torch.float64), torch.tensor([3, 40])
    ctx = torch.randn(2, 5, 12, dtype=torch.float64)
    pad = torch.tensor([[False, False, False, True, True]] * 2)
    out = unet(x, t, ctx, pad)
    other = ctx.clone()
    other[:, 3:] = 100.0  # only padding changes
    torch.testing.assert_close(unet(x, t, other, pad), out)
    other[:, 0] = 0.0  # a real token changes
    assert not torch.allclose(unet(x, t, other, pad), out)
    with pytest.raises(ValueError, match=r"\(B, 1, 6, 6\)"):
        unet(torch.randn(2, 1, 8, 8, dtype=torch.float64), t, ctx)


@pytest.mark.parametrize("bad, message", [
    ({"image_size": 7}, "image_size must be even .*got 7"),
    ({"n_head": 3}, "n_head 3 must divide channels_low 64"),
    ({"groups": 5}, "groups 5 must divide channels 32 and channels_low 64"),
    ({"channels": 0}, "channels must be positive, got 0"),
])
def test_unet_config_checks(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UNetConfig(**bad)


def test_text_to_image_encodes_each_distinct_caption_once() -> None:
    unet = small_unet()
    torch.manual_seed(1)
    text = CaptionEncoder(vocab_size=9, max_len=6, dim=12, n_head=2, n_layers=1).double()
    model = TextToImage(text, unet)
    ids = torch.tensor([[3, 4, 1, 0, 0, 0], [5, 1, 0, 0, 0, 0], [3, 4, 1, 0, 0, 0]])
    x, t = torch.randn(3, 1, 6, 6, dtype=torch.float64), torch.tensor([1, 2, 3])
    want = unet(x, t, text(ids), ids == 0)  # every caption encoded, no sharing
    torch.testing.assert_close(model(x, t, ids), want)
    with pytest.raises(ValueError, match="one caption per image, got 2 captions for 3 images"):
        model(x, t, ids[:2])
    with pytest.raises(ValueError, match="context_dim 12"):
        TextToImage(CaptionEncoder(9, 6, dim=8, n_head=2), unet)
    with pytest.raises(ValueError, match="L <= 6"):
        text(torch.zeros(1, 7, dtype=torch.long))
