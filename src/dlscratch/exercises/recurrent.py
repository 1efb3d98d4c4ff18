r"""Exercise checkers for chapter 10, "Recurrent networks" (topic prefix ``rnn.``).

Every checker recomputes the answer independently (``torch.nn`` modules, the package's own
:class:`~dlscratch.layers.recurrent.GRU` and :class:`~dlscratch.layers.recurrent.RNNCell`, Python's
``math``, or an exhaustive search) and raises :class:`AssertionError` with a hint when the reader's answer
differs. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.recurrent import GRU, RNNCell
from .answers import require_callable, require_number
from .core import NotAttempted, exercise

__all__ = [
    "LSTM_PARAMS_INPUT",
    "LSTM_PARAMS_HIDDEN",
    "GRU_STEP_X",
    "GRU_STEP_H",
    "GRU_STEP_WEIGHTS",
    "FORGET_STEPS",
    "FORGET_KEEP",
    "BEAM_TABLE",
    "ORTH_INPUT",
    "ORTH_HIDDEN",
    "ORTH_BATCH",
    "ORTH_STEPS",
    "check_lstm_params",
    "check_gru_step",
    "check_forget_bias",
    "check_beam",
    "check_orthogonal",
    "check_bidirectional",
]

# rnn.lstm_params: one nn.LSTM layer with these sizes
LSTM_PARAMS_INPUT = 10
LSTM_PARAMS_HIDDEN = 20

# rnn.gru_step: one GRU step, torch's convention, input size 1, hidden size 2; rows r1 r2 z1 z2 n1 n2
GRU_STEP_X = (1.0,)
GRU_STEP_H = (0.5, -1.0)
GRU_STEP_WEIGHTS = {
    "weight_ih": ((1.0,), (0.0,), (0.0,), (-1.0,), (0.0,), (0.5,)),  # (3H, I)
    "weight_hh": ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (1.0, 0.0), (0.0, -1.0)),  # (3H, H)
    "bias_ih": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "bias_hh": (0.0, 0.0, 0.0, 0.0, 1.0, 0.0),
}

# rnn.forget_bias: keep at least this fraction of the gradient over this many steps
FORGET_STEPS = 50
FORGET_KEEP = 0.5

# rnn.orthogonal: the chapter's gradient measurement (I, H, B, T) with an orthogonal W_hh
ORTH_INPUT, ORTH_HIDDEN, ORTH_BATCH, ORTH_STEPS = 16, 64, 32, 60

# rnn.beam: next-token probabilities of a toy model over the tokens "a", "b" and "." (end);
# every output has at most two letters, so after two letters "." has probability 1
BEAM_TABLE: dict[str, dict[str, float]] = {
    "": {"a": 0.5, "b": 0.4, ".": 0.1},
    "a": {"a": 0.3, "b": 0.3, ".": 0.4},
    "b": {"a": 0.1, "b": 0.1, ".": 0.8},
}


@exercise("rnn.lstm_params")
def check_lstm_params(answer: Any) -> None:
    r"""The number of parameters of ``nn.LSTM(LSTM_PARAMS_INPUT, LSTM_PARAMS_HIDDEN)``."""
    got = require_number(answer, "the parameter count")
    I, H = LSTM_PARAMS_INPUT, LSTM_PARAMS_HIDDEN
    want = sum(p.numel() for p in nn.LSTM(I, H).parameters())
    if got == want:
        return
    if got == 4 * H * (I + H) + 4 * H:
        raise AssertionError("close: PyTorch keeps two bias vectors per layer, b_ih and b_hh (they are added).")
    if got == 4 * H * (I + H):
        raise AssertionError("you forgot the biases: each gate has a bias in b_ih and another in b_hh.")
    if got == H * (I + H) + 2 * H:
        raise AssertionError("that is one tanh RNN layer; an LSTM has four stacked blocks (i, f, g, o).")
    if got == 3 * H * (I + H) + 6 * H:
        raise AssertionError("that is a GRU (three blocks r, z, n); an LSTM has four (i, f, g, o).")
    raise AssertionError("count weight_ih (4H x I), weight_hh (4H x H), bias_ih (4H) and bias_hh (4H).")


def _gru_reference() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    cell = nn.GRUCell(len(GRU_STEP_X), len(GRU_STEP_H)).double()
    w = {k: torch.tensor(v, dtype=torch.float64) for k, v in GRU_STEP_WEIGHTS.items()}
    cell.load_state_dict(w)
    with torch.no_grad():
        out = cell(torch.tensor([GRU_STEP_X], dtype=torch.float64), torch.tensor([GRU_STEP_H], dtype=torch.float64))
    return out[0], w


def _gru_variant(w: dict[str, torch.Tensor], *, swap_z: bool = False, reset_before: bool = False,
                 swap_rz: bool = False) -> torch.Tensor:
    x, h = torch.tensor(GRU_STEP_X, dtype=torch.float64), torch.tensor(GRU_STEP_H, dtype=torch.float64)
    gi, gh = w["weight_ih"] @ x + w["bias_ih"], w["weight_hh"] @ h + w["bias_hh"]
    H = h.numel()
    r = torch.sigmoid(gi[:H] + gh[:H])
    z = torch.sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
    if swap_rz:
        r, z = z, r
    if reset_before:  # reset applied to h before the matmul, bias outside (Cho et al. 2014)
        n = torch.tanh(gi[2 * H :] + w["weight_hh"][2 * H :] @ (r * h) + w["bias_hh"][2 * H :])
    else:
        n = torch.tanh(gi[2 * H :] + r * gh[2 * H :])
    return z * n + (1 - z) * h if swap_z else (1 - z) * n + z * h


@exercise("rnn.gru_step")
def check_gru_step(answer: Any) -> None:
    r"""The new state :math:`h'` of one ``nn.GRUCell`` step with ``GRU_STEP_*``."""
    want, w = _gru_reference()
    try:
        got = torch.as_tensor(answer, dtype=torch.float64).flatten().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise AssertionError(f"give h' as a list of {want.numel()} numbers, got {answer!r}.") from err
    if got.numel() != want.numel():
        raise AssertionError(f"h' has {want.numel()} entries (the hidden size), got {got.numel()}.")
    if torch.allclose(got, want, atol=1e-3, rtol=0):
        return
    hints = [
        ({"swap_z": True}, "in PyTorch's convention z multiplies the *old* state: h' = (1 - z) n + z h."),
        ({"reset_before": True}, "PyTorch applies r to (W_hn h + b_hn), after the matmul, not to h before it."),
        ({"swap_rz": True}, "the rows are stacked r, z, n: the first H rows are the reset gate."),
    ]
    for kw, hint in hints:
        if torch.allclose(got, _gru_variant(w, **kw), atol=1e-3, rtol=0):
            raise AssertionError(hint)
    raise AssertionError("compute r and z (sigmoids), then n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), then h'.")


@exercise("rnn.forget_bias")
def check_forget_bias(answer: Any) -> None:
    r"""The smallest forget-gate bias with :math:`\sigma(b)^{N} \ge` ``FORGET_KEEP`` for ``N = FORGET_STEPS``."""
    got = require_number(answer, "the bias")
    p = FORGET_KEEP ** (1 / FORGET_STEPS)  # the forget gate value needed at every step
    want = math.log(p / (1 - p))  # the inverse of the sigmoid
    if math.isclose(got, want, abs_tol=1e-2):
        return
    if math.isclose(got, p, abs_tol=1e-3):
        raise AssertionError(f"{got:.4f} is the forget-gate *value* sigma(b) you need; invert the sigmoid to get b.")
    if got > want:
        raise AssertionError("that bias keeps enough gradient, but it is not the smallest one.")
    raise AssertionError(f"the factor after {FORGET_STEPS} steps is sigma(b)**{FORGET_STEPS}; solve for b.")


def _sequences() -> dict[str, float]:
    r"""Every finished output of the toy model and its probability, by exhaustive search."""
    out: dict[str, float] = {}
    frontier = [("", 1.0)]
    while frontier:
        prefix, p = frontier.pop()
        table = BEAM_TABLE.get(prefix, {".": 1.0})
        for tok, q in table.items():
            if tok == ".":
                out[prefix] = p * q
            else:
                frontier.append((prefix + tok, p * q))
    return out


def _beam(k: int) -> str:
    r"""Beam search with beam size ``k``; finished outputs compete on their probability."""
    beams = [("", 1.0, False)]
    while not all(done for _, _, done in beams):
        cands = []
        for prefix, p, done in beams:
            if done:
                cands.append((prefix, p, True))
                continue
            for tok, q in BEAM_TABLE.get(prefix, {".": 1.0}).items():
                cands.append((prefix, p * q, True) if tok == "." else (prefix + tok, p * q, False))
        beams = sorted(cands, key=lambda c: -c[1])[:k]
    return beams[0][0]


@exercise("rnn.beam")
def check_beam(answer: Any) -> None:
    r"""``(greedy, beam of 2)``: the outputs of greedy decoding and of beam search on ``BEAM_TABLE``."""
    if answer is None:
        raise NotAttempted
    if not (isinstance(answer, (tuple, list)) and len(answer) == 2 and all(isinstance(a, str) for a in answer)):
        raise AssertionError(f"give a pair of strings (greedy, beam), the letters without the end token; got {answer!r}.")
    greedy, beam = (a.rstrip(".") for a in answer)
    want_greedy, want_beam = _beam(1), _beam(2)
    if greedy != want_greedy:
        raise AssertionError("greedy takes the most likely token at every step, then stops at the first '.'.")
    if beam != want_beam:
        best = max(_sequences().items(), key=lambda kv: kv[1])
        raise AssertionError(
            f"greedy is right. For the beam keep the 2 most likely prefixes after the first step, extend both "
            f"and keep the 2 best (finished or not) again. (The most likely output overall has probability {best[1]:.2f}.)"
        )


def _rnn_factor(seed: int, orthogonal: bool) -> float:
    r"""Mean factor per step by which the state gradient of a tanh RNN shrinks between 5 and 40 steps back."""
    I, H, B, T = ORTH_INPUT, ORTH_HIDDEN, ORTH_BATCH, ORTH_STEPS
    gen = torch.Generator().manual_seed(seed)
    cell = RNNCell(I, H).double()
    with torch.no_grad():
        for p in cell.parameters():  # torch's default initialisation, from our own generator
            p.uniform_(-1 / math.sqrt(H), 1 / math.sqrt(H), generator=gen)
        if orthogonal:
            q, r = torch.linalg.qr(torch.randn(H, H, generator=gen, dtype=torch.float64))
            cell.weight_hh.copy_(q * torch.sign(torch.diagonal(r)))  # a uniformly random orthogonal matrix
    x = torch.randn(B, T, I, generator=gen, dtype=torch.float64)
    u = F.normalize(torch.randn(B, H, generator=gen, dtype=torch.float64), dim=-1)
    h = torch.zeros(B, H, dtype=torch.float64, requires_grad=True)
    states = []
    for t in range(T):
        if t:
            h.retain_grad()
        states.append(h)
        h = cell(x[:, t], h)
    (h * u).sum().backward()
    g = [s.grad.norm(dim=-1).mean().item() for s in states]
    return (g[T - 40] / g[T - 5]) ** (1 / 35)


@exercise("rnn.orthogonal")
def check_orthogonal(answer: Any) -> None:
    r"""The measured factor per step (5 to 40 steps back) of a tanh RNN whose :math:`W_{hh}` is orthogonal."""
    got = require_number(answer, "the factor per step")
    want = sum(_rnn_factor(s, True) for s in range(3)) / 3  # one draw varies by about 0.01
    if abs(got - want) <= 0.03:
        return
    default = sum(_rnn_factor(s, False) for s in range(3)) / 3
    if abs(got - default) <= 0.04:
        raise AssertionError(
            "that is the factor at PyTorch's default initialisation. Replace weight_hh with an orthogonal "
            "matrix (nn.init.orthogonal_ under torch.no_grad()) before running the sequences."
        )
    if abs(got - 1 / want) <= 0.05:
        raise AssertionError("you divided the wrong way round: the factor is (g at 40 steps / g at 5 steps) ** (1/35).")
    if got >= 0.97:
        raise AssertionError(
            "an orthogonal W_hh keeps every vector's norm, but each step also multiplies by diag(1 - h**2) < 1: "
            "the gradient still shrinks. Measure it."
        )
    raise AssertionError(
        f"measure it: RNNCell({ORTH_INPUT}, {ORTH_HIDDEN}) with nn.init.orthogonal_(cell.weight_hh), "
        f"x = torch.randn({ORTH_BATCH}, {ORTH_STEPS}, {ORTH_INPUT}), the chapter's state_gradient_norms, "
        "then (g[T - 40] / g[T - 5]) ** (1 / 35)."
    )


def _split_bidirectional(ref: nn.GRU, H: int, I: int) -> tuple[GRU, GRU]:
    fwd, bwd = GRU(I, H).double(), GRU(I, H).double()
    state = ref.state_dict()
    fwd.load_state_dict({k: v for k, v in state.items() if not k.endswith("_reverse")})
    bwd.load_state_dict({k.removesuffix("_reverse"): v for k, v in state.items() if k.endswith("_reverse")})
    return fwd, bwd


@exercise("rnn.bidirectional")
def check_bidirectional(answer: Any) -> None:
    r"""``answer(x, fwd, bwd)`` equals ``nn.GRU(..., bidirectional=True, batch_first=True)``'s output.

    ``fwd`` and ``bwd`` are the package's one-layer :class:`~dlscratch.layers.recurrent.GRU` holding
    torch's forward and ``_reverse`` weights; inputs are seeded random, float64.
    """
    fn = require_callable(answer, "bidirectional(x, fwd, bwd)")
    gen = torch.Generator().manual_seed(10)
    for B, T, I, H in ((3, 7, 5, 4), (2, 5, 3, 1), (1, 1, 2, 3)):
        ref = nn.GRU(I, H, batch_first=True, bidirectional=True).double()
        with torch.no_grad():
            for p in ref.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
        fwd, bwd = _split_bidirectional(ref, H, I)
        x = torch.randn(B, T, I, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            want, _ = ref(x)
            got = fn(x.clone(), fwd, bwd)
        if isinstance(got, tuple):
            raise AssertionError("return only the outputs (B, T, 2H), not a tuple with the final states.")
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a torch.Tensor, got {type(got).__name__}.")
        if tuple(got.shape) != (B, T, 2 * H):
            raise AssertionError(f"the output has shape (B, T, 2H) = {(B, T, 2 * H)}, got {tuple(got.shape)}.")
        got = got.detach().to(torch.float64)
        if torch.allclose(got, want, atol=1e-8):
            continue
        with torch.no_grad():
            f, b_flipped, b_same = fwd(x)[0], bwd(x.flip(1))[0], bwd(x)[0]
        if torch.allclose(got, torch.cat([f, b_flipped], -1), atol=1e-8):
            raise AssertionError(
                "the backward GRU's output at its step s belongs to position T - 1 - s: flip its outputs back "
                "along time before concatenating."
            )
        if torch.allclose(got, torch.cat([f, b_same], -1), atol=1e-8):
            raise AssertionError("the backward GRU must read the sequence from its end: flip x along time (dim 1) first.")
        if torch.allclose(got, torch.cat([b_flipped.flip(1), f], -1), atol=1e-8):
            raise AssertionError("torch puts the forward direction first: cat([forward, backward], dim=-1).")
        raise AssertionError(
            f"wrong output for (B, T, I, H) = {(B, T, I, H)}: the forward GRU reads x, the backward GRU reads x "
            "flipped along time, and its outputs are flipped back before the two are concatenated on the last dim."
        )
