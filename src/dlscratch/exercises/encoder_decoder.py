r"""Exercise checkers for chapter 16, "The encoder-decoder Transformer" (topic prefix ``encdec.``).

Every checker recomputes the answer with the package's tested code
(:func:`~dlscratch.optimizers.schedules.inverse_sqrt`,
:meth:`~dlscratch.models.seq2seq_transformer.Seq2SeqTransformer.greedy_decode`,
:func:`~dlscratch.layers.losses.cross_entropy`) and raises :class:`AssertionError` with a hint when
the reader's answer differs. The reference solutions live in the tests, not here and not on the
page.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from ..layers.losses import cross_entropy
from ..models.seq2seq_transformer import Seq2SeqTransformer, Seq2SeqTransformerConfig
from ..optimizers.schedules import inverse_sqrt
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "HALF_D_MODEL",
    "HALF_WARMUP",
    "SMOOTH_EPS",
    "SMOOTH_VOCAB",
    "check_half_lr",
    "check_greedy",
    "check_smoothing_gap",
]

HALF_D_MODEL, HALF_WARMUP = 512, 4000  # encdec.half_lr: the paper's base model
SMOOTH_EPS, SMOOTH_VOCAB = 0.1, 13  # encdec.smoothing_gap: the chapter's epsilon and digit vocabulary


@exercise("encdec.half_lr")
def check_half_lr(answer: Any) -> None:
    r"""The ``step_num`` n after the peak at which the paper's schedule has fallen to half its peak (d = 512, w = 4000)."""
    got = require_number(answer, "the step number")
    d, w = HALF_D_MODEL, HALF_WARMUP
    lr = [inverse_sqrt(s, d, w) for s in range(20 * w)]  # lr[s] belongs to step_num n = s + 1
    peak = max(lr)
    want = next(s + 1 for s in range(w, len(lr)) if lr[s] <= peak / 2 * (1 + 1e-12))
    if abs(got - want) <= 1:
        return
    if abs(got - 2 * w) <= 1:
        raise AssertionError("the decay is like 1/sqrt(n), not 1/n: doubling n divides the rate by sqrt(2) only.")
    if abs(got - w / 2) <= 1:
        raise AssertionError("that is half the peak on the way up, during the warm-up; the question asks after the peak.")
    if abs(got - math.sqrt(2) * w) <= 2:
        raise AssertionError("n**(-1/2) halves when n is multiplied by 4, not by sqrt(2).")
    raise AssertionError("the peak is at n = w, where both branches of the min meet; after it, solve n**(-1/2) = w**(-1/2) / 2.")


@functools.cache
def _greedy_model() -> Seq2SeqTransformer:
    with torch.random.fork_rng():  # leave the reader's random stream alone
        torch.manual_seed(0)
        cfg = Seq2SeqTransformerConfig.cpu(d_model=32, nhead=2, dim_feedforward=64, num_encoder_layers=1,
                                           num_decoder_layers=1)
        model = Seq2SeqTransformer(cfg).eval()
    with torch.no_grad():  # an untrained model with sharp, varied outputs that would like to emit <pad> and <bos>
        model.lm_head.weight.mul_(4)
        model.lm_head.bias.zero_()
        model.lm_head.bias[cfg.pad_id] += 5
        model.lm_head.bias[cfg.bos_id] += 5
    return model


@exercise("encdec.greedy")
def check_greedy(answer: Any) -> None:
    r"""``answer(model, src, max_len)`` equals the package's ``Seq2SeqTransformer.greedy_decode`` on seeded random sources."""
    fn = require_callable(answer, "my_greedy(model, src, max_len)")
    model = _greedy_model()
    cfg = model.cfg
    gen = torch.Generator().manual_seed(16)
    cases = []
    for B, S, max_len in ((8, 5, 6), (8, 5, 9), (3, 4, 1), (8, 6, 3)):
        src = torch.randint(3, cfg.src_vocab_size, (B, S), generator=gen)
        src[B // 2, S - 2 :] = cfg.pad_id  # one padded source
        cases.append((src, max_len))
    src = torch.randint(3, cfg.src_vocab_size, (32, 5), generator=gen)
    finished = ((model.greedy_decode(src, 10) == cfg.eos_id).long().cumsum(1) > 0)[:, 6]
    cases.append((src[finished][:8], 10))  # every row ends early: the last columns are all <pad>
    for src, max_len in cases:
        B, S = src.shape
        want = model.greedy_decode(src, max_len)  # (B, max_len)
        with torch.inference_mode():
            got = fn(model, src.clone(), max_len)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a tensor of token ids, got {type(got).__name__}.")
        if tuple(got.shape) == (B, max_len + 1) and bool((got[:, 0] == cfg.bos_id).all()):
            raise AssertionError("return the ids after <bos>: drop the first column.")
        if tuple(got.shape) != (B, max_len):
            raise AssertionError(
                f"return (B, max_len) = {(B, max_len)} ids, padded with <pad> after <eos> to max_len; got {tuple(got.shape)}."
            )
        got = got.to(torch.long).cpu()
        if torch.equal(got, want):
            continue
        is_eos = (got == cfg.eos_id).long()
        before_eos = is_eos.cumsum(1) == 0  # positions before a row's first <eos>
        if bool((got == cfg.bos_id).any()) or bool(((got == cfg.pad_id) & before_eos).any()):
            raise AssertionError("never choose <pad> or <bos>: set their logits to -inf before the argmax.")
        after_eos = is_eos.cumsum(1) - is_eos > 0  # positions after a row's first <eos>
        if bool((got[after_eos] != cfg.pad_id).any()):
            raise AssertionError("after its <eos> a row emits <pad>, even while other rows are still writing.")
        raise AssertionError(
            f"different ids for src of shape {(B, S)}, max_len {max_len}: start from <bos>, run model(src, prefix) "
            "(or encode once and decode), take the last position's logits, append the argmax, repeat."
        )


def _smoothed_loss(gap: torch.Tensor) -> torch.Tensor:
    V = SMOOTH_VOCAB
    logits = gap[:, None] * torch.nn.functional.one_hot(torch.zeros(len(gap), dtype=torch.long), V)  # (N, V)
    return cross_entropy(logits.double(), torch.zeros(len(gap), dtype=torch.long), SMOOTH_EPS, reduction="none")


@exercise("encdec.smoothing_gap")
def check_smoothing_gap(answer: Any) -> None:
    r"""The logit gap (true token over the others, all others equal) that minimises the label-smoothed loss, V = 13."""
    got = require_number(answer, "the logit gap")
    gaps = torch.linspace(0, 20, 20_001, dtype=torch.float64)
    want = gaps[_smoothed_loss(gaps).argmin()].item()
    if abs(got - want) <= 0.05:
        return
    if got >= 15:
        raise AssertionError(
            "with label smoothing the loss rises again for large gaps: the eps/V target on every other token "
            "punishes a near-zero probability. Measure the loss over a range of gaps."
        )
    eps, V = SMOOTH_EPS, SMOOTH_VOCAB
    if abs(got - math.log((1 - eps) / eps)) <= 0.05:
        raise AssertionError("the smoothed mass eps is spread over V tokens, and V - 1 of them share the rest of p.")
    raise AssertionError(
        f"measure it: logits = gap * F.one_hot(target, {V}), loss = cross_entropy(logits, target, label_smoothing={eps}), "
        "for gaps from 0 to 10, and take the gap with the smallest loss."
    )
