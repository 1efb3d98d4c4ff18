"""Greedy and beam search on a tiny recurrent step function: against brute force, greedy, and bad input."""

from __future__ import annotations

import itertools
from typing import NamedTuple

import pytest
import torch

from dlscratch.models.decoding import beam_search, greedy_search, length_penalty, never_emit

PAD, BOS, EOS = 0, 1, 2
V, H = 6, 8  # three specials and three ordinary tokens
IDS = dict(bos_id=BOS, eos_id=EOS, pad_id=PAD)


class Context(NamedTuple):
    source: torch.Tensor  # (N, H), fixed per source


class TinyDecoder:
    r"""h_t = tanh(h_{t-1} A + E[y_{t-1}] + c), logits = 3 h_t O + bias: the logits depend on the whole prefix."""

    def __init__(self, seed: int, bias: torch.Tensor | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        self.A, self.E, self.O = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((H, H), (V, H), (H, V)))
        self.bias = torch.zeros(V, dtype=torch.float64) if bias is None else bias

    def step(self, prefix: torch.Tensor, h: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(h @ self.A + self.E[prefix[:, -1]] + ctx.source)
        return 3 * h @ self.O + self.bias, h

    def log_prob(self, c: torch.Tensor, h0: torch.Tensor, ys: list[int]) -> float:
        r"""Independent scoring: run the recurrence over ``ys`` one source at a time."""
        prefix, h, total = torch.tensor([[BOS]]), h0[None], 0.0
        for y in ys:
            logits, h = self.step(prefix, h, Context(c[None]))
            total += float(logits.log_softmax(-1)[0, y])
            prefix = torch.cat([prefix, torch.tensor([[y]])], 1)
        return total


def _inputs(B: int = 5, seed: int = 0) -> tuple[torch.Tensor, Context]:
    g = torch.Generator().manual_seed(100 + seed)
    c = torch.randn(B, H, generator=g, dtype=torch.float64)
    return torch.tanh(c), Context(c)


def _brute_force(m: TinyDecoder, c: torch.Tensor, h0: torch.Tensor, max_len: int, alpha: float) -> tuple[float, list[int]]:
    r"""The best output over every sequence of emittable tokens: ending at <eos>, or max_len long."""
    best = (-float("inf"), [])
    for n in range(1, max_len + 1):
        for ys in itertools.product(range(EOS, V), repeat=n):
            if EOS in ys[:-1] or (n < max_len and ys[-1] != EOS):
                continue
            lp = m.log_prob(c, h0, list(ys))
            score = lp / float(length_penalty(torch.tensor(n), alpha))
            best = max(best, (score, list(ys)))
    return best


def _strip(row: torch.Tensor) -> list[int]:
    return [int(t) for t in row if t != PAD]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_of_all_tokens_over_two_steps_is_exhaustive(seed: int) -> None:
    # with K = V - 2 every one-token prefix survives step 1, and all length-<=2 outputs compete at step 2
    m, (h0, ctx) = TinyDecoder(seed), _inputs(seed=seed)
    tokens, scores = beam_search(m.step, h0, ctx, V - 2, 2, vocab_size=V, **IDS)
    for b in range(h0.size(0)):
        best_score, best = _brute_force(m, ctx.source[b], h0[b], 2, 0.0)
        assert _strip(tokens[b]) == best
        assert scores[b].item() == pytest.approx(best_score, abs=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_score_is_between_greedy_and_brute_force(alpha: float) -> None:
    m, (h0, ctx) = TinyDecoder(3), _inputs(seed=3)
    greedy = greedy_search(m.step, h0, ctx, 3, **IDS)
    tokens, scores = beam_search(m.step, h0, ctx, 3, 3, vocab_size=V, alpha=alpha, **IDS)
    lp = lambda ys: float(length_penalty(torch.tensor(len(ys)), alpha))  # noqa: E731
    for b in range(h0.size(0)):
        ys = _strip(tokens[b])
        assert scores[b].item() == pytest.approx(m.log_prob(ctx.source[b], h0[b], ys), abs=1e-9)
        g = _strip(greedy[b])
        ours = scores[b].item() / lp(ys)
        if alpha == 0.0:  # beam search keeps greedy's path unless it finds a better one
            assert ours >= m.log_prob(ctx.source[b], h0[b], g) - 1e-9
        assert ours <= _brute_force(m, ctx.source[b], h0[b], 3, alpha)[0] + 1e-9


@pytest.mark.parametrize("seed", [0, 4])
def test_beam_one_is_greedy_and_greedy_is_the_argmax_path(seed: int) -> None:
    m, (h0, ctx) = TinyDecoder(seed), _inputs(B=7, seed=seed)
    greedy = greedy_search(m.step, h0, ctx, 5, **IDS)
    for alpha in (0.0, 0.6):
        assert torch.equal(beam_search(m.step, h0, ctx, 1, 5, vocab_size=V, alpha=alpha, **IDS)[0], greedy)
    for b in range(7):  # independently: follow the argmax over the ordinary tokens and <eos>
        prefix, h, path = torch.tensor([[BOS]]), h0[b : b + 1], []
        while len(path) < 5 and EOS not in path:
            logits, h = m.step(prefix, h, Context(ctx.source[b : b + 1]))
            path.append(EOS + int(logits[0, EOS:].argmax()))
            prefix = torch.cat([prefix, torch.tensor([[path[-1]]])], 1)
        assert greedy[b].tolist() == path + [PAD] * (greedy.size(1) - len(path))


def test_pad_and_bos_are_never_emitted_even_when_most_likely() -> None:
    bias = torch.zeros(V, dtype=torch.float64)
    bias[[PAD, BOS]] = 50.0
    m, (h0, ctx) = TinyDecoder(0, bias), _inputs()
    for out in (greedy_search(m.step, h0, ctx, 4, **IDS), beam_search(m.step, h0, ctx, 3, 4, vocab_size=V, **IDS)[0]):
        for row in out.tolist():
            live = row[: row.index(EOS) + 1] if EOS in row else row
            assert BOS not in row and PAD not in live and all(t == PAD for t in row[len(live):])


@pytest.mark.parametrize("beam_size", [0, V - 1, True, 2.0])
def test_bad_beam_size_is_named(beam_size: object) -> None:
    m, (h0, ctx) = TinyDecoder(0), _inputs()
    with pytest.raises(ValueError, match=rf"beam_size must be an integer in 1\.\.{V - 2} .*got {beam_size!r}"):
        beam_search(m.step, h0, ctx, beam_size, 3, vocab_size=V, **IDS)  # type: ignore[arg-type]


def test_length_penalty_and_masking_helpers() -> None:
    torch.testing.assert_close(length_penalty(torch.tensor([1, 7]), 0.6), torch.tensor([1.0, 2.0**0.6], dtype=torch.float64))
    assert (length_penalty(torch.tensor([3, 9]), 0.0) == 1).all()
    z = never_emit(torch.zeros(2, 4), (0, 3))
    assert torch.isinf(z[:, [0, 3]]).all() and (z[:, [1, 2]] == 0).all()
