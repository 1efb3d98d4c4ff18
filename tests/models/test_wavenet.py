"""The WaveNet-style model of chapter 5: config checks, size, shapes per level, a torch twin, initial loss, sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.layers.mini_nn import BatchNorm1d, Embedding, FlattenConsecutive, Linear
from dlscratch.models import WaveNet, WaveNetConfig
from dlscratch.models.sampling import sample_words
from dlscratch.utils import seed_everything


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
    for cfg in (WaveNetConfig.cpu(), WaveNetConfig.gpu(), WaveNetConfig.reference()):
        assert (cfg.block_size, cfg.n_embd, cfg.n_hidden, cfg.n_levels) == (8, 24, 128, 3)
    assert (WaveNetConfig.reference().steps, WaveNetConfig.reference().batch_size) == (200_000, 32)
    assert WaveNetConfig.gpu().steps > WaveNetConfig.cpu().steps


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
    outs = model.layers.outputs(torch.randint(0, 27, (5, 8)))
    flat = [out.shape for layer, out in zip(model.layers, outs) if isinstance(layer, FlattenConsecutive)]
    assert flat == [(5, 4, 48), (5, 2, 256), (5, 256)]
    normed = [out.shape for layer, out in zip(model.layers, outs) if isinstance(layer, BatchNorm1d)]
    assert normed == [(5, 128, 4), (5, 128, 2), (5, 128)]  # torch's layout: channels in dim 1
    assert outs[-1].shape == (5, 27)


class _ChannelsFirst(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)  # (B, T, E) -> (B, E, T)


def _torch_twin(model: WaveNet) -> tuple[nn.Sequential, list, list[nn.Module]]:
    """The same function from torch layers: each level is a Conv1d with kernel size and stride ``fuse``."""
    c = model.config
    modules: list[nn.Module] = [nn.Embedding(c.vocab_size, c.n_embd), _ChannelsFirst()]
    fan = c.n_embd
    for _ in range(c.n_levels):
        modules += [nn.Conv1d(fan, c.n_hidden, c.fuse, stride=c.fuse, bias=False), nn.BatchNorm1d(c.n_hidden), nn.Tanh()]
        fan = c.n_hidden
    twin = nn.Sequential(*modules, nn.Flatten(), nn.Linear(c.n_hidden, c.vocab_size)).double()
    ours = [layer for layer in model.layers if isinstance(layer, (Embedding, Linear, BatchNorm1d))]
    theirs = [m for m in twin if isinstance(m, (nn.Embedding, nn.Conv1d, nn.Linear, nn.BatchNorm1d))]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            if isinstance(b, nn.Conv1d):  # our (f*C, H), inputs [x_ft, ..., x_ft+f-1] side by side -> (H, C, f)
                b.weight.copy_(a.weight.T.reshape(c.n_hidden, c.fuse, -1).transpose(1, 2))
            elif isinstance(b, nn.Linear):
                b.weight.copy_(a.weight.T)
                b.bias.copy_(a.bias)
            else:
                b.weight.copy_(a.weight)
                if isinstance(b, nn.BatchNorm1d):
                    b.bias.copy_(a.bias)
    return twin, ours, theirs


@pytest.mark.parametrize(("block", "fuse"), [(8, 2), (9, 3), (2, 2)])
def test_matches_a_torch_twin_forward_and_every_gradient(block: int, fuse: int) -> None:
    model = WaveNet(WaveNetConfig(block_size=block, fuse=fuse, n_embd=5, n_hidden=6), dtype=torch.float64)
    with torch.no_grad():  # non-trivial batch-norm gains and shifts
        for layer in model.layers:
            if isinstance(layer, BatchNorm1d):
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.normal_()
    twin, ours, theirs = _torch_twin(model)
    for step in range(3):  # training mode: batch statistics, and the running ones they leave
        X, Y = torch.randint(0, 27, (16, block)), torch.randint(0, 27, (16,))
        for p in model.parameters():
            p.grad = None
        twin.zero_grad()
        loss, ref_loss = F.cross_entropy(model(X), Y), F.cross_entropy(twin(X), Y)
        torch.testing.assert_close(loss, ref_loss)
        loss.backward()
        ref_loss.backward()
        for a, b in zip(ours, theirs):
            want = b.weight.grad
            if isinstance(b, nn.Conv1d):
                want = want.transpose(1, 2).reshape(model.config.n_hidden, -1).T
            elif isinstance(b, nn.Linear):
                want = want.T
                torch.testing.assert_close(a.bias.grad, b.bias.grad)
            torch.testing.assert_close(a.weight.grad, want)
            if isinstance(b, nn.BatchNorm1d):
                torch.testing.assert_close(a.bias.grad, b.bias.grad)
                torch.testing.assert_close(a.running_mean, b.running_mean)
                torch.testing.assert_close(a.running_var, b.running_var)
    model.eval(), twin.eval()
    X = torch.randint(0, 27, (7, block))
    torch.testing.assert_close(model(X), twin(X))


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


def test_weights_follow_seed_everything() -> None:
    seed_everything(42)
    a = WaveNet(WaveNetConfig())
    seed_everything(42)
    b = WaveNet(WaveNetConfig())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_sampling_is_reproducible_under_a_seed() -> None:
    model = WaveNet(WaveNetConfig()).eval()
    itos = [".", *"abcdefghijklmnopqrstuvwxyz"]
    first = sample_words(model.logits, 8, 6, seed=1, itos=itos)
    assert first == sample_words(model.logits, 8, 6, seed=1, itos=itos)
    assert first != sample_words(model.logits, 8, 6, seed=2, itos=itos)
