"""PositionLM: each position scheme written vs fused, causal, cache-consistent; contexts raised after training."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from dlscratch.layers.positional import sinusoidal_encoding
from dlscratch.layers.rope import RoPE
from dlscratch.models.gpt import GPT
from dlscratch.models.position_lm import POSITIONS, PositionLM, PositionLMConfig
from tests.helpers import assert_same_forward_backward

TINY = PositionLMConfig(vocab_size=11, block_size=12, n_layer=2, n_head=3, n_embd=12, kernels="written")


def tiny(positions: str, **kw: object) -> PositionLM:
    return PositionLM(replace(TINY, positions=positions, **kw)).double().eval()


@pytest.mark.parametrize("positions", POSITIONS)
def test_written_and_fused_kernels_agree_in_value_and_every_gradient(positions: str) -> None:
    written = tiny(positions)
    fused = tiny(positions, kernels="fused")
    fused.load_state_dict(written.state_dict())
    x, y = torch.randint(0, 11, (3, 12)), torch.randint(0, 11, (3, 12))
    assert_same_forward_backward(lambda i: written(i, y)[0], lambda i: fused(i, y)[0], [x], modules=(written, fused))


@pytest.mark.parametrize("positions", POSITIONS)
def test_causal(positions: str) -> None:
    model = tiny(positions)
    x = torch.randint(0, 11, (2, 12))
    logits, _ = model(x)
    for t in range(11):
        x2 = x.clone()
        x2[:, t + 1] = (x2[:, t + 1] + 1) % 11
        torch.testing.assert_close(model(x2)[0][:, : t + 1], logits[:, : t + 1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("positions", POSITIONS)
def test_cached_steps_equal_one_full_pass(positions: str) -> None:
    model = tiny(positions)
    x = torch.randint(0, 11, (2, 12))
    full, _ = model(x)
    model.start_cache(2)
    steps = [model(x[:, :5])[0]] + [model(x[:, t : t + 1])[0] for t in range(5, 12)]
    model.stop_cache()
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-12, rtol=0)


def test_learned_positions_are_gpt() -> None:
    model = tiny("learned")
    gpt = GPT(replace(TINY, positions="learned").gpt()).double().eval()
    gpt.load_state_dict(model.state_dict())
    x = torch.randint(0, 11, (2, 12))
    torch.testing.assert_close(model(x)[0], gpt(x)[0], atol=0, rtol=0)


def test_sinusoidal_adds_the_scaled_table() -> None:
    model = tiny("sinusoidal", sinusoidal_scale=0.5)
    idx = torch.randint(0, 11, (2, 5))
    want = model.wte.weight[idx] + 0.5 * sinusoidal_encoding(12, 12, dtype=torch.float64)[3:8]
    torch.testing.assert_close(model.embed(idx, 3), want, atol=1e-15, rtol=0)


@pytest.mark.parametrize("positions", ["rope", "alibi", "sinusoidal", "none"])
def test_set_context_accepts_longer_sequences(positions: str) -> None:
    model = tiny(positions)
    x = torch.randint(0, 11, (2, 40))
    with pytest.raises(ValueError, match="block_size=12"):
        model(x)
    short, _ = model(x[:, :12])
    long, _ = model.set_context(40)(x)
    assert long.shape == (2, 40, 11) and torch.isfinite(long).all()
    torch.testing.assert_close(long[:, :12], short, atol=1e-12, rtol=0)  # causal: a longer context changes nothing before


def test_set_context_interpolates_rope_positions() -> None:
    model = tiny("rope").set_context(48, rope_scale=4.0)
    hook = model.blocks[1].attn.positions
    assert hook is not None and hook.rotate == RoPE(4, 10000.0, 4.0)
    q = torch.randn(1, 3, 6, 4, dtype=torch.float64)
    torch.testing.assert_close(hook.rotate(q, torch.arange(0, 24, 4)), RoPE(4)(q, torch.arange(6)), atol=1e-14, rtol=0)


def test_learned_table_refuses_to_grow() -> None:
    model = tiny("learned")
    with pytest.raises(ValueError, match=r"table of 12 rows.*block_size=13"):
        model.set_context(13)
    model.set_context(8)  # shorter is fine
    with pytest.raises(ValueError, match="block_size=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_alibi_biases_follow_the_weights_dtype() -> None:
    model = PositionLM(replace(TINY, positions="alibi"))
    assert model.blocks[0].attn.positions.bias(torch.arange(2), torch.arange(2)).dtype == torch.float32
    model.double()
    assert model.blocks[0].attn.positions.bias(torch.arange(2), torch.arange(2)).dtype == torch.float64


@pytest.mark.parametrize(
    "kw, match",
    [({"positions": "relative"}, "positions='relative'"), ({"n_embd": 9, "n_head": 3}, "n_embd=9, n_head=3"),
     ({"positions": "alibi", "rope_scale": 2.0}, "rope_scale=2.0"), ({"n_layer": 0}, "n_layer")],
)
def test_config_rejects_bad_values(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        replace(TINY, **kw)
