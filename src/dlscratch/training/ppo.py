r"""RLHF with PPO (Schulman et al., 2017; Ouyang et al., 2022): a KL-penalised reward, GAE and the clipped objective.

The policy writes a response of :math:`R` tokens; each token is an action, the prompt and the
tokens so far the state. The reward model scores the finished text, and every token pays a
penalty for moving away from the reference (the supervised policy):

.. math::

    r_t = -\beta \log \frac{\pi(y_t \mid s_t)}{\pi_\text{ref}(y_t \mid s_t)} + [t = R - 1]\, r_\phi(x, y)

so the return of a response is :math:`r_\phi(x, y) - \beta \log \pi(y \mid x)/\pi_\text{ref}(y \mid x)`,
whose expectation is the KL-constrained objective of RLHF. A value head estimates
:math:`V(s_t)`, generalised advantage estimation (Schulman et al., 2016) turns rewards and values
into advantages, and PPO's clipped surrogate updates the policy several times per batch of
samples without moving too far from the policy that drew them. Chapter 31, *Alignment*.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..models.decoder import DecoderLM
from ..utils import progress_enabled
from ..models.scalar_head import ScalarHeadLM
from .dpo import check_beta
from .loop import train
from .preference import response_logprobs, sample_responses, token_logprobs

__all__ = ["PPOConfig", "kl_estimates", "kl_penalty_rewards", "gae", "ppo_losses", "PPOHistory", "train_ppo"]


@dataclass(frozen=True)
class PPOConfig:
    r"""Settings of a PPO run on fixed-length responses."""

    kl_coef: float = 0.1  # beta: weight of the per-token KL penalty against the reference
    clip: float = 0.2  # epsilon: the probability ratio is clipped to [1 - eps, 1 + eps]
    gamma: float = 1.0  # discount over the response's tokens (1: none, as in InstructGPT)
    lam: float = 0.95  # GAE's lambda: 0 is one-step TD, 1 is Monte Carlo
    vf_coef: float = 0.5  # weight of the value loss in the shared-trunk loss
    response_len: int = 24  # R: tokens the policy writes after each prompt
    rollout: int = 64  # prompts sampled per iteration
    minibatch: int = 32  # rows per gradient step
    epochs: int = 2  # passes over each rollout
    iterations: int = 40  # rollouts
    lr: float = 3e-4  # AdamW's learning rate (constant)
    seed: int = 0  # seeds the choice of prompts and the sampling

    def __post_init__(self) -> None:
        check_beta(self.kl_coef, "kl_coef")
        for name in ("response_len", "rollout", "minibatch", "epochs", "iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if not 0 < self.clip < 1 or not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1 or self.vf_coef < 0 or not self.lr > 0:
            raise ValueError(f"need 0 < clip < 1, 0 <= gamma <= 1, 0 <= lam <= 1, vf_coef >= 0, lr > 0; got {self}")


def kl_estimates(logp: torch.Tensor, logp_ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Two single-sample estimates of :math:`\mathrm{KL}(p \Vert q)` from samples :math:`x \sim p`: ``(k1, k3)``.

    .. math::

        k_1 = \log \frac{p(x)}{q(x)}, \qquad k_3 = \frac{q(x)}{p(x)} - 1 - \log \frac{q(x)}{p(x)}

    Both are unbiased (:math:`\mathbb{E}_p[q/p] = 1`); :math:`k_3` is never negative and has a
    lower variance when :math:`p` and :math:`q` are close (Schulman, 2020).

    Shape:
        - logp, logp_ref: :math:`\log p(x), \log q(x)` of the same samples, any shape; outputs: same
    """
    log_ratio = logp_ref - logp  # log q/p
    return -log_ratio, torch.expm1(log_ratio) - log_ratio


def kl_penalty_rewards(score: torch.Tensor, logp: torch.Tensor, logp_ref: torch.Tensor, kl_coef: float) -> torch.Tensor:
    r"""Per-token rewards :math:`r_t = -\beta (\log \pi - \log \pi_\text{ref})_t`, plus the judge's ``score`` on the last token.

    Shape:
        - score: :math:`(B,)`; logp, logp_ref: :math:`(B, R)`; output: :math:`(B, R)`
    """
    check_beta(kl_coef, "kl_coef")
    rewards = -kl_coef * (logp - logp_ref)  # (B, R)
    rewards[:, -1] += score
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Generalised advantage estimates and returns of an episode that ends after the last token.

    .. math::

        \delta_t = r_t + \gamma V(s_{t+1}) - V(s_t), \qquad
        \hat A_t = \sum_{l \ge 0} (\gamma\lambda)^l \delta_{t+l}, \qquad \hat R_t = \hat A_t + V(s_t)

    with :math:`V(s_R) = 0`. One loop over the :math:`R` positions, batched over rows.

    Shape:
        - rewards, values: :math:`(B, R)`; outputs: advantages, returns :math:`(B, R)`
    """
    B, R = rewards.shape
    adv = torch.zeros_like(rewards)  # (B, R)
    next_adv, next_value = rewards.new_zeros(B), rewards.new_zeros(B)
    for t in reversed(range(R)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        next_adv = adv[:, t] = delta + gamma * lam * next_adv
        next_value = values[:, t]
    return adv, adv + values


def ppo_losses(logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, values: torch.Tensor,
               returns: torch.Tensor, clip: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""PPO's clipped policy loss, the value loss and the share of clipped ratios: ``(policy, value, clip_fraction)``.

    .. math::

        \rho_t = \frac{\pi_\theta(y_t \mid s_t)}{\pi_\text{old}(y_t \mid s_t)}, \qquad
        \mathcal{L}_\text{clip} = -\operatorname{mean}_t \min\bigl(\rho_t \hat A_t,\;
        \operatorname{clip}(\rho_t, 1 - \epsilon, 1 + \epsilon)\, \hat A_t\bigr), \qquad
        \mathcal{L}_V = \tfrac12 \operatorname{mean}_t \bigl(V_\theta(s_t) - \hat R_t\bigr)^2

    Shape:
        - every input: :math:`(B, R)`; outputs: scalars
    """
    ratio = torch.exp(logp - logp_old)  # (B, R)
    clipped = ratio.clamp(1 - clip, 1 + clip)
    policy_loss = -torch.minimum(ratio * advantages, clipped * advantages).mean()
    value_loss = 0.5 * (values - returns).pow(2).mean()
    return policy_loss, value_loss, ((ratio - 1).abs() > clip).float().mean()


@dataclass
class PPOHistory:
    r"""Per-iteration means over each rollout: the judge's score, the sampled KL and the clip fraction."""

    score: list[float] = field(default_factory=list)  # mean reward-model score of the rollout's responses
    kl: list[float] = field(default_factory=list)  # mean log pi/pi_ref of a response (k1, summed over tokens)
    clip_fraction: list[float] = field(default_factory=list)  # share of ratios outside [1 - eps, 1 + eps]


def train_ppo(policy: ScalarHeadLM, ref: DecoderLM, reward_fn: Callable[[torch.Tensor], torch.Tensor], prompts: torch.Tensor,
              cfg: PPOConfig, on_iteration: Callable[[int], None] | None = None) -> PPOHistory:
    r"""RLHF: ``cfg.iterations`` rounds of sample, score, GAE and ``cfg.epochs`` passes of clipped updates.

    A progress bar runs over the iterations when :func:`~dlscratch.utils.progress_enabled`.

    Args:
        policy: the policy with its value head (a :class:`~dlscratch.models.scalar_head.ScalarHeadLM`), trained in place.
        ref: the frozen reference policy :math:`\pi_\text{ref}`.
        reward_fn: rows ``prompt + response`` :math:`(B, P + R)` to scores :math:`(B,)` (the reward model).
        prompts: :math:`(N, P)` prompt ids to draw from.
        cfg: the settings.
        on_iteration: called with the number of finished iterations after each one.

    Returns:
        The :class:`PPOHistory`.
    """
    P, dev = prompts.size(1), policy.head.weight.device
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    hist = PPOHistory()
    ref.eval()
    from tqdm.auto import tqdm

    for it in tqdm(range(cfg.iterations), desc="PPO", disable=not progress_enabled()):
        pick = torch.randint(0, prompts.size(0), (cfg.rollout,), generator=gen)
        ids = sample_responses(policy, prompts[pick], cfg.response_len, gen).to(dev)  # (B, P + R)
        with torch.no_grad():
            logits, values = policy(ids)  # (B, T, V), (B, T)
            logp_old = token_logprobs(logits, ids)[:, P - 1 :]  # (B, R)
            values = values[:, P - 1 : -1]  # (B, R): V(s_t), read where y_t is predicted
            logp_ref = response_logprobs(ref, ids, P, per_token=True)  # (B, R)
            score = reward_fn(ids)  # (B,)
            rewards = kl_penalty_rewards(score, logp_old, logp_ref, cfg.kl_coef)
            adv, returns = gae(rewards, values, cfg.gamma, cfg.lam)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # whitened per rollout
        clip_fracs: list[torch.Tensor] = []

        def loss_fn(model: ScalarHeadLM, mb: torch.Tensor) -> torch.Tensor:
            lg, v = model(ids[mb])
            lp = token_logprobs(lg, ids[mb])[:, P - 1 :]  # (b, R)
            pg, vf, frac = ppo_losses(lp, logp_old[mb], adv[mb], v[:, P - 1 : -1], returns[mb], cfg.clip)
            clip_fracs.append(frac.detach())
            return pg + cfg.vf_coef * vf

        batches = [mb for _ in range(cfg.epochs) for mb in torch.randperm(cfg.rollout, generator=gen).split(cfg.minibatch)]
        train(policy, batches, opt, steps=len(batches), loss_fn=loss_fn, grad_clip=1.0, progress=False)
        hist.score.append(score.mean().item())
        hist.kl.append((logp_old - logp_ref).sum(-1).mean().item())
        hist.clip_fraction.append(torch.stack(clip_fracs).mean().item())
        if on_iteration is not None:
            on_iteration(it + 1)
    return hist
