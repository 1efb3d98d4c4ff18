"""The KL estimators are unbiased on a toy distribution; GAE against its definition; the clipped loss against a hand formula."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.models.scalar_head import ScalarHeadLM
from dlscratch.training.ppo import PPOConfig, gae, kl_estimates, kl_penalty_rewards, ppo_losses, train_ppo
from tests.training.align_helpers import P, V, tiny_gpt


def test_kl_estimators_are_unbiased_on_a_toy_distribution() -> None:
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    q = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    exact = (p * (p / q).log()).sum()
    k1, k3 = kl_estimates(p.log(), q.log())  # each outcome's estimate
    torch.testing.assert_close((p * k1).sum(), exact)  # exact expectations over p: unbiased
    torch.testing.assert_close((p * k3).sum(), exact)
    assert (k3 >= 0).all() and (k1 < 0).any()
    draws = torch.multinomial(p, 400_000, replacement=True, generator=torch.Generator().manual_seed(0))
    s1, s3 = kl_estimates(p.log()[draws], q.log()[draws])
    for s in (s1, s3):
        assert abs(s.mean() - exact).item() < 4 * s.std().item() / math.sqrt(len(draws))


def test_gae_equals_its_definition() -> None:
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(3, 7, generator=g, dtype=torch.float64), torch.randn(3, 7, generator=g, dtype=torch.float64)
    gamma, lam = 0.9, 0.7
    v_next = torch.cat([v[:, 1:], torch.zeros(3, 1, dtype=torch.float64)], 1)
    delta = r + gamma * v_next - v
    want = torch.stack([sum((gamma * lam) ** l * delta[:, t + l] for l in range(7 - t)) for t in range(7)], 1)
    adv, ret = gae(r, v, gamma, lam)
    torch.testing.assert_close(adv, want)
    torch.testing.assert_close(ret, want + v)
    mc = torch.flip(torch.cumsum(torch.flip(r, [1]), 1), [1])  # gamma = lam = 1: reward-to-go minus value
    torch.testing.assert_close(gae(r, v, 1.0, 1.0)[0], mc - v)


def test_ppo_losses_match_a_hand_computation() -> None:
    logp = torch.tensor([[0.0, -1.0]], dtype=torch.float64)
    old = torch.tensor([[-0.5, -0.5]], dtype=torch.float64)
    adv = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    ratio = torch.exp(logp - old)  # e^0.5 = 1.65 (clipped to 1.2 for A > 0), e^-0.5 = 0.61 (clipped to 0.8 for A < 0)
    want = -((min(ratio[0, 0].item(), 1.2) * 1.0) + min(ratio[0, 1].item() * -2.0, 0.8 * -2.0)) / 2
    pg, vf, frac = ppo_losses(logp, old, adv, torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]), 0.2)
    assert pg.item() == pytest.approx(want)
    assert vf.item() == pytest.approx(0.5 * (1 + 4) / 2)
    assert frac.item() == 1.0


def test_kl_penalty_rewards_add_the_score_on_the_last_token() -> None:
    logp, ref = torch.tensor([[-1.0, -2.0, -0.5]]), torch.tensor([[-1.5, -1.0, -0.5]])
    r = kl_penalty_rewards(torch.tensor([3.0]), logp, ref, 0.1)
    torch.testing.assert_close(r, torch.tensor([[-0.05, 0.1, 3.0]]))


@pytest.mark.parametrize("field, value", [("kl_coef", 0.0), ("kl_coef", -1.0), ("clip", 1.5), ("rollout", 0), ("lam", 2.0)])
def test_config_refuses_bad_settings(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        PPOConfig(**{field: value})


def test_train_ppo_raises_a_reward_it_can_reach() -> None:
    policy, ref = ScalarHeadLM(tiny_gpt(0, torch.float32)), tiny_gpt(0, torch.float32)
    prompts = torch.randint(0, V, (32, P))
    target = 3

    def reward(ids: torch.Tensor) -> torch.Tensor:  # how often the response says token 3
        return (ids[:, P:] == target).float().sum(-1)

    cfg = PPOConfig(kl_coef=0.01, response_len=6, rollout=32, minibatch=16, iterations=25, lr=3e-3)
    hist = train_ppo(policy, ref, reward, prompts, cfg)
    assert len(hist.score) == 25 and hist.kl[0] == pytest.approx(0.0, abs=1e-5)
    assert sum(hist.score[-5:]) / 5 > sum(hist.score[:5]) / 5 + 0.5
