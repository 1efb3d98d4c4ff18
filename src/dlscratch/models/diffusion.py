r"""Denoising diffusion: noise schedules, the forward process, DDPM and DDIM steps, guidance.

The forward process adds Gaussian noise in :math:`T` steps with variances :math:`\beta_t`;
with :math:`\alpha_t = 1 - \beta_t` and :math:`\bar\alpha_t = \prod_{s \le t} \alpha_s` it has
the closed form

.. math::

    q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}\bigl(\sqrt{\bar\alpha_t}\, \mathbf{x}_0,\;
    (1 - \bar\alpha_t) \mathbf{I}\bigr).

A network :math:`\epsilon_\theta(\mathbf{x}_t, t)` trained to predict the noise defines the
reverse steps: DDPM's ancestral step (Ho et al. 2020) and DDIM's deterministic step (Song et
al. 2021), both on any decreasing subsequence of the training timesteps. Timesteps count from
0, as in ``diffusers``: :math:`t = 0, \ldots, T - 1`, and :math:`\bar\alpha_{-1} = 1`. The
step functions equal ``diffusers``' ``DDPMScheduler.step`` and ``DDIMScheduler.step``
(``prediction_type="epsilon"``, ``variance_type="fixed_small"``). Chapter 35.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["linear_betas", "cosine_betas", "NoiseSchedule", "guided_noise", "sample_loop"]

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    r"""Ho et al.'s linear schedule: :math:`\beta_t` evenly spaced from ``beta_start`` to ``beta_end``.

    Computed in float32 and returned as float64, exactly as ``diffusers`` builds ``"linear"``.

    Shape:
        - output: :math:`(T,)`
    """
    _check_T(T)
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float32).double()


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    r"""Nichol and Dhariwal's cosine schedule (``diffusers``' ``"squaredcos_cap_v2"``).

    .. math::

        \bar\alpha(u) = \cos^2\Bigl(\frac{u + s}{1 + s} \cdot \frac{\pi}{2}\Bigr), \qquad
        \beta_t = \min\Bigl(1 - \frac{\bar\alpha((t + 1)/T)}{\bar\alpha(t/T)},\ \beta_\text{max}\Bigr)

    Shape:
        - output: :math:`(T,)`, float64
    """
    _check_T(T)
    u = torch.arange(T + 1, dtype=torch.float64) / T  # (T+1,)
    abar = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # (T+1,)
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)  # (T,)


def _check_T(T: int) -> None:
    if not isinstance(T, int) or isinstance(T, bool) or T < 1:
        raise ValueError(f"the number of diffusion steps T must be a positive int, got {T!r}")


class NoiseSchedule:
    r"""The quantities of one schedule :math:`\beta_0, \ldots, \beta_{T-1}` and the steps that use them.

    ``alphas_cumprod`` (:math:`\bar\alpha_t`) is kept in float64; every step casts it to its input's
    dtype and device.

    Args:
        betas: :math:`(T,)` noise variances in :math:`(0, 1)`, e.g. from :func:`linear_betas`.
    """

    def __init__(self, betas: torch.Tensor) -> None:
        if betas.dim() != 1 or len(betas) == 0 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(f"betas must be a non-empty 1-D tensor of values in (0, 1), got shape {tuple(betas.shape)}")
        self.betas = betas.double()  # (T,)
        self.alphas = 1 - self.betas  # (T,)
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)  # (T,)  \bar\alpha_t
        self.T = len(betas)

    @classmethod
    def linear(cls, T: int = 1000) -> NoiseSchedule:
        r"""The DDPM schedule, :math:`\beta` from :math:`10^{-4}` to :math:`0.02`."""
        return cls(linear_betas(T))

    @classmethod
    def cosine(cls, T: int = 1000) -> NoiseSchedule:
        r"""The improved-DDPM cosine schedule."""
        return cls(cosine_betas(T))

    def abar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        r""":math:`\bar\alpha_t` (1 for :math:`t = -1`), shaped to broadcast against ``like`` ``(B, ...)``."""
        t = torch.as_tensor(t, device=self.alphas_cumprod.device)
        ab = torch.where(t >= 0, self.alphas_cumprod[t.clamp(min=0)], torch.ones((), dtype=torch.float64))
        if ab.dim() == 1:  # one timestep per example
            ab = ab.view(-1, *([1] * (like.dim() - 1)))  # (B, 1, ...)
        return ab.to(like.device, like.dtype)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        r"""Draw :math:`\mathbf{x}_t = \sqrt{\bar\alpha_t}\, \mathbf{x}_0 + \sqrt{1 - \bar\alpha_t}\, \boldsymbol\epsilon`.

        Args:
            x0: clean data.
            t: one timestep, or one per example :math:`(B,)`.
            noise: :math:`\boldsymbol\epsilon \sim \mathcal{N}(0, \mathbf{I})`, shaped like ``x0``.

        Shape:
            - x0, noise, output: :math:`(B, \ldots)`
        """
        self._check_t(t)
        ab = self.abar(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def predict_x0(self, eps: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
        r"""Invert :meth:`q_sample` for the predicted noise: :math:`\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sqrt{1 - \bar\alpha_t}\,\hat{\boldsymbol\epsilon}) / \sqrt{\bar\alpha_t}`."""
        ab = self.abar(t, x)
        return (x - (1 - ab).sqrt() * eps) / ab.sqrt()

    def timesteps(self, n: int) -> list[int]:
        r"""The ``n`` timesteps a sampler visits, from high to low, spaced :math:`\lfloor T/n \rfloor` apart from 0.

        ``diffusers``' ``"leading"`` spacing: :math:`t_i = i \lfloor T/n \rfloor`, visited in the
        order :math:`t_{n-1}, \ldots, t_0 = 0`.

        Raises:
            ValueError: unless :math:`1 \le n \le T`.
        """
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= self.T:
            raise ValueError(f"the number of sampling steps must be an int from 1 to the schedule's T = {self.T}, got {n!r}")
        ratio = self.T // n
        return [i * ratio for i in reversed(range(n))]

    def ddpm_step(
        self, eps: torch.Tensor, t: int, x: torch.Tensor, noise: torch.Tensor | None, t_prev: int | None = None,
        clip: float | None = None,
    ) -> torch.Tensor:
        r"""One ancestral step :math:`\mathbf{x}_t \to \mathbf{x}_{t'}` (:math:`t' = t - 1` by default).

        .. math::

            \mathbf{x}_{t'} = \frac{\sqrt{\bar\alpha_{t'}}\,\beta}{1 - \bar\alpha_t}\,\hat{\mathbf{x}}_0
            + \frac{\sqrt{1 - \beta}\,(1 - \bar\alpha_{t'})}{1 - \bar\alpha_t}\,\mathbf{x}_t
            + \sigma\,\mathbf{z}, \qquad
            \beta = 1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}, \quad
            \sigma^2 = \frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}\,\beta,

        the mean and variance of the posterior :math:`q(\mathbf{x}_{t'} \mid \mathbf{x}_t, \hat{\mathbf{x}}_0)`,
        with :math:`\hat{\mathbf{x}}_0` from :meth:`predict_x0`, clamped to :math:`[-c, c]` if ``clip``
        is :math:`c`. No noise is added at :math:`t = 0`.

        Args:
            eps: the predicted noise :math:`\hat{\boldsymbol\epsilon}`.
            t: the current timestep.
            x: :math:`\mathbf{x}_t`.
            noise: :math:`\mathbf{z} \sim \mathcal{N}(0, \mathbf{I})` (unused, may be ``None``, at :math:`t = 0`).
            t_prev: the next timestep :math:`t' < t` (``-1`` ends at the data).
            clip: the range of :math:`\hat{\mathbf{x}}_0`, or ``None`` for no clamp.

        Shape:
            - eps, x, noise, output: :math:`(B, \ldots)`
        """
        t_prev = t - 1 if t_prev is None else t_prev
        self._check_pair(t, t_prev)
        ab_t, ab_prev = self.abar(t, x), self.abar(t_prev, x)
        beta = 1 - ab_t / ab_prev  # the variance of the combined step t' -> t
        x0 = self.predict_x0(eps, t, x)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        mean = (ab_prev.sqrt() * beta / (1 - ab_t)) * x0 + ((1 - beta).sqrt() * (1 - ab_prev) / (1 - ab_t)) * x
        if t == 0:
            return mean
        var = ((1 - ab_prev) / (1 - ab_t) * beta).clamp(min=1e-20)
        if noise is None:
            raise ValueError(f"an ancestral step at t = {t} > 0 needs noise, got None")
        return mean + var.sqrt() * noise

    def ddim_step(
        self, eps: torch.Tensor, t: int, t_prev: int, x: torch.Tensor, eta: float = 0.0,
        noise: torch.Tensor | None = None, clip: float | None = None,
    ) -> torch.Tensor:
        r"""One DDIM step :math:`\mathbf{x}_t \to \mathbf{x}_{t'}`; deterministic for :math:`\eta = 0`.

        .. math::

            \mathbf{x}_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat{\mathbf{x}}_0
            + \sqrt{1 - \bar\alpha_{t'} - \sigma^2}\,\hat{\boldsymbol\epsilon} + \sigma\,\mathbf{z},
            \qquad
            \sigma = \eta \sqrt{\frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}}

        Args:
            eps: the predicted noise :math:`\hat{\boldsymbol\epsilon}`.
            t: the current timestep.
            t_prev: the next timestep :math:`t' < t` (``-1``: the data).
            x: :math:`\mathbf{x}_t`.
            eta: :math:`\eta`; 0 is DDIM, 1 gives DDPM's variance.
            noise: :math:`\mathbf{z}`, needed when :math:`\eta > 0`.
            clip: the range of :math:`\hat{\mathbf{x}}_0`, or ``None`` for no clamp.

        Shape:
            - eps, x, noise, output: :math:`(B, \ldots)`
        """
        self._check_pair(t, t_prev)
        ab_t, ab_prev = self.abar(t, x), self.abar(t_prev, x)
        x0 = self.predict_x0(eps, t, x)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).sqrt()
        out = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).sqrt() * eps
        if eta > 0:
            if noise is None:
                raise ValueError(f"a DDIM step with eta = {eta} > 0 needs noise, got None")
            out = out + sigma * noise
        return out

    def _check_t(self, t: torch.Tensor | int) -> None:
        t = torch.as_tensor(t)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise ValueError(f"timesteps must lie in 0..{self.T - 1}, got the range {int(t.min())}..{int(t.max())}")

    def _check_pair(self, t: int, t_prev: int) -> None:
        if not 0 <= t < self.T or not -1 <= t_prev < t:
            raise ValueError(f"need 0 <= t < T = {self.T} and -1 <= t_prev < t, got t = {t}, t_prev = {t_prev}")


def guided_noise(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, w: float) -> torch.Tensor:
    r"""Classifier-free guidance (Ho and Salimans 2022): :math:`(1 + w)\,\epsilon(\mathbf{x}, c) - w\,\epsilon(\mathbf{x}, \varnothing)`.

    :math:`w = 0` is the conditional model; ``diffusers``' ``guidance_scale`` is :math:`1 + w`.

    Shape:
        - eps_uncond, eps_cond, output: :math:`(B, \ldots)`
    """
    return eps_cond + w * (eps_cond - eps_uncond)


@torch.inference_mode()
def sample_loop(
    eps_fn: EpsFn, schedule: NoiseSchedule, x: torch.Tensor, steps: int, *, method: str = "ddim",
    generator: torch.Generator | None = None, clip: float | None = None, keep: tuple[int, ...] = (),
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    r"""Run the reverse process from the noise ``x`` in ``steps`` steps of ``method`` (``"ddim"`` or ``"ddpm"``).

    ``eps_fn(x, t)`` predicts the noise for a batch at the integer timestep ``t`` (a ``(B,)``
    tensor); wrap a guided model in it. The ancestral noise draws from ``generator``.

    Args:
        eps_fn: the noise predictor.
        schedule: the schedule it was trained with.
        x: :math:`\mathbf{x}_T`, standard normal.
        steps: the number of reverse steps, :math:`1 \le n \le T`.
        method: ``"ddim"`` (:math:`\eta = 0`) or ``"ddpm"`` (ancestral).
        generator: for the noise of the ancestral steps.
        clip: the range of :math:`\hat{\mathbf{x}}_0`, or ``None``.
        keep: step indices :math:`i` (after :math:`i` steps; 0 is the start) whose :math:`\mathbf{x}` to return.

    Returns:
        The samples and ``{i: x after i steps}`` for each ``i`` in ``keep``.
    """
    if method not in ("ddim", "ddpm"):
        raise ValueError(f"method must be 'ddim' or 'ddpm', got {method!r}")
    ts = schedule.timesteps(steps)
    snaps = {0: x.clone()} if 0 in keep else {}
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        if method == "ddim":
            x = schedule.ddim_step(eps, t, t_prev, x, clip=clip)
        else:
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) if t > 0 else None
            x = schedule.ddpm_step(eps, t, x, z, t_prev, clip=clip)
        if i + 1 in keep:
            snaps[i + 1] = x.clone()
    return x, snaps
