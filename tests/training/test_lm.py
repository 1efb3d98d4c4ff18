"""Sequence-LM training utilities: splits, windows, whole-split evaluation, the training loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.optimizers import warmup_cosine
from dlscratch.training.lm import (
    LMTrainConfig,
    evaluate_sequence_nll,
    make_optimizer,
    random_windows,
    split_text,
    train_sequence_lm,
    window_plan,
)


def test_split_text_is_contiguous_ninety_ten() -> None:
    text = "abcdefghij" * 10 + "xyz"
    s = split_text(text)
    assert len(s.train) == int(0.9 * len(text)) and len(s.train) + len(s.val) == len(text)
    assert s.tokenizer.decode(s.train.tolist()) + s.tokenizer.decode(s.val.tolist()) == text
    assert s.tokenizer.itos == sorted(set(text))
    with pytest.raises(ValueError, match="train_fraction"):
        split_text(text, 1.0)


def test_random_windows_are_shifted_contiguous_slices() -> None:
    tokens = torch.arange(100)
    x, y = random_windows(tokens, 8, 32, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (32, 8)
    assert torch.equal(y, x + 1)  # targets are the next tokens
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # contiguous
    assert x.min() >= 0 and y.max() <= 99
    x2, _ = random_windows(tokens, 8, 32, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)  # seeded
    with pytest.raises(ValueError, match="block_size=100"):
        random_windows(tokens, 100, 1)


def test_random_windows_reach_both_ends() -> None:
    tokens = torch.arange(20)
    x, y = random_windows(tokens, 5, 5000, torch.Generator().manual_seed(0))
    assert x[:, 0].min() == 0 and y[:, -1].max() == 19


class ExactContext(nn.Module):
    """A fake LM whose log-probability of the target depends on how much context it was given."""

    def __init__(self, vocab: int = 5) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape
        # logits that put probability p_t on token (x_t + 1) % V, where p_t rises with context length t+1
        ctx = torch.arange(1, T + 1, dtype=torch.float64).expand(B, T)
        logits = torch.zeros(B, T, self.vocab, dtype=torch.float64)
        logits.scatter_(2, ((x + 1) % self.vocab)[..., None], ctx[..., None])
        return logits


def brute_force_nll(tokens: torch.Tensor, contexts: list[int], vocab: int = 5) -> float:
    """NLL of predicting tokens[t+1] from a context of contexts[t] tokens, by the formula of ExactContext."""
    total = 0.0
    for t, c in enumerate(contexts):
        logits = torch.zeros(vocab, dtype=torch.float64)
        logits[(tokens[t] + 1) % vocab] = c
        total -= torch.log_softmax(logits, -1)[tokens[t + 1]].item()
    return total / len(contexts)


@pytest.mark.parametrize("N", [2, 9, 37, 64, 65])
@pytest.mark.parametrize("stride", [None, 1, 3, 8])
def test_every_prediction_scored_once_with_expected_context(N: int, stride: int | None) -> None:
    tokens = torch.randint(0, 5, (N,), generator=torch.Generator().manual_seed(N))
    T = 8
    n_pred = N - 1
    Te = min(T, n_pred)
    s = Te if stride is None else min(stride, Te)
    # expected context of prediction t (predicting tokens[t + 1]): windows as documented
    contexts = []
    for t in range(n_pred):
        if t < Te:
            contexts.append(t + 1)
        else:
            k = (t - Te) // s  # which later window scores t
            end = min(Te + (k + 1) * s, n_pred)
            contexts.append(t - (end - Te) + 1)
    got = evaluate_sequence_nll(ExactContext(), tokens, T, stride=None if stride is None else s, batch_size=3)
    assert math.isclose(got, brute_force_nll(tokens, contexts), rel_tol=1e-12)


def test_evaluation_matches_direct_loss_on_aligned_split_and_restores_mode() -> None:
    m = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=1, n_embd=8, dropout=0.3))
    tokens = torch.randint(0, 7, (8 * 5 + 1,))
    m.train()
    got = evaluate_sequence_nll(m, tokens, 8)
    assert m.training  # mode restored
    m.eval()
    x, y = tokens[:-1].view(5, 8), tokens[1:].view(5, 8)
    with torch.no_grad():
        _, loss = m(x, y)  # the same 40 predictions, non-overlapping windows
    assert math.isclose(got, loss.item(), rel_tol=1e-5)


def test_window_plan_covers_every_prediction_once() -> None:
    starts, first = window_plan(10, 4)  # 9 predictions, windows of 4: the last one is pulled back to the end
    assert starts.tolist() == [0, 4, 5] and first.tolist() == [0, 4, 8]
    starts, first = window_plan(10, 4, stride=2)
    assert starts.tolist() == [0, 2, 4, 5] and first.tolist() == [0, 4, 6, 8]
    with pytest.raises(ValueError, match="at least 2 tokens"):
        window_plan(1, 4)


def test_evaluation_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_sequence_nll(ExactContext(), torch.tensor([1]), 4)
    with pytest.raises(ValueError, match="stride=9"):
        evaluate_sequence_nll(ExactContext(), torch.arange(50) % 5, 8, stride=9)


def test_train_config_checks_and_schedule() -> None:
    with pytest.raises(ValueError, match="steps=10 must exceed warmup_steps=10"):
        LMTrainConfig(steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="batch_size"):
        LMTrainConfig(batch_size=0)
    cfg = LMTrainConfig(steps=50, warmup_steps=5, lr=2e-3, min_lr_ratio=0.1)
    assert cfg.lr_at(0) == pytest.approx(2e-3 / 5)
    assert cfg.lr_at(4) == pytest.approx(2e-3)
    assert cfg.lr_at(49) == pytest.approx(2e-4)
    assert all(cfg.lr_at(s) == 2e-3 * warmup_cosine(s, 5, 50, 0.1) for s in range(50))


def test_weight_decay_groups() -> None:
    m = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=2, n_head=1, n_embd=8, bias=True))
    opt = make_optimizer(m, LMTrainConfig(weight_decay=0.3))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.3 and plain["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(m.parameters()))


def test_training_learns_a_repeating_pattern_and_records_history() -> None:
    text_ids = torch.tensor([0, 1, 2, 3, 4, 5] * 200)
    m = GPT(GPTConfig(vocab_size=6, block_size=8, n_layer=1, n_head=2, n_embd=16))
    cfg = LMTrainConfig(batch_size=8, steps=60, lr=1e-2, warmup_steps=5)
    seen = []
    hist = train_sequence_lm(m, text_ids, cfg, val_tokens=text_ids[:100], eval_every=20, on_eval=lambda s, v: seen.append(s))
    assert seen == hist.val_steps == [20, 40, 60]
    assert len(hist.train_loss) == len(hist.lr) == 60 and hist.tokens == 60 * 8 * 8
    assert hist.train_seconds > 0
    assert hist.val_loss[-1] < 0.5 < math.log(6)  # the pattern is deterministic after one token


def test_resuming_continues_exactly() -> None:
    tokens = torch.randint(0, 9, (500,), generator=torch.Generator().manual_seed(0))
    cfg = LMTrainConfig(batch_size=4, steps=12, lr=3e-3, warmup_steps=3)
    config = GPTConfig(vocab_size=9, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.1)

    def fresh() -> GPT:
        torch.manual_seed(0)
        model = GPT(config)
        torch.manual_seed(1)  # the dropout stream
        return model

    straight = fresh()
    train_sequence_lm(straight, tokens, cfg)

    class Stop(Exception):
        pass

    def stop(step: int, val: float) -> None:
        raise Stop

    half = fresh()
    opt, gen = make_optimizer(half, cfg), torch.Generator().manual_seed(cfg.seed)
    with pytest.raises(Stop):  # interrupted after 6 steps (validation does not touch any RNG)
        train_sequence_lm(half, tokens, cfg, optimizer=opt, generator=gen, val_tokens=tokens[:20], eval_every=6, on_eval=stop)
    train_sequence_lm(half, tokens, cfg, optimizer=opt, generator=gen, start_step=6)
    for (n, a), b in zip(straight.state_dict().items(), half.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m, n=n: f"{n}: {m}")


def test_muon_optimizer_chain_equals_muon_and_adamw_stepped_by_hand() -> None:
    from dlscratch.models.llama import LLaMA, LlamaConfig
    from dlscratch.optimizers.muon import Muon, split_muon_params
    from dlscratch.training.lm import OptimizerChain

    cfg = LlamaConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_kv_head=1, n_embd=8, ffn_hidden=16)
    tcfg = LMTrainConfig(steps=5, warmup_steps=1, optimizer="muon", muon_lr=0.05, lr=0.01)
    a, b = LLaMA(cfg), LLaMA(cfg)
    b.load_state_dict(a.state_dict())
    chain = make_optimizer(a, tcfg)
    assert isinstance(chain, OptimizerChain) and isinstance(chain.optimizers[0], Muon)
    muon_b, rest_b = split_muon_params(b)
    assert len(chain.optimizers[0].param_groups[0]["params"]) == len(muon_b) == 7  # q, k, v, out, gate, up, down
    by_hand = [Muon(muon_b, lr=0.05, weight_decay=0.1, momentum=0.95, nesterov=True, ns_dtype=None),
               torch.optim.AdamW([{"params": [p for p in rest_b if p.dim() >= 2], "weight_decay": 0.1},
                                  {"params": [p for p in rest_b if p.dim() < 2], "weight_decay": 0.0}], lr=0.01, betas=(0.9, 0.99), fused=True)]
    x = torch.randint(0, 11, (4, 8))
    for _ in range(3):
        for m in (a, b):
            m(x, x)[1].backward()
        chain.step()
        for opt in by_hand:
            opt.step()
        chain.zero_grad()
        for opt in by_hand:
            opt.zero_grad()
    for (k, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7, msg=lambda m, k=k: f"{k}: {m}")
    state = chain.state_dict()
    fresh = make_optimizer(LLaMA(cfg), tcfg)
    fresh.load_state_dict(state)
    with pytest.raises(ValueError, match="expected the states of 2 optimizers, found 1"):
        fresh.load_state_dict({"optimizers": [state["optimizers"][0]]})
    with pytest.raises(ValueError, match="optimizer must be 'adamw' or 'muon', got optimizer='sgd'"):
        LMTrainConfig(optimizer="sgd")


def test_steps_for_seconds_scales_with_the_budget() -> None:
    from dlscratch.training.lm import steps_for_seconds

    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    tokens = torch.randint(0, 11, (500,))
    cfg = LMTrainConfig(batch_size=2, steps=10, warmup_steps=2)
    assert steps_for_seconds(model, tokens, cfg, 0.0) == 3  # never fewer than warm-up + 1
    assert steps_for_seconds(model, tokens, cfg, 1000.0) > 1000  # a tiny model steps in well under a second
