"""Gradient accumulation, clipping, loss scaling and exact-resume checkpoints."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.optimizers import AdamW, lr_lambda, warmup_cosine
from dlscratch.training import DynamicLossScaler, accumulate_gradients, clip_grad_norm, load_checkpoint, save_checkpoint


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


# ---------------------------------------------------------------- checkpoints
def train_steps(model, opt, sched, n: int, gen: torch.Generator) -> list[float]:
    """Steps drawing from every RNG: torch (dropout, batch), numpy, python, an explicit generator."""
    losses = []
    for _ in range(n):
        x = torch.randn(8, 6, dtype=torch.float64)  # global torch RNG
        y = torch.randint(0, 4, (8,), generator=gen)  # explicit generator
        noise = np.random.standard_normal() * 0.01 + random.random() * 0.01  # numpy and python
        loss = F.cross_entropy(model(x + noise), y)  # dropout draws from the torch RNG
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def make_run(seed: int):
    torch.manual_seed(seed)
    model = mlp(p_drop=0.3)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup_cosine, warmup_steps=3, total_steps=12))
    return model, opt, sched


def seed_all(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


def test_resume_reproduces_uninterrupted_run_bit_for_bit(tmp_path: Path) -> None:
    model_a, opt_a, sched_a = make_run(0)
    gen = seed_all(1)
    losses_a = train_steps(model_a, opt_a, sched_a, 12, gen)

    model_b, opt_b, sched_b = make_run(0)
    gen = seed_all(1)
    losses_b = train_steps(model_b, opt_b, sched_b, 5, gen)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model_b, optimizer=opt_b, scheduler=sched_b, step=5, generator=gen)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind

    model_c, opt_c, sched_c = make_run(123)  # a fresh process: other weights, other RNG states
    gen = seed_all(99)
    step = load_checkpoint(path, model=model_c, optimizer=opt_c, scheduler=sched_c, generator=gen)
    assert step == 5
    losses_c = train_steps(model_c, opt_c, sched_c, 7, gen)

    assert losses_b + losses_c == losses_a
    for a, c in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(a, c)
    assert opt_c.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt, _ = make_run(0)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, step=1)
    before = path.read_bytes()

    def crash(obj, fh) -> None:
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model=model, optimizer=opt, step=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_missing_and_corrupt_checkpoints_raise_clear_errors(tmp_path: Path) -> None:
    model, opt, sched = make_run(0)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_checkpoint(tmp_path / "nowhere.pt", model=model)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, scheduler=sched, step=3)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_checkpoint(truncated, model=model)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_checkpoint(garbage, model=model)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(ValueError, match="foreign.pt.*not a dlscratch-checkpoint"):
        load_checkpoint(foreign, model=model)


def test_checkpoint_from_another_model_is_rejected(tmp_path: Path) -> None:
    model, opt, _ = make_run(0)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, step=3)
    wider = mlp(hidden=32, p_drop=0.3)
    before = [p.detach().clone() for p in wider.parameters()]
    with pytest.raises(ValueError, match=r"ckpt.pt is from another model.*0.weight: checkpoint \(16, 6\) vs model \(32, 6\)"):
        load_checkpoint(path, model=wider)
    assert all(torch.equal(a, b) for a, b in zip(before, wider.parameters()))  # untouched
    renamed = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).double()  # other names
    with pytest.raises(ValueError, match=r"missing \['2.bias', '2.weight'\], unexpected \['3.bias', '3.weight'\]"):
        load_checkpoint(path, model=renamed)
    with pytest.raises(ValueError, match="no scheduler state"):
        load_checkpoint(path, model=model, scheduler=make_run(0)[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resume_with_map_location_cuda(tmp_path: Path) -> None:
    model = mlp(p_drop=0.3).cuda()
    opt = AdamW(model.parameters(), lr=1e-2)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, step=1)
    expected = torch.rand(3)  # the draw that follows the saved state
    assert load_checkpoint(path, model=model, optimizer=opt, map_location="cuda") == 1
    assert torch.equal(torch.rand(3), expected)


def test_optimizer_state_that_does_not_fit_is_rejected(tmp_path: Path) -> None:
    model, opt, _ = make_run(0)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, step=1)
    two_groups = AdamW([{"params": model[0].parameters()}, {"params": model[3].parameters()}])
    with pytest.raises(ValueError, match="optimizer state in .*ckpt.pt does not fit"):
        load_checkpoint(path, model=model, optimizer=two_groups)
