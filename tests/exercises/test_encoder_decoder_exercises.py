"""Checkers of the chapter 16 exercises: a correct answer passes, wrong ones fail with a specific hint, ``...`` is open."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import core, grade
from dlscratch.exercises.encoder_decoder import HALF_WARMUP, SMOOTH_EPS, SMOOTH_VOCAB
from dlscratch.layers.losses import cross_entropy

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_encoder_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("encoder_decoder",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- encdec.half_lr: n**(-1/2) = w**(-1/2) / 2 after the peak at n = w
def test_half_lr() -> None:
    w = HALF_WARMUP
    assert_grades("encdec.half_lr", lambda: 4 * w, [lambda: 2 * w, lambda: "16000"])
    assert grade("encdec.half_lr", 4 * w - 1).correct  # counting completed updates instead of step_num
    _wrong("encdec.half_lr", 2 * w, "not 1/n")
    _wrong("encdec.half_lr", w / 2, "during the warm-up")
    _wrong("encdec.half_lr", math.sqrt(2) * w, "multiplied by 4")
    _wrong("encdec.half_lr", 12345, "solve n**(-1/2)")


# ---- encdec.greedy
def my_greedy(model, src, max_len):
    cfg = model.cfg
    memory, src_pad = model.encode(src)
    ys = torch.full((src.size(0), 1), cfg.bos_id)  # (B, 1)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    for _ in range(max_len):
        logits = model.decode(ys, memory, src_pad)[:, -1]  # (B, V)
        logits[:, [cfg.pad_id, cfg.bos_id]] = float("-inf")
        nxt = logits.argmax(-1).masked_fill(done, cfg.pad_id)  # (B,)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == cfg.eos_id
    return ys[:, 1:]


def with_bos(model, src, max_len):
    out = my_greedy(model, src, max_len)
    return torch.cat([torch.full((src.size(0), 1), model.cfg.bos_id), out], 1)


def no_never_emit(model, src, max_len):
    cfg = model.cfg
    ys = torch.full((src.size(0), 1), cfg.bos_id)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    for _ in range(max_len):
        nxt = model(src, ys)[:, -1].argmax(-1).masked_fill(done, cfg.pad_id)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == cfg.eos_id
    return ys[:, 1:]


def no_padding_after_eos(model, src, max_len):
    cfg = model.cfg
    ys = torch.full((src.size(0), 1), cfg.bos_id)
    for _ in range(max_len):
        logits = model(src, ys)[:, -1]
        logits[:, [cfg.pad_id, cfg.bos_id]] = float("-inf")
        ys = torch.cat([ys, logits.argmax(-1)[:, None]], dim=1)
    return ys[:, 1:]


def stops_early(model, src, max_len):
    out = my_greedy(model, src, max_len)
    keep = int((out != model.cfg.pad_id).any(0).nonzero().max()) + 1
    return out[:, :keep]


def all_threes(model, src, max_len):
    out = my_greedy(model, src, max_len)
    return torch.where(out > model.cfg.eos_id, torch.full_like(out, 3), out)


def test_greedy() -> None:
    wrongs = [with_bos, no_never_emit, no_padding_after_eos, stops_early, all_threes]
    assert_grades("encdec.greedy", lambda: my_greedy, [(lambda f=f: f) for f in wrongs] + [lambda: 3])
    _wrong("encdec.greedy", with_bos, "drop the first column")
    _wrong("encdec.greedy", no_never_emit, "never choose <pad> or <bos>")
    _wrong("encdec.greedy", no_padding_after_eos, "emits <pad>")
    _wrong("encdec.greedy", stops_early, "padded with <pad>")
    _wrong("encdec.greedy", all_threes, "different ids")
    _wrong("encdec.greedy", lambda m, s, n: my_greedy(m, s, n).tolist(), "tensor of token ids")


# ---- encdec.smoothing_gap: the reader's sweep, and the closed form log((V (1 - eps) + eps) / eps)
def measured_gap() -> float:
    gaps = torch.linspace(0, 10, 1001)
    target = torch.tensor([3])
    losses = [cross_entropy(g * F.one_hot(target, SMOOTH_VOCAB).float(), target, label_smoothing=SMOOTH_EPS) for g in gaps]
    return gaps[torch.stack(losses).argmin()].item()


def test_smoothing_gap() -> None:
    eps, V = SMOOTH_EPS, SMOOTH_VOCAB
    closed = math.log((V * (1 - eps) + eps) / eps)
    assert abs(measured_gap() - closed) < 0.02
    assert_grades("encdec.smoothing_gap", measured_gap, [lambda: 20.0, lambda: "4.8"])
    assert grade("encdec.smoothing_gap", closed).correct
    _wrong("encdec.smoothing_gap", 20.0, "rises again")
    _wrong("encdec.smoothing_gap", math.log((1 - eps) / eps), "spread over V tokens")
    _wrong("encdec.smoothing_gap", 3.0, "measure it")
