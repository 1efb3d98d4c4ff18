"""The MLP language model of chapter 4: config checks, size, initial loss, seeded sampling."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from dlscratch.models import MLPLM, MLPLMConfig
from dlscratch.models.sampling import sample_words
from dlscratch.utils import seed_everything


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_size": 0}, "block_size must be positive, got 0"),
        ({"n_hidden": -3}, "n_hidden must be positive, got -3"),
        ({"vocab_size": 1}, "vocab_size must be at least 2, got 1"),
        ({"optimizer": "rmsprop"}, "'rmsprop'"),
        ({"schedule": "linear"}, "'linear'"),
        ({"lr": 0.0}, "positive, got 0.0"),
        ({"momentum": 1.0}, "1.0"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MLPLMConfig(**kwargs)


def test_config_is_frozen_and_presets_are_valid() -> None:
    cfg = MLPLMConfig.cpu()
    with pytest.raises(AttributeError):
        cfg.n_hidden = 3  # type: ignore[misc]
    ref = MLPLMConfig.reference()
    assert (ref.steps, ref.batch_size, ref.lr, ref.optimizer) == (200_000, 32, 0.1, "sgd")
    gpu = MLPLMConfig.gpu()
    assert gpu.steps > cfg.steps and gpu.train_kwargs.keys() == cfg.train_kwargs.keys()
    # every preset keeps the reference architecture
    for c in (cfg, gpu, ref):
        assert (c.block_size, c.n_embd, c.n_hidden, c.batch_norm) == (3, 10, 200, True)


@pytest.mark.parametrize(("block", "embd", "hidden", "bn"), [(3, 10, 200, True), (3, 10, 200, False), (1, 2, 5, True), (8, 4, 7, False)])
def test_parameter_count(block: int, embd: int, hidden: int, bn: bool) -> None:
    cfg = MLPLMConfig(block_size=block, n_embd=embd, n_hidden=hidden, batch_norm=bn)
    V = 27
    expected = V * embd + (block * embd) * hidden + (2 * hidden if bn else hidden) + hidden * V + V
    assert MLPLM(cfg).num_params() == cfg.num_params == expected
    if (block, embd, hidden, bn) == (3, 10, 200, True):
        assert expected == 12_097  # the number quoted in "Building makemore Part 3"


def test_loss_at_init_is_near_uniform() -> None:
    model = MLPLM(MLPLMConfig())
    X, Y = torch.randint(0, 27, (4096, 3)), torch.randint(0, 27, (4096,))
    loss = F.cross_entropy(model(X), Y).item()
    assert abs(loss - math.log(27)) < 0.02, loss
    unscaled = MLPLM(replace(MLPLMConfig(), last_layer_scale=10.0))
    assert F.cross_entropy(unscaled(X), Y).item() > math.log(27) + 1.0  # confidently wrong at init


def test_same_seed_same_weights_and_float64() -> None:
    seed_everything(3)  # the one seeding rule: weights come from torch's global generator
    a = MLPLM(MLPLMConfig())
    seed_everything(3)
    b = MLPLM(MLPLMConfig())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    seed_everything(4)
    c = MLPLM(MLPLMConfig())
    assert not torch.equal(a.parameters()[1], c.parameters()[1])
    torch.manual_seed(3)
    assert torch.equal(a.parameters()[0], torch.randn(27, 10))  # the table is the first draw
    d = MLPLM(MLPLMConfig(), dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in d.parameters())


def test_eval_mode_uses_running_statistics() -> None:
    model = MLPLM(MLPLMConfig())
    X = torch.randint(0, 27, (64, 3))
    model.train()
    model(X)
    model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(model(X[:5]), model(X)[:5])


def test_sampling_is_reproducible_under_a_seed() -> None:
    model = MLPLM(MLPLMConfig()).eval()
    itos = [".", *"abcdefghijklmnopqrstuvwxyz"]
    first = sample_words(model.logits, 3, 8, seed=7, itos=itos)
    assert first == sample_words(model.logits, 3, 8, seed=7, itos=itos)
    assert first != sample_words(model.logits, 3, 8, seed=8, itos=itos)
    assert all(set(w) <= set(itos[1:]) for w in first)
