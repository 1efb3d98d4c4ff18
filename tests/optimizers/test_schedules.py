"""Learning-rate schedules against torch.optim.lr_scheduler and the Transformer's formula."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable

import pytest
import torch
from torch.optim import lr_scheduler

from dlscratch.optimizers import SGD, AdamW, constant, inverse_sqrt, lr_lambda, step_decay, warmup_cosine


def torch_lrs(make_sched: Callable[[torch.optim.Optimizer], object], base_lr: float, n: int) -> list[float]:
    """The learning rate a torch scheduler gives to each of ``n`` updates."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_sched(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()  # type: ignore[attr-defined]
    return lrs


def test_constant_matches_constantlr() -> None:
    base = 0.3
    ref = torch_lrs(lambda o: lr_scheduler.ConstantLR(o, factor=1.0), base, 20)
    assert [base * constant(s) for s in range(20)] == ref
    with pytest.raises(ValueError, match="step=-1"):
        constant(-1)


@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (7, 0.1), (30, 0.9)])
def test_step_decay_matches_steplr(step_size: int, gamma: float) -> None:
    base = 0.2
    ref = torch_lrs(lambda o: lr_scheduler.StepLR(o, step_size=step_size, gamma=gamma), base, 100)
    ours = [base * step_decay(s, step_size, gamma) for s in range(100)]
    torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64))


@pytest.mark.parametrize("warmup, total, min_ratio", [(10, 100, 0.0), (2, 50, 0.1), (25, 26, 0.0), (5, 60, 1.0)])
def test_warmup_cosine_matches_linear_then_cosine_annealing(warmup: int, total: int, min_ratio: float) -> None:
    base = 3e-4

    def make(o: torch.optim.Optimizer) -> lr_scheduler.SequentialLR:
        rise = lr_scheduler.LinearLR(o, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
        fall = lr_scheduler.CosineAnnealingLR(o, T_max=total - warmup, eta_min=min_ratio * base)
        return lr_scheduler.SequentialLR(o, [rise, fall], milestones=[warmup - 1])

    ref = torch_lrs(make, base, total)
    ours = [base * warmup_cosine(s, warmup, total, min_ratio) for s in range(total)]
    torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64))


def test_warmup_cosine_landmarks() -> None:
    w, S, r = 10, 110, 0.1
    assert warmup_cosine(0, w, S, r) == pytest.approx(1 / w)
    assert warmup_cosine(w - 1, w, S, r) == 1.0  # the peak
    assert warmup_cosine(w - 1 + 50, w, S, r) == pytest.approx(r + (1 - r) / 2)  # half-way: mean of peak and floor
    assert warmup_cosine(S - 1, w, S, r) == pytest.approx(r)  # the last update uses the floor
    assert warmup_cosine(S + 100, w, S, r) == pytest.approx(r)  # stays there
    assert warmup_cosine(0, 1, S, r) == 1.0  # warmup_steps=1: no warm-up
    lrs = [warmup_cosine(s, w, S, r) for s in range(S)]
    assert all(a < b for a, b in zip(lrs[: w - 1], lrs[1:w])) and all(a > b for a, b in zip(lrs[w - 1 : -1], lrs[w:]))


@pytest.mark.parametrize("d_model, warmup", [(512, 4000), (64, 10), (1, 1)])
def test_inverse_sqrt_is_vaswani_eq3(d_model: int, warmup: int) -> None:
    for step_num in range(1, 3 * warmup + 50):
        paper = d_model**-0.5 * min(step_num**-0.5, step_num * warmup**-1.5)  # eq. 3, step_num from 1
        assert inverse_sqrt(step_num - 1, d_model, warmup) == pytest.approx(paper, rel=1e-12)
    peak = max(inverse_sqrt(s, d_model, warmup) for s in range(3 * warmup))
    assert peak == pytest.approx((d_model * warmup) ** -0.5)
    assert inverse_sqrt(warmup - 1, d_model, warmup) == pytest.approx(peak)


@pytest.mark.parametrize(
    "schedule, kw",
    [
        (step_decay, dict(step_size=3, gamma=0.5)),
        (warmup_cosine, dict(warmup_steps=4, total_steps=20, min_ratio=0.05)),
        (inverse_sqrt, dict(d_model=16, warmup_steps=5)),
    ],
)
def test_lr_lambda_drives_lambdalr_on_our_optimizers(schedule: Callable[..., float], kw: dict) -> None:
    base = 0.5
    fn = lr_lambda(schedule, **kw)
    pickle.dumps(fn)  # picklable, so it can travel with a checkpoint
    p = torch.nn.Parameter(torch.ones(3))
    opt = AdamW([p], lr=base)
    sched = lr_scheduler.LambdaLR(opt, fn)
    for s in range(25):
        assert opt.param_groups[0]["lr"] == pytest.approx(base * schedule(s, **kw), rel=1e-12)
        p.grad = torch.ones(3)
        opt.step()
        sched.step()


def test_lambdalr_state_dict_resumes() -> None:
    fn = lr_lambda(warmup_cosine, warmup_steps=3, total_steps=30)
    make = lambda: SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0)  # noqa: E731
    opt_a = make()
    sched_a = lr_scheduler.LambdaLR(opt_a, fn)
    for _ in range(12):
        opt_a.step()
        sched_a.step()
    opt_b = make()
    sched_b = lr_scheduler.LambdaLR(opt_b, fn)
    sched_b.load_state_dict(sched_a.state_dict())
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"] == fn(12)
    sched_a.step()
    sched_b.step()
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"] == fn(13)


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: step_decay(-1, 3), "step=-1"),
        (lambda: step_decay(0, 0), "step_size=0"),
        (lambda: step_decay(0, 3, gamma=1.5), "gamma=1.5"),
        (lambda: warmup_cosine(0, 0, 10), "warmup_steps=0"),
        (lambda: warmup_cosine(0, 10, 10), "total_steps=10"),
        (lambda: warmup_cosine(0, 2, 10, min_ratio=-0.1), "min_ratio=-0.1"),
        (lambda: inverse_sqrt(0, 0), "d_model=0"),
        (lambda: inverse_sqrt(2.5, 512), "step=2.5"),
        (lambda: lr_lambda(warmup_cosine, warmup_steps=5, total_steps=3), "total_steps=3"),
    ],
)
def test_bad_settings_raise_value_error_naming_them(call: Callable[[], float], needle: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert needle in str(info.value)


def test_cosine_half_way_is_exact() -> None:
    # independent closed form, no torch: at the mid-point cos = 0
    assert warmup_cosine(1 + 50 - 1, 1, 101, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 50 / 100)))
