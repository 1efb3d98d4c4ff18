r"""Scaling laws: counting parameters and FLOPs, and fitting power laws, isoFLOP parabolas and Chinchilla's law.

* :func:`parameter_counts`: a model's parameters with and without its embedding tables (the
  two conventions of Hoffmann et al., 2022, and Kaplan et al., 2020).
* :func:`training_flops`, :func:`gpt_flops_per_token` and :func:`counted_flops`: the
  :math:`6ND` rule, the exact matmul count of a GPT, and the count of ``FlopCounterMode``.
* :func:`fit_power_law` and :func:`bootstrap_power_law`: :math:`y = k x^p` by least squares in
  log-log space, with percentile bootstrap intervals.
* :func:`fit_isoflop`: the parabola in :math:`\log N` through the losses of one compute budget.
* :func:`fit_chinchilla`: :math:`L(N, D) = E + A/N^\alpha + B/D^\beta` by a Huber loss on
  :math:`\log L`, and its compute-optimal frontier.

Introduced in chapter 29, *Scaling laws*. Fits run in float64 on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product

import torch
from torch import nn

__all__ = [
    "parameter_counts",
    "training_flops",
    "gpt_flops_per_token",
    "counted_flops",
    "PowerLaw",
    "fit_power_law",
    "bootstrap_power_law",
    "IsoFLOPFit",
    "fit_isoflop",
    "ChinchillaLaw",
    "CHINCHILLA",
    "fit_chinchilla",
]

Values = Sequence[float] | torch.Tensor


def _positive(name: str, values: Values, min_points: int = 1) -> torch.Tensor:
    r"""``values`` as a 1-D float64 tensor, checked to be finite, positive and at least ``min_points`` long."""
    t = torch.as_tensor(values, dtype=torch.float64).flatten()
    if t.numel() < min_points:
        raise ValueError(f"need at least {min_points} values of {name} to fit, got {t.numel()}")
    bad = ~torch.isfinite(t) | (t <= 0)
    if bad.any():
        raise ValueError(f"{name} must be finite and positive, got {t[bad][0].item()!r} at index {int(bad.nonzero()[0])}")
    return t


def parameter_counts(model: nn.Module) -> dict[str, int]:
    r"""A model's parameters under the two conventions: every tensor counted once, and without the embeddings.

    ``"with_embeddings"`` counts every parameter once (a tied head and token table once), as
    Hoffmann et al. (2022) do; ``"non_embedding"`` leaves out the weights of every
    :class:`torch.nn.Embedding` (token and position tables; a head tied to the token table goes
    with it), as Kaplan et al. (2020) do. For a GPT of :math:`L` blocks :math:`C` wide, the
    non-embedding count is :math:`12 L C^2` plus the norms.
    """
    params = {id(p): p.numel() for p in model.parameters()}
    embedding = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    total = sum(params.values())
    return {"with_embeddings": total, "non_embedding": total - sum(n for i, n in params.items() if i in embedding)}


def training_flops(n_params: float, n_tokens: float) -> float:
    r"""The training compute of ``n_params`` parameters on ``n_tokens`` tokens: :math:`C = 6 N D`.

    .. math::

        C \approx \underbrace{2ND}_{\text{forward}} + \underbrace{4ND}_{\text{backward}} = 6ND

    Every parameter takes part in one multiply-add (2 FLOPs) per token forward, and in two
    backward (the gradient of the input and of the weight).
    """
    n, d = _positive("n_params", [n_params]), _positive("n_tokens", [n_tokens])
    return 6.0 * n.item() * d.item()


def gpt_flops_per_token(n_layer: int, n_embd: int, block_size: int, vocab_size: int, backward: bool = True) -> int:
    r"""The matmul FLOPs per token of chapter 17's GPT (MLP 4× as wide, full :math:`T \times T` attention).

    .. math::

        C_\text{forward} = 2\,(12 L C^2) + 4 L T C + 2 V C, \qquad C_\text{train} = 3\, C_\text{forward}

    :math:`24 C^2` per block for the query, key, value and output projections and the MLP,
    :math:`4TC` for the attention scores and their weighted sum over all :math:`T` positions
    (the causal mask does not skip them), :math:`2VC` for the head. The backward pass costs
    twice the forward one. Norms, softmax and the embedding lookup are not matmuls and are left
    out, as ``FlopCounterMode`` does.
    """
    for name, v in (("n_layer", n_layer), ("n_embd", n_embd), ("block_size", block_size), ("vocab_size", vocab_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {name}={v!r}")
    forward = 2 * 12 * n_layer * n_embd**2 + 4 * n_layer * block_size * n_embd + 2 * vocab_size * n_embd
    return 3 * forward if backward else forward


def counted_flops(fn: Callable[[], object]) -> int:
    r"""The FLOPs ``torch.utils.flop_counter.FlopCounterMode`` counts while ``fn()`` runs (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class PowerLaw:
    r""":math:`y = k\,x^{p}`, fitted as a line in log-log space."""

    scale: float  # k
    exponent: float  # p (negative for a loss falling with size)
    r2: float  # coefficient of determination of the fit of log y

    def __call__(self, x: Values) -> torch.Tensor:
        return self.scale * torch.as_tensor(x, dtype=torch.float64) ** self.exponent


def _line_fits(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Least-squares slopes and intercepts of ``v`` on ``u`` along the last dimension (batched)."""
    du, dv = u - u.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)
    slope = (du * dv).sum(-1) / (du * du).sum(-1)
    return slope, v.mean(-1) - slope * u.mean(-1)


def _r2(y: torch.Tensor, pred: torch.Tensor) -> float:
    ss_res, ss_tot = ((y - pred) ** 2).sum(), ((y - y.mean()) ** 2).sum()
    return (1.0 - ss_res / ss_tot).item() if ss_tot > 0 else float("nan")


def fit_power_law(x: Values, y: Values) -> PowerLaw:
    r"""Fit :math:`y = k x^p` by least squares on :math:`\log y = \log k + p \log x`.

    For Kaplan's :math:`L(N) = (N_c / N)^{\alpha_N}`: :math:`\alpha_N = -p` and
    :math:`N_c = k^{1/\alpha_N}`. The :math:`R^2` is that of the line in log-log space.

    Raises:
        ValueError: on fewer than 2 points, lengths that differ, a non-positive value, or
            all :math:`x` equal.
    """
    lx, ly = _positive("x", x, 2).log(), _positive("y", y, 2).log()
    if lx.numel() != ly.numel():
        raise ValueError(f"x and y must have the same length, got {lx.numel()} and {ly.numel()}")
    if (lx == lx[0]).all():
        raise ValueError("x must take at least 2 distinct values to fit a power law")
    slope, intercept = _line_fits(lx, ly)
    return PowerLaw(math.exp(intercept.item()), slope.item(), _r2(ly, intercept + slope * lx))


def bootstrap_power_law(
    x: Values, y: Values, n_boot: int = 2000, level: float = 0.9, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, tuple[float, float]]:
    r"""Percentile bootstrap of the exponent :math:`p` of :func:`fit_power_law`.

    Draws ``n_boot`` resamples of the points with replacement, fits each (all at once, as a
    batch of lines), drops resamples whose :math:`x` are all equal, and returns the exponents
    and the central ``level`` interval of them.

    Returns:
        ``(exponents, (low, high))``.
    """
    lx, ly = _positive("x", x, 3).log(), _positive("y", y, 3).log()
    if lx.numel() != ly.numel():
        raise ValueError(f"x and y must have the same length, got {lx.numel()} and {ly.numel()}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got level={level!r}")
    idx = torch.randint(lx.numel(), (n_boot, lx.numel()), generator=generator)  # (R, n)
    u, v = lx[idx], ly[idx]  # (R, n)
    keep = u.std(-1) > 0
    slopes = _line_fits(u[keep], v[keep])[0]  # (R',)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(slopes, q).tolist()
    return slopes, (low, high)


@dataclass(frozen=True)
class IsoFLOPFit:
    r"""The parabola :math:`L = a (\log N)^2 + b \log N + c` of one compute budget and its minimum."""

    coeffs: tuple[float, float, float]  # (a, b, c), natural log of N
    n_opt: float  # N at the minimum, exp(-b / 2a)
    loss_opt: float  # the parabola's value there

    def __call__(self, n: Values) -> torch.Tensor:
        a, b, c = self.coeffs
        u = torch.as_tensor(n, dtype=torch.float64).log()
        return a * u**2 + b * u + c


def fit_isoflop(n_params: Values, losses: Values, keep: int | None = None) -> IsoFLOPFit:
    r"""Fit a parabola in :math:`\log N` to the final losses of the runs of one FLOP budget.

    .. math::

        L(N) \approx a (\log N)^2 + b \log N + c, \qquad N_\text{opt} = e^{-b / 2a}

    Args:
        n_params: the runs' model sizes :math:`N`.
        losses: their final losses.
        keep: fit only the ``keep`` runs of lowest loss (the neighbourhood of the minimum,
            where a parabola describes the curve); ``None``: all of them.

    Raises:
        ValueError: on fewer than 3 points (or ``keep`` < 3), a non-positive value, or a
            parabola that opens downwards (:math:`a \le 0`: the sizes do not bracket a minimum).
    """
    u, y = _positive("n_params", n_params, 3).log(), _positive("losses", losses, 3)
    if u.numel() != y.numel():
        raise ValueError(f"n_params and losses must have the same length, got {u.numel()} and {y.numel()}")
    if keep is not None:
        if isinstance(keep, bool) or not isinstance(keep, int) or not 3 <= keep <= u.numel():
            raise ValueError(f"keep must be an integer in [3, {u.numel()}], got keep={keep!r}")
        best = y.argsort()[:keep]
        u, y = u[best], y[best]
    X = torch.stack([u**2, u, torch.ones_like(u)], dim=1)  # (n, 3)
    a, b, c = torch.linalg.lstsq(X, y[:, None]).solution.flatten().tolist()
    if not a > 0:
        raise ValueError(f"the parabola opens downwards (a={a:.3g}): the sizes do not bracket a minimum")
    u_opt = -b / (2 * a)
    return IsoFLOPFit((a, b, c), math.exp(u_opt), a * u_opt**2 + b * u_opt + c)


@dataclass(frozen=True)
class ChinchillaLaw:
    r""":math:`L(N, D) = E + A / N^\alpha + B / D^\beta` (Hoffmann et al., 2022, eq. 2)."""

    E: float  # irreducible loss, nats per token
    A: float  # scale of the model-size term
    B: float  # scale of the data term
    alpha: float  # exponent of N
    beta: float  # exponent of D

    def __call__(self, n: Values, d: Values) -> torch.Tensor:
        n, d = torch.as_tensor(n, dtype=torch.float64), torch.as_tensor(d, dtype=torch.float64)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def compute_optimal(self, flops: Values) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The :math:`(N, D)` of least loss under :math:`6ND = C`.

        .. math::

            N_\text{opt} = G \left(\tfrac{C}{6}\right)^{\frac{\beta}{\alpha + \beta}}, \quad
            D_\text{opt} = G^{-1} \left(\tfrac{C}{6}\right)^{\frac{\alpha}{\alpha + \beta}}, \quad
            G = \left(\tfrac{\alpha A}{\beta B}\right)^{\frac{1}{\alpha + \beta}}
        """
        c = _positive("flops", flops) / 6
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        return g * c ** (self.beta / (self.alpha + self.beta)), c ** (self.alpha / (self.alpha + self.beta)) / g


CHINCHILLA = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Hoffmann et al. (2022), eq. 10


def _huber(r: torch.Tensor, delta: float) -> torch.Tensor:
    return torch.where(r.abs() <= delta, 0.5 * r**2, delta * (r.abs() - 0.5 * delta))


def fit_chinchilla(n_params: Values, n_tokens: Values, losses: Values, delta: float = 1e-3, steps: int = 500) -> tuple[ChinchillaLaw, float]:
    r"""Fit :math:`L(N, D) = E + A/N^\alpha + B/D^\beta` as Hoffmann et al. (2022) did: Huber loss on :math:`\log L`.

    .. math::

        \min_{a, b, e, \alpha, \beta} \sum_i \operatorname{Huber}_\delta\Bigl(
        \operatorname{LSE}\bigl(a - \alpha \log N_i,\ b - \beta \log D_i,\ e\bigr) - \log L_i\Bigr),
        \quad A = e^a,\ B = e^b,\ E = e^e

    From a grid of 243 starting points (:math:`\alpha, \beta \in \{0.1, 0.5, 1\}`,
    :math:`e \in \{-1, 0, 1\}`, :math:`a, b \in \{0, 5, 10\}`), all optimised together with Adam
    (a batch of independent fits), then the best refined with L-BFGS. :math:`\delta = 10^{-3}`
    as in the paper.

    Returns:
        The fitted :class:`ChinchillaLaw` and the :math:`R^2` of its :math:`\log L` on the data.

    Raises:
        ValueError: on fewer than 5 runs (the law has 5 parameters), lengths that differ or a
            non-positive value.
    """
    n, d, y = _positive("n_params", n_params, 5), _positive("n_tokens", n_tokens, 5), _positive("losses", losses, 5)
    if not n.numel() == d.numel() == y.numel():
        raise ValueError(f"n_params, n_tokens and losses must have the same length, got {n.numel()}, {d.numel()}, {y.numel()}")
    ln, ld, ly = n.log(), d.log(), y.log()

    def objective(theta: torch.Tensor) -> torch.Tensor:  # theta (K, 5) = (a, b, e, alpha, beta) -> (K,)
        a, b, e, al, be = theta.unbind(-1)
        terms = torch.stack([a[:, None] - al[:, None] * ln, b[:, None] - be[:, None] * ld, e[:, None].expand(-1, ln.numel())])
        return _huber(torch.logsumexp(terms, dim=0) - ly, delta).sum(-1)  # (K,)

    grid = torch.tensor(list(product((0.0, 5.0, 10.0), (0.0, 5.0, 10.0), (-1.0, 0.0, 1.0), (0.1, 0.5, 1.0), (0.1, 0.5, 1.0))), dtype=torch.float64)
    theta = grid.clone().requires_grad_()
    opt = torch.optim.Adam([theta], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        objective(theta).sum().backward()
        opt.step()
    with torch.no_grad():
        best = theta[objective(theta).argmin()].clone()
    best = best[None].requires_grad_()
    lbfgs = torch.optim.LBFGS([best], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = objective(best).sum()
        loss.backward()
        return loss

    lbfgs.step(closure)
    a, b, e, al, be = best.detach()[0].tolist()
    law = ChinchillaLaw(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=al, beta=be)
    return law, _r2(ly, law(n, d).log())
