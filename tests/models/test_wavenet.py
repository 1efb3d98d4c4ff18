"""The WaveNet-style model of chapter 5: config checks, size, shapes per level, initial loss, sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers.mini_nn import BatchNorm1d, FlattenConsecutive
from dlscratch.models import WaveNet, WaveNetConfig
from dlscratch.models.sampling import sample_words


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_size": 6}, r"block_size=6 must be a power of fuse=2"),
        ({"block_size": 8, "fuse": 3}, r"block_size=8 must be a power of fuse=3"),
        ({"fuse": 1}, "fuse must be at least 2, got 1"),
        ({"n_embd": 0}, "n_embd must be positive, got 0"),
        ({"optimizer": "lion"}, "'lion'"),
        ({"min_lr_ratio": 2.0}, "2.0"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WaveNetConfig(**kwargs)


def test_presets_keep_the_reference_architecture() -> None:
    for cfg in (WaveNetConfig.cpu(), WaveNetConfig.gpu()):
        assert (cfg.block_size, cfg.n_embd, cfg.n_hidden, cfg.n_levels) == (8, 24, 128, 3)
    assert (WaveNetConfig.gpu().steps, WaveNetConfig.gpu().batch_size) == (200_000, 32)


@pytest.mark.parametrize(("block", "fuse", "embd", "hidden"), [(8, 2, 24, 128), (2, 2, 3, 5), (16, 2, 4, 6), (9, 3, 5, 7)])
def test_parameter_count(block: int, fuse: int, embd: int, hidden: int) -> None:
    cfg = WaveNetConfig(block_size=block, fuse=fuse, n_embd=embd, n_hidden=hidden)
    levels = round(math.log(block, fuse))
    V = 27
    expected = V * embd + fuse * embd * hidden + (levels - 1) * fuse * hidden * hidden + levels * 2 * hidden + hidden * V + V
    assert WaveNet(cfg).num_params() == cfg.num_params == expected
    if (block, embd, hidden) == (8, 24, 128):
        assert expected == 76_579  # "Building makemore Part 5": 76,579 parameters


def test_shapes_level_by_level() -> None:
    model = WaveNet(WaveNetConfig())
    model(torch.randint(0, 27, (5, 8)))
    flat = [layer.out.shape for layer in model.layers if isinstance(layer, FlattenConsecutive)]
    assert flat == [(5, 4, 48), (5, 2, 256), (5, 256)]
    assert model.layers.out.shape == (5, 27)


def test_batchnorm_keeps_one_statistic_per_channel() -> None:
    model = WaveNet(WaveNetConfig())
    model(torch.randint(0, 27, (32, 8)))
    for layer in model.layers:
        if isinstance(layer, BatchNorm1d):
            assert layer.running_mean.shape == (128,) and layer.running_var.shape == (128,)


def test_loss_at_init_is_near_uniform() -> None:
    model = WaveNet(WaveNetConfig())
    X, Y = torch.randint(0, 27, (4096, 8)), torch.randint(0, 27, (4096,))
    assert abs(F.cross_entropy(model(X), Y).item() - math.log(27)) < 0.02


def test_sampling_is_reproducible_under_a_seed() -> None:
    model = WaveNet(WaveNetConfig()).eval()
    itos = [".", *"abcdefghijklmnopqrstuvwxyz"]
    first = sample_words(model.logits, 8, 6, seed=1, itos=itos)
    assert first == sample_words(model.logits, 8, 6, seed=1, itos=itos)
    assert first != sample_words(model.logits, 8, 6, seed=2, itos=itos)
