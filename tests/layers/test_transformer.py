"""Transformer layers (chapters 15 and 16) against torch.nn, values and every gradient, float64."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from dlscratch.layers import (
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    TransformerLayerConfig,
    decoder_layer_params,
    encoder_layer_params,
)
from dlscratch.layers import MLP, Block, LayerNorm, MultiHeadAttention
from tests.helpers import assert_same_forward_backward

D = torch.float64


def _padding(B: int, T: int) -> torch.Tensor:
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    return torch.arange(T)[None, :] >= lengths[:, None]  # (B, T) True = pad


def _attn_grads(attn: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Our attention's gradients in nn.MultiheadAttention's layout (q, k, v stacked)."""
    return {
        f"{name}.in_proj_weight": torch.cat([getattr(attn, f"{p}_proj").weight.grad for p in "qkv"]),
        f"{name}.in_proj_bias": torch.cat([getattr(attn, f"{p}_proj").bias.grad for p in "qkv"]),
        f"{name}.out_proj.weight": attn.out_proj.weight.grad,
        f"{name}.out_proj.bias": attn.out_proj.bias.grad,
    }


def torch_layout_grads(layer: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter gradient of our encoder or decoder layer, under torch's parameter names."""
    out = _attn_grads(layer.attn, "self_attn")
    out.update({f"linear1.{p}": getattr(layer.mlp.up, p).grad for p in ("weight", "bias")})
    out.update({f"linear2.{p}": getattr(layer.mlp.down, p).grad for p in ("weight", "bias")})
    norms = [layer.norm1, layer.norm2]
    if isinstance(layer, TransformerDecoderLayer):
        out.update(_attn_grads(layer.cross_attn, "multihead_attn"))
        norms = [layer.norm1, layer.norm_cross, layer.norm2]  # torch numbers them in sublayer order
    for i, norm in enumerate(norms, start=1):
        out.update({f"norm{i}.{p}": getattr(norm, p).grad for p in ("weight", "bias")})
    return out


def torch_grads(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad for k, p in m.named_parameters()}


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("B,T,C,nh", [(3, 6, 12, 3), (2, 1, 8, 1), (2, 5, 8, 8)])
def test_encoder_layer_matches_torch(norm_first: bool, B: int, T: int, C: int, nh: int) -> None:
    ref = nn.TransformerEncoderLayer(C, nh, 20, dropout=0.1, batch_first=True, norm_first=norm_first, dtype=D).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = TransformerEncoderLayer(C, nh, 20, dropout=0.1, norm_first=norm_first).double().eval()
    assert isinstance(ours, Block) and isinstance(ours.mlp, MLP) and isinstance(ours.norm1, LayerNorm)  # kit parts
    ours.load_from_torch(ref)
    pad = _padding(B, T)
    assert_same_forward_backward(
        lambda x: ours(x, key_padding_mask=pad), lambda x: ref(x, src_key_padding_mask=pad), [torch.randn(B, T, C, dtype=D)],
        modules=(ours, ref), grads=(torch_layout_grads, torch_grads),
    )


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("B,T,S,C,nh", [(3, 5, 7, 12, 4), (2, 1, 3, 6, 2)])
def test_decoder_layer_matches_torch(norm_first: bool, B: int, T: int, S: int, C: int, nh: int) -> None:
    ref = nn.TransformerDecoderLayer(C, nh, 16, dropout=0.1, batch_first=True, norm_first=norm_first, dtype=D).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = TransformerDecoderLayer(C, nh, 16, dropout=0.1, norm_first=norm_first).double().eval()
    ours.load_from_torch(ref)
    mem_pad = _padding(B, S)
    causal = nn.Transformer.generate_square_subsequent_mask(T, dtype=D)
    assert_same_forward_backward(
        lambda x, m: ours(x, m, memory_key_padding_mask=mem_pad),
        lambda x, m: ref(x, m, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=mem_pad),
        [torch.randn(B, T, C, dtype=D), torch.randn(B, S, C, dtype=D)],
        modules=(ours, ref), grads=(torch_layout_grads, torch_grads),
    )


def test_stacks_match_torch() -> None:
    cfg = TransformerLayerConfig(d_model=8, nhead=2, dim_feedforward=12, dropout=0.0, norm_first=True)
    ref_enc = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, 12, 0.0, batch_first=True, norm_first=True, dtype=D),
        2, norm=nn.LayerNorm(8, dtype=D), enable_nested_tensor=False,
    ).eval()
    enc = TransformerEncoder(cfg, 2).double().eval()
    for a, b in zip(enc.layers, ref_enc.layers):
        a.load_from_torch(b)
    enc.norm.load_state_dict(ref_enc.norm.state_dict())
    x = torch.randn(2, 5, 8, dtype=D)
    torch.testing.assert_close(enc(x), ref_enc(x))
    dec = TransformerDecoder(cfg, 2).double().eval()
    ref_dec = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(8, 2, 12, 0.0, batch_first=True, norm_first=True, dtype=D), 2, norm=nn.LayerNorm(8, dtype=D)
    ).eval()
    for a, b in zip(dec.layers, ref_dec.layers):
        a.load_from_torch(b)
    dec.norm.load_state_dict(ref_dec.norm.state_dict())
    y = torch.randn(2, 4, 8, dtype=D)
    mask = nn.Transformer.generate_square_subsequent_mask(4, dtype=D)
    torch.testing.assert_close(dec(y, x), ref_dec(y, x, tgt_mask=mask, tgt_is_causal=True))


@pytest.mark.parametrize("C,F", [(8, 32), (12, 20), (64, 256)])
def test_parameter_count_formulas(C: int, F: int) -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(TransformerEncoderLayer(C, 4, F)) == encoder_layer_params(C, F)
    assert count(nn.TransformerEncoderLayer(C, 4, F)) == encoder_layer_params(C, F)
    assert count(TransformerDecoderLayer(C, 4, F)) == decoder_layer_params(C, F)
    assert count(nn.TransformerDecoderLayer(C, 4, F)) == decoder_layer_params(C, F)


def test_decoder_layer_is_causal() -> None:
    layer = TransformerDecoderLayer(8, 2, 16, 0.0).double().eval()
    x, m = torch.randn(1, 6, 8, dtype=D), torch.randn(1, 3, 8, dtype=D)
    x2 = x.clone()
    x2[:, 4:] += 1.0
    torch.testing.assert_close(layer(x, m)[:, :4], layer(x2, m)[:, :4])


@pytest.mark.parametrize("cls", [TransformerEncoderLayer, TransformerDecoderLayer])
def test_bad_sizes_name_both(cls: type) -> None:
    with pytest.raises(ValueError, match=r"d_model=10.*nhead=4"):
        cls(10, 4, 16)
    with pytest.raises(ValueError, match=r"d_model=10.*nhead=3"):
        TransformerLayerConfig(d_model=10, nhead=3)


def test_norm_first_mismatch_raises() -> None:
    ref = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, norm_first=True)
    with pytest.raises(ValueError, match="norm_first"):
        TransformerEncoderLayer(8, 2, 16, norm_first=False).load_from_torch(ref)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_pre_and_post_ln_formulas(norm_first: bool) -> None:
    # pre-LN: x + A(N1 x), then + F(N2 .); post-LN: N1(x + A x), then N2(. + F .)
    attn, mlp = MultiHeadAttention(8, 2, causal=True, dtype=D), MLP(8, 16).double()
    block = Block(attn, mlp, partial(LayerNorm, 8), norm_first=norm_first).double()
    x = torch.randn(2, 5, 8, dtype=D)

    def a(h: torch.Tensor) -> torch.Tensor:
        return attn(h, need_weights=False)[0]

    if norm_first:
        h = x + a(block.norm1(x))
        want = h + mlp(block.norm2(h))
    else:
        h = block.norm1(x + a(x))
        want = block.norm2(h + mlp(h))
    torch.testing.assert_close(block(x), want, atol=0, rtol=0)
