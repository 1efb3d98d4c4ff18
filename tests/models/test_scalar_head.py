"""ScalarHeadLM: the LM's logits unchanged, a scalar per position from the same hidden states, zero at initialisation."""

from __future__ import annotations

import torch

from dlscratch.models.scalar_head import ScalarHeadLM
from tests.training.align_helpers import V, tiny_gpt


def test_logits_are_the_lm_s_and_scalars_a_linear_map_of_its_hidden_states() -> None:
    lm = tiny_gpt()
    model = ScalarHeadLM(lm).double()
    idx = torch.randint(0, V, (3, 9))
    logits, scalars = model(idx)
    torch.testing.assert_close(logits, lm(idx)[0])
    assert scalars.shape == (3, 9) and scalars.abs().max().item() == 0.0  # the head starts at zero
    with torch.no_grad():
        model.head.weight.normal_()
        model.head.bias.fill_(0.3)
    _, scalars = model(idx)
    want = lm.hidden_states(idx) @ model.head.weight[0] + 0.3
    torch.testing.assert_close(scalars, want)
    torch.testing.assert_close(model.score(idx), want[:, -1])
    torch.testing.assert_close(model.score(idx[:, :4]), want[:, 3])  # causal: the score of a prefix
    assert model.config is lm.config
