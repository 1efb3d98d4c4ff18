r"""Exercise checkers for chapters 15 and 16 (prefixes ``enc.`` and ``encdec.``).

Each checker recomputes the answer independently (torch's own layers and functions, or plain
Python) and raises :class:`AssertionError` with a hint when the reader's answer differs. The
reference solutions live in the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .answers import require_callable, require_number
from .core import NotAttempted, exercise

__all__ = ["check_layer_params", "check_layer_norm", "check_ffn_share"]
__all__ += ["check_decoder_params", "check_peak_lr", "check_beam_step"]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@exercise("enc.layer_params")
def check_layer_params(answer: Any) -> None:
    r"""``answer(d_model, dim_feedforward)`` = parameters of one encoder layer (biases included)."""
    require_callable(answer, "encoder_params")
    for C, F_ in ((8, 32), (512, 2048), (6, 10)):
        want = _count(nn.TransformerEncoderLayer(C, 2, F_))
        got = answer(C, F_)
        if got == want:
            continue
        attn_only = 4 * C * C + 4 * C
        if got == want - 4 * C:
            raise AssertionError(f"for C={C}, F={F_} you are 4C short: each of the two layer norms has C weights and C biases.")
        if got == want - attn_only + 4 * C * C:
            raise AssertionError(f"for C={C}, F={F_} you are 4C short: the four attention projections have biases too.")
        if got == want - F_ - C:
            raise AssertionError(f"for C={C}, F={F_} you forgot the FFN biases (F + C).")
        raise AssertionError(f"encoder_params({C}, {F_}) = {got}, expected {want}. Add attention, FFN and two norms.")


@exercise("enc.layer_norm")
def check_layer_norm(answer: Any) -> None:
    r"""``answer(x, weight, bias, eps)`` must equal ``F.layer_norm`` over the last dimension."""
    require_callable(answer, "my_layer_norm")
    gen = torch.Generator().manual_seed(3)
    x = 3 * torch.randn(2, 5, 7, generator=gen, dtype=torch.float64) + 1
    w, b = torch.randn(7, generator=gen, dtype=torch.float64), torch.randn(7, generator=gen, dtype=torch.float64)
    want = F.layer_norm(x, (7,), w, b, 1e-5)
    got = answer(x.clone(), w.clone(), b.clone(), 1e-5)
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        raise AssertionError(f"return a tensor of the input's shape {tuple(want.shape)}.")
    got = got.detach().to(torch.float64)
    if torch.allclose(got, want, atol=1e-8):
        return
    mu = x.mean(-1, keepdim=True)
    unbiased = (x - mu) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5) * w + b
    if torch.allclose(got, unbiased, atol=1e-8):
        raise AssertionError("use the biased variance (divide by C, not C - 1): x.var(-1, unbiased=False).")
    over_batch = (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, unbiased=False, keepdim=True) + 1e-5) * w + b
    if torch.allclose(got, over_batch, atol=1e-8):
        raise AssertionError("that normalises over the batch (batch norm); layer norm uses the last dimension.")
    raise AssertionError("not quite: subtract the mean over the last dimension, divide by sqrt(var + eps), then scale and shift.")


FFN_SHARE_C, FFN_SHARE_F = 512, 2048  # enc.ffn_share: the base Transformer's sizes


@exercise("enc.ffn_share")
def check_ffn_share(answer: Any) -> None:
    r"""The fraction of an encoder layer's parameters that sit in its FFN (base model)."""
    got = require_number(answer, "the answer")
    layer = nn.TransformerEncoderLayer(FFN_SHARE_C, 8, FFN_SHARE_F)
    want = (_count(layer.linear1) + _count(layer.linear2)) / _count(layer)
    if abs(got - want) < 1e-3:
        return
    if 1 < got <= 100 and abs(got / 100 - want) < 1e-3:
        raise AssertionError("give a fraction between 0 and 1, not a percentage.")
    raise AssertionError("count the FFN (2CF + F + C) and divide by the whole layer (attention, FFN and two norms).")


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
