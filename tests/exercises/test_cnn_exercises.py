"""Checkers of the chapter 9 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import check, core, grade


@pytest.fixture(autouse=True)
def _only_cnn(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("cnn",))


# ---- cnn.output_size
def size_solution(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def size_no_dilation(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - kernel) // stride + 1


def size_no_floor(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1


def size_todo(size, kernel, stride, padding, dilation):
    raise NotImplementedError


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


CASES = [
    ("cnn.output_size", size_solution, [size_no_dilation, size_no_floor, 7]),
    ("cnn.conv_params", 32 * 16 * 5 * 3 + 32, [32 * 16 * 5 * 3, 32 * (15 + 1), torch.tensor(1.0), "7712"]),
    ("cnn.receptive_field", 16, [8, 7, 10]),
    ("cnn.im2col", im2col_solution, [im2col_kernel_major, im2col_transposed, lambda x, k: F.unfold(x, k) + 1]),
]


@pytest.mark.parametrize(("name", "solution", "wrong"), CASES, ids=[c[0] for c in CASES])
def test_correct_answer_passes(name, solution, wrong) -> None:
    verdict = grade(name, solution)
    assert verdict.correct is True, verdict.message


@pytest.mark.parametrize(("name", "solution", "wrong"), CASES, ids=[c[0] for c in CASES])
def test_wrong_answers_fail_with_a_hint(name, solution, wrong) -> None:
    for answer in wrong:
        verdict = grade(name, answer)
        assert verdict.correct is False, (name, answer, verdict.message)
        assert len(verdict.message) > len(name) + 20


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_placeholder_is_not_attempted(name) -> None:
    assert grade(name, ...).correct is None


def test_not_implemented_function_is_not_attempted() -> None:
    assert grade("cnn.output_size", size_todo).correct is None


def test_specific_hints() -> None:
    assert "d(k - 1) + 1" in grade("cnn.output_size", size_no_dilation).message
    assert "round down" in grade("cnn.output_size", size_no_floor).message
    assert "bias" in grade("cnn.conv_params", 32 * 16 * 5 * 3).message
    assert "every input channel" in grade("cnn.conv_params", 32 * 16).message
    assert "wrong order" in grade("cnn.im2col", im2col_kernel_major).message
    assert "(r - 1) * s" in grade("cnn.receptive_field", 10).message


def test_check_prints(capsys: pytest.CaptureFixture[str]) -> None:
    check("cnn.receptive_field", 16)
    assert "correct" in capsys.readouterr().out
