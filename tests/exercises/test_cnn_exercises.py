"""Checkers of the chapter 9 exercises: a correct answer passes, wrong ones fail with a specific hint."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import check, core, grade

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_cnn(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("cnn",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- cnn.im2col_memory: the measurement, with torch's unfold
def im2col_ratio() -> float:
    x = torch.zeros(8, 16, 32, 32)
    return F.unfold(x, 3, stride=2, padding=1).numel() / x.numel()


def test_im2col_memory() -> None:
    assert im2col_ratio() == 9 / 4  # k^2 copies of each pixel, a quarter of the output positions
    assert_grades("cnn.im2col_memory", im2col_ratio, [lambda: 9, lambda: 4.5, lambda: 0.25, lambda: 3])
    _wrong("cnn.im2col_memory", 9, "ratio at stride 1")
    _wrong("cnn.im2col_memory", 4.5, "both axes")
    _wrong("cnn.im2col_memory", 0.25, "C * k * k values")
    _wrong("cnn.im2col_memory", 3, "measure it")


# ---- cnn.maxpool_grad: the measurement, with torch's max pooling
def pooled_fraction(seed: int) -> float:
    torch.manual_seed(seed)
    x = torch.randn(8, 4, 32, 32, requires_grad=True)
    F.max_pool2d(x, 3, stride=2, padding=1).sum().backward()
    return (x.grad != 0).float().mean().item()


def test_maxpool_grad() -> None:
    for seed in (1, 2):  # any reader's draw passes
        assert grade("cnn.maxpool_grad", pooled_fraction(seed)).correct
    assert 0.14 < pooled_fraction(3) < 0.19  # fewer winners than windows
    assert_grades("cnn.maxpool_grad", lambda: pooled_fraction(4), [lambda: 0.25, lambda: 1 / 9, lambda: 1.0, lambda: 0.5])
    _wrong("cnn.maxpool_grad", 0.25, "windows overlap")
    _wrong("cnn.maxpool_grad", 1 / 9, "tiled the image")
    _wrong("cnn.maxpool_grad", 1.0, "average pooling")
    _wrong("cnn.maxpool_grad", 0.5, "measure it")


# ---- cnn.receptive_field: back from the output, r <- (r - 1) * s + d * (k - 1) + 1
def test_receptive_field() -> None:
    r = 1
    for k, s, d in reversed([(3, 1, 1), (2, 2, 1), (3, 1, 1), (3, 1, 2)]):
        r = (r - 1) * s + d * (k - 1) + 1
    assert r == 16
    assert_grades("cnn.receptive_field", lambda: r, [lambda: 8, lambda: 7, lambda: 10])
    _wrong("cnn.receptive_field", 8, "ignores the stride")
    _wrong("cnn.receptive_field", 10, "(r - 1) * s")


# ---- cnn.im2col
def im2col_solution(x, k):
    B, C, H, W = x.shape
    oh, ow = H - k + 1, W - k + 1
    cols = [x[:, :, i : i + k, j : j + k].reshape(B, C * k * k) for i in range(oh) for j in range(ow)]
    return torch.stack(cols, dim=-1)  # (B, C*k*k, L)


def im2col_kernel_major(x, k):
    B, C, H, W = x.shape
    cols = im2col_solution(x, k).view(B, C, k * k, -1)
    return cols.transpose(1, 2).reshape(B, C * k * k, -1)  # kernel offset first, then channel


def im2col_transposed(x, k):
    return im2col_solution(x, k).transpose(1, 2)


def test_im2col() -> None:
    wrongs = [lambda: im2col_kernel_major, lambda: im2col_transposed, lambda: lambda x, k: F.unfold(x, k) + 1, lambda: 7]
    assert_grades("cnn.im2col", lambda: im2col_solution, wrongs)
    _wrong("cnn.im2col", im2col_kernel_major, "wrong order")
    _wrong("cnn.im2col", im2col_transposed, "(B, C*k*k, L)")
    _wrong("cnn.im2col", lambda x, k: F.unfold(x, k) + 1, "top-left corner")
    _wrong("cnn.im2col", 7, "pass your function")


def test_check_prints(capsys: pytest.CaptureFixture[str]) -> None:
    check("cnn.receptive_field", 16)
    assert "correct" in capsys.readouterr().out
