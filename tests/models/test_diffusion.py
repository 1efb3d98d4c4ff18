"""Noise schedules and sampler steps against ``diffusers``' DDPMScheduler and DDIMScheduler."""

from __future__ import annotations

import pytest
import torch

from dlscratch.models.diffusion import NoiseSchedule, cosine_betas, guided_noise, linear_betas, sample_loop

diffusers = pytest.importorskip("diffusers")

SCHEDULES = {"linear": linear_betas, "squaredcos_cap_v2": cosine_betas}


def ours(name: str, T: int) -> NoiseSchedule:
    return NoiseSchedule(SCHEDULES[name](T))


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("T", [1, 10, 1000])
def test_alphas_cumprod_equal_diffusers(name: str, T: int) -> None:
    ref = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=name)
    torch.testing.assert_close(ours(name, T).alphas_cumprod, ref.alphas_cumprod.double(), atol=1e-6, rtol=0)
    ref_ddim = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule=name)
    torch.testing.assert_close(ours(name, T).alphas_cumprod, ref_ddim.alphas_cumprod.double(), atol=1e-6, rtol=0)


def test_q_sample_equals_add_noise() -> None:
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000)
    ref.alphas_cumprod = ours("linear", 1000).alphas_cumprod  # float64 (diffusers' own: float32, 1 - abar loses digits at t = 1)
    x0, noise = torch.randn(5, 1, 4, 4, dtype=torch.float64), torch.randn(5, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([0, 1, 500, 998, 999])
    torch.testing.assert_close(ours("linear", 1000).q_sample(x0, t, noise), ref.add_noise(x0, noise, t))


def chain(sched: NoiseSchedule, ref: object, n_steps: int):  # noqa: ANN201
    """``ref`` set to our float64 table and ``n_steps`` timesteps; yields a few (i, t, t_prev, eps, x) along the chain."""
    ref.alphas_cumprod = sched.alphas_cumprod  # diffusers keeps them in float32 (equal to 1e-6, above); the step in float64
    ref.set_timesteps(n_steps)
    ts = sched.timesteps(n_steps)
    assert ts == ref.timesteps.tolist()
    for i in sorted({0, min(1, n_steps - 1), n_steps // 2, n_steps - 1}):
        eps, x = torch.randn(3, 2, 5, dtype=torch.float64), 2 * torch.randn(3, 2, 5, dtype=torch.float64)
        yield i, ts[i], ts[i + 1] if i + 1 < n_steps else -1, eps, x


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("n_steps", [1000, 50, 7, 1])
@pytest.mark.parametrize("clip", [True, False])
def test_ddpm_steps_equal_diffusers(name: str, n_steps: int, clip: bool) -> None:
    sched = ours(name, 1000)
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=name, clip_sample=clip)
    for i, t, t_prev, eps, x in chain(sched, ref, n_steps):
        noise = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(i), dtype=torch.float64)  # what diffusers draws
        want = ref.step(eps, t, x, generator=torch.Generator().manual_seed(i)).prev_sample
        got = sched.ddpm_step(eps, t, x, noise, t_prev, clip=1.0 if clip else None)
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("n_steps", [1000, 50, 7, 1])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_steps_equal_diffusers(name: str, n_steps: int, eta: float) -> None:
    sched = ours(name, 1000)
    clip = eta == 0.5  # one setting with x0 clamped to [-1, 1]
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule=name, clip_sample=clip)
    for _, t, t_prev, eps, x in chain(sched, ref, n_steps):
        noise = torch.randn(3, 2, 5, dtype=torch.float64)
        want = ref.step(eps, t, x, eta=eta, variance_noise=noise if eta > 0 else None).prev_sample
        got = sched.ddim_step(eps, t, t_prev, x, eta=eta, noise=noise, clip=1.0 if clip else None)
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_ddim_with_the_true_noise_recovers_the_data() -> None:
    """With the exact noise a DDIM chain at eta = 0 maps x_t back to x_0 in any number of steps."""
    sched = NoiseSchedule.cosine(100)
    x0, eps = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    x, _ = sample_loop(lambda x, t: eps, sched, sched.q_sample(x0, sched.timesteps(4)[0], eps), 4)
    torch.testing.assert_close(x, x0)


@pytest.mark.parametrize("bad", [0, -3, 1001, 2.5, True])
def test_bad_step_count(bad: object) -> None:
    with pytest.raises(ValueError, match=r"from 1 to the schedule's T = 1000, got"):
        ours("linear", 1000).timesteps(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from 1 to the schedule's T"):
        sample_loop(lambda x, t: x, ours("linear", 1000), torch.zeros(1, 2), bad)  # type: ignore[arg-type]


def test_bad_schedule_and_timesteps() -> None:
    with pytest.raises(ValueError, match="positive int, got 0"):
        linear_betas(0)
    with pytest.raises(ValueError, match=r"values in \(0, 1\)"):
        NoiseSchedule(torch.tensor([0.1, 1.0]))
    sched = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match=r"0..9, got the range 0..10"):
        sched.q_sample(torch.zeros(2, 1), torch.tensor([0, 10]), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="t_prev < t"):
        sched.ddim_step(torch.zeros(1), 3, 3, torch.zeros(1))
    with pytest.raises(ValueError, match="needs noise"):
        sched.ddpm_step(torch.zeros(1), 3, torch.zeros(1), None)
    with pytest.raises(ValueError, match="'ddim' or 'ddpm'"):
        sample_loop(lambda x, t: x, sched, torch.zeros(1, 2), 2, method="euler")


def test_guidance() -> None:
    eu, ec = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(guided_noise(eu, ec, 0.0), ec)
    torch.testing.assert_close(guided_noise(eu, ec, -1.0), eu)
    torch.testing.assert_close(guided_noise(eu, ec, 2.0), 3 * ec - 2 * eu)
