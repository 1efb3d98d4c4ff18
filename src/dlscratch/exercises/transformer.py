r"""Exercise checkers for chapter 16, "The encoder-decoder Transformer" (prefix ``encdec.``).

Each checker recomputes the answer independently (torch's own layers and functions, or plain
Python) and raises :class:`AssertionError` with a hint when the reader's answer differs. The
reference solutions live in the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .answers import require_callable
from .core import exercise

__all__ = ["check_decoder_params", "check_peak_lr", "check_beam_step"]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@exercise("encdec.decoder_params")
def check_decoder_params(answer: Any) -> None:
    r"""``answer(d_model, dim_feedforward)`` = parameters of one decoder layer (biases included)."""
    require_callable(answer, "decoder_params")
    for C, F_ in ((8, 32), (512, 2048), (6, 10)):
        want = _count(nn.TransformerDecoderLayer(C, 2, F_))
        got = answer(C, F_)
        if got == want:
            continue
        if got == want - 4 * C * C - 4 * C:
            raise AssertionError(f"for C={C}, F={F_} you are one attention block short: the decoder has "
                                 "self-attention and cross-attention.")
        if got == want - 2 * C:
            raise AssertionError(f"for C={C}, F={F_} you are 2C short: a decoder layer has three layer norms.")
        raise AssertionError(f"decoder_params({C}, {F_}) = {got}, expected {want}. Count two attention blocks, "
                             "the FFN and three norms.")


@exercise("encdec.peak_lr")
def check_peak_lr(answer: Any) -> None:
    r"""``answer(d_model, warmup_steps)`` = the largest learning rate of the paper's schedule."""
    require_callable(answer, "peak_lr")
    for d, w in ((512, 4000), (64, 100), (1024, 10)):
        want = max(d**-0.5 * min(n**-0.5, n * w**-1.5) for n in range(1, 3 * w))  # brute force over steps
        got = answer(d, w)
        if isinstance(got, (int, float, torch.Tensor)) and math.isclose(float(got), want, rel_tol=1e-6):
            continue
        if isinstance(got, (int, float)) and math.isclose(float(got), want * d**0.5, rel_tol=1e-6):
            raise AssertionError("you left out the factor d_model^(-1/2) in front of the min.")
        raise AssertionError(f"peak_lr({d}, {w}) = {got!r}, expected {want:.3e}: the two branches of the min "
                             "meet at step_num = warmup_steps.")


@exercise("encdec.beam_step")
def check_beam_step(answer: Any) -> None:
    r"""``answer(scores, logp, K)`` = the K best one-token extensions: (scores, parent, token), best first."""
    require_callable(answer, "beam_step")
    gen = torch.Generator().manual_seed(16)
    scores = -torch.rand(3, generator=gen, dtype=torch.float64).sort(descending=True).values * 4  # (K,)
    logp = torch.randn(3, 7, generator=gen, dtype=torch.float64).log_softmax(-1)  # (K, V)
    logp[1, 2] = -0.01  # a second hypothesis with one very likely continuation
    cands = sorted(((scores[k] + logp[k, v]).item(), k, v) for k in range(3) for v in range(7))[::-1][:3]
    got = answer(scores.clone(), logp.clone(), 3)
    if not isinstance(got, tuple) or len(got) != 3:
        raise AssertionError("return a tuple (new_scores, parent, token) of three tensors of length K.")
    new, parent, token = (torch.as_tensor(t) for t in got)
    if [(int(p), int(t)) for p, t in zip(parent, token)] == [(k, v) for _, k, v in cands] and torch.allclose(
            new.to(torch.float64), torch.tensor([c for c, _, _ in cands], dtype=torch.float64)):
        return
    per_beam = logp.argmax(-1).tolist()
    if sorted(int(t) for t in token) == sorted(per_beam):
        raise AssertionError("that extends every hypothesis by its own best token; compare all K x V extensions "
                             "together, so one hypothesis may get several survivors and another none.")
    if torch.equal(torch.as_tensor(token).sort().values, logp.view(-1).topk(3).indices.remainder(7).sort().values):
        raise AssertionError("add each hypothesis's score so far to its next-token log-probabilities before ranking.")
    raise AssertionError("rank scores[k] + logp[k, v] over all (k, v), keep the K largest, best first.")
