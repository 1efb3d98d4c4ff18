"""Each optimizer against torch.optim (Lion against its published pseudo-code) over ten steps."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.optimizers import SGD, Adam, AdamW, Lion, RMSprop

N_STEPS = 10


def make_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small float64 classifier and a fixed batch (seeded by the autouse fixture)."""
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    x = torch.randn(16, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    return model, x, y


def param_groups(model: nn.Module, grouped: bool, **group_kw: Any) -> list[dict[str, Any]] | Any:
    if not grouped:
        return model.parameters()
    return [{"params": model[0].parameters(), **group_kw}, {"params": model[2].parameters()}]


def run_side_by_side(
    make_ours: Callable[[Any], torch.optim.Optimizer],
    make_ref: Callable[[Any], torch.optim.Optimizer] | None,
    grouped: bool = False,
    group_kw: dict[str, Any] | None = None,
    ref_step: Callable[[list[torch.Tensor], dict[int, torch.Tensor]], None] | None = None,
) -> None:
    """Train two copies from identical parameters; parameters must agree after every step."""
    group_kw = group_kw or {}
    ours_model, x, y = make_problem()
    ref_model = copy.deepcopy(ours_model)
    ours = make_ours(param_groups(ours_model, grouped, **group_kw))
    ref = make_ref(param_groups(ref_model, grouped, **group_kw)) if make_ref is not None else None
    ref_state: dict[int, torch.Tensor] = {}
    for step in range(N_STEPS):
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if opt is not None:
                opt.step()
        if ref_step is not None:
            ref_step(list(ref_model.parameters()), ref_state)
        for (name, a), b in zip(ours_model.named_parameters(), ref_model.parameters()):
            torch.testing.assert_close(a, b, msg=lambda m, s=step, n=name: f"step {s + 1}, {n}: {m}")
    # the run must actually move the parameters
    assert not torch.equal(ours_model[0].weight, make_problem()[0][0].weight)


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.05, momentum=0.8, weight_decay=0.05),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1, nesterov=True),
]


@pytest.mark.parametrize("kw", SGD_CASES, ids=str)
@pytest.mark.parametrize("grouped", [False, True])
def test_sgd_matches_torch(kw: dict[str, Any], grouped: bool) -> None:
    run_side_by_side(
        lambda p: SGD(p, **kw), lambda p: torch.optim.SGD(p, **kw), grouped=grouped, group_kw={"lr": 0.3}
    )


RMSPROP_CASES = [
    dict(lr=0.01),
    dict(lr=0.01, alpha=0.9, eps=1e-6),
    dict(lr=0.01, momentum=0.7),
    dict(lr=0.01, centered=True),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.05),
]


@pytest.mark.parametrize("kw", RMSPROP_CASES, ids=str)
def test_rmsprop_matches_torch(kw: dict[str, Any]) -> None:
    run_side_by_side(lambda p: RMSprop(p, **kw), lambda p: torch.optim.RMSprop(p, **kw))


ADAM_CASES = [
    dict(lr=0.01),
    dict(lr=0.01, betas=(0.5, 0.9)),
    dict(lr=0.01, eps=1e-3),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.02, betas=(0.0, 0.99), weight_decay=0.01),
]


@pytest.mark.parametrize("kw", ADAM_CASES, ids=str)
@pytest.mark.parametrize("grouped", [False, True])
def test_adam_matches_torch(kw: dict[str, Any], grouped: bool) -> None:
    run_side_by_side(
        lambda p: Adam(p, **kw), lambda p: torch.optim.Adam(p, **kw), grouped=grouped, group_kw={"lr": 0.05}
    )


ADAMW_CASES = [dict(lr=0.01), dict(lr=0.01, weight_decay=0.0), dict(lr=0.01, weight_decay=0.5), dict(lr=0.03, betas=(0.8, 0.95))]


@pytest.mark.parametrize("kw", ADAMW_CASES, ids=str)
@pytest.mark.parametrize("grouped", [False, True])
def test_adamw_matches_torch(kw: dict[str, Any], grouped: bool) -> None:
    run_side_by_side(
        lambda p: AdamW(p, **kw),
        lambda p: torch.optim.AdamW(p, **kw),
        grouped=grouped,
        group_kw={"weight_decay": 0.2},
    )


def lion_reference(lr: float, beta1: float, beta2: float, wd: float):
    """Lion as in Chen et al. (2023), Program 1 / Algorithm 2, on plain tensors."""

    def step(params: list[torch.Tensor], exp_avgs: dict[int, torch.Tensor]) -> None:
        with torch.no_grad():
            for i, p in enumerate(params):
                g = p.grad
                m = exp_avgs.setdefault(i, torch.zeros_like(p))
                update = torch.sign(m * beta1 + g * (1 - beta1))  # interp(g, m, beta1), then sign
                exp_avgs[i] = m * beta2 + g * (1 - beta2)  # interp(g, m, beta2)
                update = update + p * wd  # decoupled decay
                p.copy_(p - update * lr)

    return step


@pytest.mark.parametrize(
    "kw", [dict(lr=1e-3), dict(lr=3e-3, betas=(0.95, 0.98)), dict(lr=1e-3, weight_decay=1.0), dict(lr=1e-2, betas=(0.0, 0.5))], ids=str
)
def test_lion_matches_published_rule(kw: dict[str, Any]) -> None:
    beta1, beta2 = kw.get("betas", (0.9, 0.99))
    run_side_by_side(
        lambda p: Lion(p, **kw), None, ref_step=lion_reference(kw["lr"], beta1, beta2, kw.get("weight_decay", 0.0))
    )


def test_lion_moves_every_coordinate_by_lr() -> None:
    p = nn.Parameter(torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64))
    p.grad = torch.tensor([1e-6, -50.0, 2.0], dtype=torch.float64)
    Lion([p], lr=0.1).step()
    torch.testing.assert_close(p.detach(), torch.tensor([2.9, -1.9, 0.4], dtype=torch.float64))


def test_adamw_and_l2_adam_differ_and_agree_without_decay() -> None:
    results = {}
    for name, cls, wd in [("l2", Adam, 0.1), ("decoupled", AdamW, 0.1), ("l2_0", Adam, 0.0), ("dec_0", AdamW, 0.0)]:
        torch.manual_seed(0)
        model, x, y = make_problem()
        opt = cls(model.parameters(), lr=0.01, weight_decay=wd)
        for _ in range(5):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        results[name] = torch.nn.utils.parameters_to_vector(model.parameters())
    assert (results["l2"] - results["decoupled"]).abs().max() > 1e-4
    torch.testing.assert_close(results["l2_0"], results["dec_0"], rtol=0, atol=0)


@pytest.mark.parametrize("cls", [SGD, RMSprop, Adam, AdamW, Lion])
def test_state_dict_resume_equals_uninterrupted(cls: type) -> None:
    kw = {"lr": 0.01, "momentum": 0.9} if cls in (SGD, RMSprop) else {"lr": 0.01}
    model_a, x, y = make_problem()
    model_b = copy.deepcopy(model_a)
    opt_a = cls(model_a.parameters(), **kw)
    opt_b = cls(model_b.parameters(), **kw)

    def train(model: nn.Module, opt: torch.optim.Optimizer, n: int) -> None:
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

    train(model_a, opt_a, 10)
    train(model_b, opt_b, 4)
    saved = copy.deepcopy(opt_b.state_dict())
    opt_b = cls(model_b.parameters(), **kw)  # a fresh optimizer, as after a restart
    opt_b.load_state_dict(saved)
    train(model_b, opt_b, 6)
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cls", [SGD, RMSprop, Adam, AdamW, Lion])
def test_closure_returns_loss_and_params_without_grad_are_skipped(cls: type) -> None:
    model, x, y = make_problem()
    frozen = model[2].bias.detach().clone()
    opt = cls(model.parameters(), lr=0.01)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        model[2].bias.grad = None
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad
    assert torch.equal(model[2].bias, frozen)


BAD_OPTIONS = [
    (SGD, dict(lr=-0.1), "lr=-0.1"),
    (SGD, dict(lr=float("nan")), "lr=nan"),
    (SGD, dict(momentum=1.0), "momentum=1.0"),
    (SGD, dict(momentum=-0.5), "momentum=-0.5"),
    (SGD, dict(nesterov=True), "nesterov"),
    (SGD, dict(weight_decay=-1e-4), "weight_decay=-0.0001"),
    (RMSprop, dict(alpha=1.5), "alpha=1.5"),
    (RMSprop, dict(eps=-1.0), "eps=-1.0"),
    (RMSprop, dict(centered="yes"), "centered='yes'"),
    (Adam, dict(betas=(1.0, 0.999)), "betas[0]=1.0"),
    (Adam, dict(betas=(0.9, -0.1)), "betas[1]=-0.1"),
    (Adam, dict(betas=0.9), "betas=0.9"),
    (Adam, dict(eps=-1e-8), "eps=-1e-08"),
    (AdamW, dict(weight_decay=-0.01), "weight_decay=-0.01"),
    (AdamW, dict(lr=float("inf")), "lr=inf"),
    (Lion, dict(betas=(0.9,)), "betas=(0.9,)"),
    (Lion, dict(lr=-1e-4), "lr=-0.0001"),
]


@pytest.mark.parametrize("cls, kw, needle", BAD_OPTIONS, ids=lambda v: str(v))
def test_bad_options_raise_value_error_naming_them(cls: type, kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        cls(make_problem()[0].parameters(), **kw)
    assert needle in str(info.value), str(info.value)


def test_unknown_and_invalid_group_options_are_rejected() -> None:
    model = make_problem()[0]
    with pytest.raises(ValueError, match="momentun"):
        SGD([{"params": model.parameters(), "momentun": 0.9}], lr=0.1)
    opt = Adam(model[0].parameters(), lr=0.1)
    with pytest.raises(ValueError, match="lr=-1"):
        opt.add_param_group({"params": model[2].parameters(), "lr": -1})
    assert len(opt.param_groups) == 1  # the bad group was not added
    opt.add_param_group({"params": model[2].parameters(), "lr": 0.5})
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)  # defaults filled in
