"""T5's relative position buckets: equal to transformers' for every distance in -300..300; the bias module; bad input."""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers.relative_position import RelativePositionBias, relative_position_bucket

modeling_t5 = pytest.importorskip("transformers.models.t5.modeling_t5")


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (8, 20), (64, 300), (16, 9), (4, 3)])
def test_buckets_equal_hf_for_every_distance(bidirectional: bool, num_buckets: int, max_distance: int) -> None:
    n = torch.arange(-300, 301)
    ours = relative_position_bucket(n, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance)
    theirs = modeling_t5.T5Attention._relative_position_bucket(
        n, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance)
    assert torch.equal(ours, theirs)
    assert 0 <= int(ours.min()) and int(ours.max()) < num_buckets


def test_bucket_properties() -> None:
    n = torch.arange(-300, 301)  # n[300] is distance 0
    bi = relative_position_bucket(n)
    causal = relative_position_bucket(n, bidirectional=False)
    assert torch.equal(bi[293:301].flip(0), torch.arange(8))  # 8 exact distances back (0 included)
    assert bool((bi[301:] >= 16).all()) and bool((bi[:301] < 16).all())  # keys after the query: upper half
    assert torch.equal(bi[301:308], 16 + torch.arange(1, 8))
    assert bool((causal[301:] == 0).all())  # future keys share bucket 0 (masked anyway)
    assert torch.equal(causal[285:301].flip(0), torch.arange(16))  # 16 exact distances back
    assert bool((bi[: 300 - 127] == 15).all()) and bool((causal[: 300 - 127] == 31).all())  # from max_distance on
    assert bool((bi[:301].flip(0).diff() >= 0).all()) and bool((causal[:301].flip(0).diff() >= 0).all())  # monotone


def test_bias_module_matches_hf_compute_bias() -> None:
    cfg = modeling_t5.T5Config(d_model=16, num_heads=3, d_kv=4, relative_attention_num_buckets=8,
                               relative_attention_max_distance=12, is_decoder=False)
    for decoder in (False, True):
        cfg.is_decoder = decoder
        hf = modeling_t5.T5Attention(cfg, has_relative_attention_bias=True, layer_idx=0).double()
        ours = RelativePositionBias(3, 8, 12, bidirectional=not decoder).double()
        ours.weight.data.copy_(hf.relative_attention_bias.weight)
        for T, S, offset in ((5, 5, 0), (1, 9, 8), (7, 30, 0)):
            torch.testing.assert_close(ours(T, S, offset), hf.compute_bias(T, S, past_seen_tokens=offset))
    b = ours(4, 6)
    b.square().sum().backward()
    assert b.shape == (1, 3, 4, 6) and ours.weight.grad is not None


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_buckets=2), "at least 2 buckets per direction"),
    (dict(num_buckets=0), "num_buckets must be a positive integer"),
    (dict(max_distance=8), "max_distance=8 must exceed"),
    (dict(bidirectional=False, num_buckets=32, max_distance=16), "max_distance=16 must exceed"),
])
def test_bad_buckets_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        relative_position_bucket(torch.arange(3), **kwargs)
    with pytest.raises(ValueError, match=match):
        RelativePositionBias(4, **kwargs)
