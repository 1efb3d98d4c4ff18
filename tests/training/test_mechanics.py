"""Gradient accumulation, clipping and loss scaling."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.training import DynamicLossScaler, accumulate_gradients, clip_grad_norm


def mlp(hidden: int = 16, p_drop: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Dropout(p_drop), nn.Linear(hidden, 4)).double()


# ---------------------------------------------------------------- gradient accumulation
@pytest.mark.parametrize("k", [1, 2, 3, 5, 24])
def test_accumulated_gradients_equal_big_batch(k: int) -> None:
    model = mlp()
    x, y = torch.randn(24, 6, dtype=torch.float64), torch.randint(0, 4, (24,))
    big = copy.deepcopy(model)
    big_loss = F.cross_entropy(big(x), y)
    big_loss.backward()
    loss = accumulate_gradients(lambda xb, yb: F.cross_entropy(model(xb), yb), (x, y), k)  # k=5: uneven pieces
    torch.testing.assert_close(loss, big_loss.detach())
    for (name, a), b in zip(model.named_parameters(), big.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=lambda m, n=name: f"{n}: {m}")


def test_accumulation_rejects_bad_micro_batches() -> None:
    x, y = torch.randn(4, 6), torch.randint(0, 4, (4,))
    with pytest.raises(ValueError, match="micro_batches=5"):
        accumulate_gradients(lambda a, b: a.sum(), (x, y), 5)
    with pytest.raises(ValueError, match="micro_batches=0"):
        accumulate_gradients(lambda a, b: a.sum(), (x, y), 0)
    with pytest.raises(ValueError, match="disagree"):
        accumulate_gradients(lambda a, b: a.sum(), (x, y[:3]), 2)


# ---------------------------------------------------------------- clipping
@pytest.mark.parametrize("max_norm", [0.05, 1.0, 1e6])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_clip_grad_norm_matches_torch(max_norm: float, dtype: torch.dtype) -> None:
    ours = [torch.randn(s, dtype=dtype, requires_grad=True) for s in [(3, 4), (7,), (2, 2, 2)]]
    ref = [p.detach().clone().requires_grad_() for p in ours]
    for a, b in zip(ours, ref):
        a.grad = torch.randn_like(a)
        b.grad = a.grad.clone()
    ours.append(torch.zeros(2, requires_grad=True))  # no .grad: skipped
    n_ours = clip_grad_norm(ours, max_norm)
    n_ref = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    torch.testing.assert_close(n_ours, n_ref)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.grad, b.grad)
    after = torch.cat([p.grad.flatten() for p in ours[:3]]).norm()
    assert after <= max_norm * (1 + 1e-5) or max_norm > n_ref


def test_clip_grad_norm_single_tensor_and_bad_threshold() -> None:
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.tensor([3.0, 4.0])
    assert clip_grad_norm(p, 1.0).item() == pytest.approx(5.0)
    torch.testing.assert_close(p.grad, torch.tensor([0.6, 0.8]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="max_norm=0"):
        clip_grad_norm(p, 0)


# ---------------------------------------------------------------- loss scaling
def test_dynamic_loss_scaler_matches_gradscaler() -> None:
    p_ours = nn.Parameter(torch.ones(3))
    p_ref = nn.Parameter(torch.ones(3))
    opt_ours, opt_ref = torch.optim.SGD([p_ours], lr=0.1), torch.optim.SGD([p_ref], lr=0.1)
    ours = DynamicLossScaler(init_scale=8.0, growth_interval=3)
    ref = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    for overflow in [0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 0]:
        factor = float("inf") if overflow else 1.0
        for p, opt in ((p_ours, opt_ours), (p_ref, opt_ref)):
            opt.zero_grad()
        ours.scale_loss((p_ours * p_ours).sum() * factor).backward()
        stepped = ours.step(opt_ours)
        ref.scale((p_ref * p_ref).sum() * factor).backward()
        ref.step(opt_ref)
        ref.update()
        assert stepped == (not overflow)
        assert ours.scale == ref.get_scale()
        torch.testing.assert_close(p_ours, p_ref)


def test_loss_scaling_rescues_fp16_underflow() -> None:
    g = torch.tensor(1e-8)
    assert g.half().item() == 0.0  # below float16's smallest subnormal
    scaler = DynamicLossScaler()
    assert (g * scaler.scale).half().float().item() / scaler.scale == pytest.approx(1e-8, rel=1e-3)


def test_loss_scaler_rejects_bad_settings_and_round_trips_state() -> None:
    with pytest.raises(ValueError, match="backoff_factor=1.5"):
        DynamicLossScaler(backoff_factor=1.5)
    s = DynamicLossScaler(init_scale=4.0, growth_interval=2)
    s.update(False)
    t = DynamicLossScaler()
    t.load_state_dict(s.state_dict())
    assert (t.scale, t.clean_steps) == (4.0, 1)
