"""MLPClassifier: the architecture its config describes, equal to a torch.nn twin, and input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlscratch.layers.dropout import Dropout
from dlscratch.layers.norms import BatchNorm1d
from dlscratch.models.mlp_classifier import MLPClassifier, MLPClassifierConfig
from tests.helpers import assert_same_forward_backward


def _torch_twin(cfg: MLPClassifierConfig) -> nn.Sequential:
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}[cfg.activation]
    layers: list[nn.Module] = [nn.Flatten()]
    width = cfg.in_features
    for _ in range(cfg.depth):
        layers.append(nn.Linear(width, cfg.hidden, bias=not cfg.batch_norm))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(cfg.hidden))
        layers.append(act())
        width = cfg.hidden
    layers.append(nn.Linear(width, cfg.n_classes))
    return nn.Sequential(*layers)


def _copy_into_twin(ours: MLPClassifier, twin: nn.Sequential) -> None:
    ours_mods = [m for m in ours.modules() if isinstance(m, (nn.Linear, BatchNorm1d))]
    twin_mods = [m for m in twin.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d))]
    assert len(ours_mods) == len(twin_mods)
    for a, b in zip(ours_mods, twin_mods):
        b.load_state_dict(a.state_dict())  # same parameter and buffer names as torch


@pytest.mark.parametrize(
    "cfg",
    [
        MLPClassifierConfig.tiny(),
        MLPClassifierConfig(hidden=7, depth=3, batch_norm=False, activation="tanh"),
        MLPClassifierConfig(in_shape=(3, 4, 5), n_classes=4, hidden=9, depth=2, activation="gelu"),
        MLPClassifierConfig(hidden=5, depth=0, batch_norm=False),
    ],
)
def test_equals_torch_sequential_in_train_and_eval(cfg: MLPClassifierConfig) -> None:
    cfg = MLPClassifierConfig(**{**cfg.__dict__, "dropout": 0.0})  # dropout is random: tested below
    ours, twin = MLPClassifier(cfg).double(), _torch_twin(cfg).double()
    _copy_into_twin(ours, twin)
    x = torch.rand(6, *cfg.in_shape, dtype=torch.float64)
    assert_same_forward_backward(ours, twin, [x])  # train mode: batch statistics
    ours.eval(), twin.eval()
    assert_same_forward_backward(ours, twin, [x])  # eval mode: running statistics
    for (na, pa), (nb, pb) in zip(ours.named_parameters(), twin.named_parameters()):
        assert pa.shape == pb.shape, (na, nb)


def test_layers_follow_the_config() -> None:
    cfg = MLPClassifierConfig(hidden=32, depth=3, batch_norm=True, dropout=0.2)
    model = MLPClassifier(cfg)
    assert len(model.blocks) == 3
    assert sum(isinstance(m, BatchNorm1d) for m in model.modules()) == 3
    assert [m.p for m in model.modules() if isinstance(m, Dropout)] == [0.2, 0.2, 0.2]
    assert all(block[0].bias is None for block in model.blocks)  # BN makes the Linear bias redundant
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 64 * 32 + 2 * (32 * 32) + 3 * (2 * 32) + (32 * 10 + 10)
    plain = MLPClassifier(MLPClassifierConfig.plain())
    assert not any(isinstance(m, (BatchNorm1d, Dropout)) for m in plain.modules())
    assert sum(p.numel() for p in plain.parameters()) == (64 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10)


def test_dropout_active_only_in_training() -> None:
    model = MLPClassifier(MLPClassifierConfig(hidden=64, dropout=0.5, batch_norm=False))
    x = torch.rand(4, 1, 8, 8)
    assert not torch.equal(model(x), model(x))  # two different masks
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("shape", [(4, 8, 8), (4, 1, 8, 7), (4, 64), (4, 2, 8, 8)])
def test_wrong_input_shape_names_both_shapes(shape) -> None:
    model = MLPClassifier(MLPClassifierConfig.tiny())
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)") as err:
        model(torch.rand(shape))
    assert str(tuple(shape)) in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden": 0}, "hidden must be positive, got 0"),
        ({"depth": -1}, "got -1"),
        ({"dropout": 1.0}, "got 1.0"),
        ({"n_classes": 1}, "got 1"),
        ({"activation": "swish"}, "swish"),
        ({"in_shape": (1, 0, 8)}, r"\(1, 0, 8\)"),
    ],
)
def test_bad_config(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MLPClassifierConfig(**kwargs)


def test_presets_are_valid_and_frozen() -> None:
    for cfg in (MLPClassifierConfig.digits(), MLPClassifierConfig.plain(), MLPClassifierConfig.tiny()):
        assert MLPClassifier(cfg)(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(AttributeError):
        MLPClassifierConfig.digits().hidden = 3  # type: ignore[misc]
