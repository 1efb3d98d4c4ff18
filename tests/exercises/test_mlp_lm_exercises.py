"""Checkers of the chapter 4 exercises: a correct answer passes, wrong ones fail with a specific hint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import core, grade
from dlscratch.exercises.mlp_lm import FOLD_EPS

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_this_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("mlp_lm",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- mlp.fold_batchnorm
def fold(W1, gamma, beta, mean, var, eps):
    s = gamma / (var + eps).sqrt()  # (H,) one factor per unit, i.e. per column of W1
    return W1 * s, beta - s * mean


def fold_no_mean(W1, gamma, beta, mean, var, eps):
    return W1 * gamma / (var + eps).sqrt(), beta


def fold_no_eps(W1, gamma, beta, mean, var, eps):
    return fold(W1, gamma, beta, mean, var, 0.0)


def fold_variance(W1, gamma, beta, mean, var, eps):
    s = gamma / (var + eps)
    return W1 * s, beta - s * mean


def fold_rows(W1, gamma, beta, mean, var, eps):
    W, b = fold(W1, gamma, beta, mean, var, eps)
    return W.T, b


def test_fold_batchnorm() -> None:
    assert_grades("mlp.fold_batchnorm", lambda: fold, [lambda: fold_no_mean, lambda: fold_no_eps, lambda: fold_variance, lambda: 1.0])
    _wrong("mlp.fold_batchnorm", fold_no_mean, "b = beta - s * mean")
    _wrong("mlp.fold_batchnorm", fold_no_eps, "add eps")
    _wrong("mlp.fold_batchnorm", fold_variance, "not by the variance")
    _wrong("mlp.fold_batchnorm", fold_rows, "not its rows")
    _wrong("mlp.fold_batchnorm", lambda *a: a[0], "tuple of two tensors")
    _wrong("mlp.fold_batchnorm", lambda W1, g, b, m, v, e: (W1 * 2, b), "affine function")
    # the fold against torch's own eval-mode batch norm, independently of the checker
    g = torch.Generator().manual_seed(0)
    W1, gamma, beta, x = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((6, 4), (4,), (4,), (9, 6)))
    mean, var = torch.randn(4, generator=g, dtype=torch.float64), torch.rand(4, generator=g, dtype=torch.float64) + 0.1
    W, b = fold(W1, gamma, beta, mean, var, FOLD_EPS)
    torch.testing.assert_close(x @ W + b, F.batch_norm(x @ W1, mean, var, gamma, beta, training=False, eps=FOLD_EPS))


# ---- mlp.bn_weight_scale: the measurement the exercise asks for, with the chapter's forward pass
def measured_ratio(seed: int) -> float:
    from dlscratch.models import MLPLM, MLPLMConfig

    torch.manual_seed(seed)
    model = MLPLM(MLPLMConfig(), dtype=torch.float64)
    hidden = model.layers[2]
    x, y = torch.randint(0, 27, (32, 3)), torch.randint(0, 27, (32,))
    F.cross_entropy(model(x), y).backward()
    before = hidden.weight.grad.norm()
    with torch.no_grad():
        hidden.weight *= 10
    hidden.weight.grad = None
    F.cross_entropy(model(x), y).backward()
    return (hidden.weight.grad.norm() / before).item()


def test_bn_weight_scale() -> None:
    for seed in (1, 2):  # any reader's model and batch pass
        assert grade("mlp.bn_weight_scale", measured_ratio(seed)).correct
    assert_grades("mlp.bn_weight_scale", lambda: 0.1, [lambda: 1.0, lambda: 10.0, lambda: 0.01, lambda: 0.5])
    _wrong("mlp.bn_weight_scale", 1.0, "the loss does not change")
    _wrong("mlp.bn_weight_scale", 10.0, "scales with its input")
    _wrong("mlp.bn_weight_scale", 0.01, "one factor 1/10")
    _wrong("mlp.bn_weight_scale", 0.5, "measure it")


# ---- mlp.unigram_init
def unigram_loss() -> float:
    from dlscratch.data import build_examples, names_split

    _, Ytr = build_examples(names_split().train, 3)
    b2 = (torch.bincount(Ytr, minlength=27) / len(Ytr)).log()  # float32, as a reader would
    return F.cross_entropy(b2.expand(len(Ytr), -1), Ytr).item()


def test_unigram_init() -> None:
    loss = unigram_loss()
    assert 2.5 < loss < math.log(27)
    assert_grades("mlp.unigram_init", lambda: loss, [lambda: math.log(27), lambda: 2.45, lambda: 3.0])
    _wrong("mlp.unigram_init", math.log(27), "equal logits")
    _wrong("mlp.unigram_init", 2.45, "ignores its context")
    _wrong("mlp.unigram_init", 3.0, "measure it")
