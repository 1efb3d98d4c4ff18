"""DPO's loss equals trl's (1.16, ``DPOTrainer._compute_loss``, sigmoid loss) on the same log-probabilities; bad beta fails."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from dlscratch.training.dpo import dpo_loss, train_dpo
from dlscratch.training.preference import PreferencePairs, response_logprobs, token_logprobs
from tests.training.align_helpers import P, pair_rows, tiny_gpt


def trl_dpo_loss(policy, chosen, rejected, prompt_len, ref_chosen, ref_rejected, beta):  # noqa: ANN001, ANN201
    from trl.trainer.dpo_trainer import DPOTrainer

    ids = torch.cat([chosen, rejected])
    completion = torch.zeros_like(ids)
    completion[:, prompt_len:] = 1

    def model(input_ids, labels, **kwargs):  # noqa: ANN001, ANN003, ANN202 - trl's fused LM head: label log-probs, 0 where masked
        logp = token_logprobs(policy(input_ids)[0], input_ids) * (labels[:, 1:] != -100)
        zero = torch.zeros_like(logp)
        return SimpleNamespace(log_probs=logp, entropy=zero, mean_logits=zero, is_top1=zero.bool())

    model.training = True
    accel = SimpleNamespace(device=ids.device, gather_for_metrics=lambda t: t, gather=lambda t: t)
    trainer = SimpleNamespace(accelerator=accel, model=model, aux_loss_enabled=False, precompute_ref_logps=True, ld_alpha=None,
                              f_divergence_type="reverse_kl", loss_types=["sigmoid"], loss_weights=[1.0], beta=beta, use_weighting=False,
                              _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion,
              "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    return DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)


@pytest.mark.parametrize("beta", [0.05, 0.1, 0.5])
def test_dpo_loss_matches_trl_forward_and_gradients(beta: float) -> None:
    pytest.importorskip("trl")
    chosen, rejected = pair_rows(6)
    ref = tiny_gpt(1)
    with torch.no_grad():
        ref_c, ref_r = response_logprobs(ref, chosen, P), response_logprobs(ref, rejected, P)
    ours_model, trl_model = tiny_gpt(0), tiny_gpt(0)
    ours = dpo_loss(response_logprobs(ours_model, chosen, P), response_logprobs(ours_model, rejected, P), ref_c, ref_r, beta)
    theirs = trl_dpo_loss(trl_model, chosen, rejected, P, ref_c, ref_r, beta)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-10)
    ours.backward()
    theirs.backward()
    for (name, a), b in zip(ours_model.named_parameters(), trl_model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


def test_dpo_loss_is_the_independent_formula_and_log2_at_the_reference() -> None:
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(7, generator=g, dtype=torch.float64) for _ in range(4))
    want = torch.log1p(torch.exp(-0.3 * ((pc - rc) - (pr - rr)))).mean()  # -log sigmoid(z) = log(1 + e^-z)
    torch.testing.assert_close(dpo_loss(pc, pr, rc, rr, 0.3), want)
    assert dpo_loss(rc, rr, rc, rr, 0.3).item() == pytest.approx(F.softplus(torch.tensor(0.0)).item())  # log 2


@pytest.mark.parametrize("beta", [0.0, -0.1, float("nan"), True])
def test_beta_must_be_positive(beta: float) -> None:
    z = torch.zeros(3)
    with pytest.raises(ValueError, match="beta must be a positive number"):
        dpo_loss(z, z, z, z, beta)


def test_train_dpo_raises_the_chosen_margin() -> None:
    chosen, rejected = pair_rows(16, seed=3)
    pairs = PreferencePairs(chosen, rejected, P)
    policy, ref = tiny_gpt(0, torch.float32), tiny_gpt(0, torch.float32)
    with torch.no_grad():
        before = (response_logprobs(policy, chosen, P) - response_logprobs(policy, rejected, P)).mean().item()
    train_dpo(policy, ref, pairs, 0.5, epochs=5, batch_size=8, lr=3e-3)
    with torch.no_grad():
        after = (response_logprobs(policy, chosen, P) - response_logprobs(policy, rejected, P)).mean().item()
    assert after > before + 1.0
    with pytest.raises(ValueError, match="beta"):
        train_dpo(policy, ref, pairs, -1.0)
