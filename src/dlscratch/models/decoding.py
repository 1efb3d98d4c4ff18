r"""Decoding an encoder-decoder: greedy search and beam search, shared by every seq2seq model.

A model decodes by handing these functions a *step function*

.. math::

    \texttt{step\_fn}(\text{prefix}, \text{state}, \text{context}) \mapsto
    (\text{logits of the next token}, \text{new state}),

where ``prefix`` holds the :math:`N` output prefixes so far (``<bos>`` first), ``state`` is what
the decoder carries from step to step (a recurrent state; ``None`` for a Transformer, which
rereads the prefix) and ``context`` is what stays fixed for a source (the encoder's memory and
its mask). ``state`` and ``context`` are tensors, or tuples (named or not) of tensors, whose
first dimension indexes the :math:`N` rows. ``<pad>`` and ``<bos>`` are never emitted: their
logits are set to :math:`-\infty` at every step (:func:`never_emit`).

Beam search ranks its finished hypotheses with GNMT's length penalty (Wu et al., 2016),

.. math::

    \operatorname{score}(y) = \frac{\log p(y \mid x)}{\operatorname{lp}(|y|)}, \qquad
    \operatorname{lp}(L) = \left(\frac{5 + L}{6}\right)^{\alpha},

with :math:`|y|` counting the tokens up to and including ``<eos>``. Used by the RNN
encoder-decoder of chapter 10 and the Transformer of chapter 16.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["never_emit", "length_penalty", "greedy_search", "beam_search", "check_special_ids"]

State = Any  # None, a tensor, or a (named) tuple of states; the first dimension indexes the rows
StepFn = Callable[[torch.Tensor, State, State], tuple[torch.Tensor, State]]


def never_emit(logits: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    r"""``logits`` with the entries ``ids`` set to :math:`-\infty` (tokens that must never be output).

    Shape:
        - logits: :math:`(N, V)`; output: same
    """
    return logits.index_fill(-1, torch.tensor(list(ids), device=logits.device), float("-inf"))


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""GNMT's length normaliser (Wu et al., 2016): :math:`\mathrm{lp}(L) = ((5 + L)/6)^{\alpha}`.

    A hypothesis scores :math:`\log p(y) / \mathrm{lp}(|y|)`; :math:`\alpha = 0` ranks by
    :math:`\log p(y)` alone, larger :math:`\alpha` favours longer outputs. Computed in float64.
    """
    return ((5.0 + length.to(torch.float64)) / 6.0) ** alpha


def check_special_ids(vocab_size: int, **ids: int) -> None:
    r"""``ValueError`` naming any special id (``pad_id=...``) outside ``0 .. vocab_size - 1``, or two equal ids."""
    for name, value in ids.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size:
            raise ValueError(f"{name}={value!r} is not a valid id for a vocabulary of {vocab_size} tokens")
    if len(set(ids.values())) != len(ids):
        raise ValueError(f"special ids must differ, got {ids}")


def _map(state: State, fn: Callable[[torch.Tensor], torch.Tensor]) -> State:
    r"""Apply ``fn`` to every tensor of ``state``, keeping its structure."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a NamedTuple
        return type(state)(*(_map(s, fn) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_map(s, fn) for s in state)
    raise TypeError(f"a decoder state must be None, a tensor or a tuple of them, got {type(state).__name__}")


def _rows(*states: State) -> torch.Tensor:
    r"""The first tensor of the states (its first dimension is the number of rows)."""
    found: list[torch.Tensor] = []
    for s in states:
        _map(s, lambda t: found.append(t) or t)
    if not found:
        raise ValueError("state and context hold no tensor: the batch size is unknown")
    return found[0]


@torch.inference_mode()
def greedy_search(step_fn: StepFn, state: State, context: State, max_len: int, *, bos_id: int, eos_id: int,
                  pad_id: int) -> torch.Tensor:
    r"""Append the most likely token (never ``<pad>`` or ``<bos>``) until every row has emitted ``<eos>``.

    After its ``<eos>`` a row emits ``<pad>``. Decoding stops after ``max_len`` tokens, or
    earlier once every row is finished.

    Returns:
        :math:`(B, T)` ids after ``<bos>``, :math:`T \le` ``max_len``: the output, ``<eos>``, padding.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    first = _rows(state, context)
    B, dev = first.size(0), first.device
    ys = torch.full((B, 1), bos_id, dtype=torch.long, device=dev)  # (B, 1)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    for _ in range(max_len):
        logits, state = step_fn(ys, state, context)  # (B, V)
        nxt = never_emit(logits, (pad_id, bos_id)).argmax(-1).masked_fill(done, pad_id)  # (B,)
        ys = torch.cat([ys, nxt[:, None]], dim=1)  # (B, t + 1)
        done |= nxt == eos_id
        if bool(done.all()):
            break
    return ys[:, 1:]


@torch.inference_mode()
def beam_search(step_fn: StepFn, state: State, context: State, beam_size: int, max_len: int, *, vocab_size: int,
                bos_id: int, eos_id: int, pad_id: int, alpha: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Keep the ``beam_size`` most likely prefixes at every step (batched over sources and beams).

    All :math:`B K` hypotheses go through ``step_fn`` as one batch. Each step extends every
    live hypothesis by every token but ``<pad>`` and ``<bos>``, scores each extension by its
    total log-probability, and keeps the best :math:`K` of the :math:`K V` candidates of each
    source. A finished hypothesis (it emitted ``<eos>``) is extended only by ``<pad>``, at no
    cost, so it competes with the live ones on its log-probability. At the end the hypotheses
    are ranked by :math:`\log p(y \mid x) / \mathrm{lp}(|y|)` (:func:`length_penalty`).
    ``beam_size = 1`` is :func:`greedy_search`.

    Args:
        step_fn: see the module docstring.
        state: the decoder's first state, one row per source (``None`` if it has none).
        context: what stays fixed per source, one row per source; repeated once for the beams.
        beam_size: :math:`K`.
        max_len: the most output tokens.
        vocab_size: :math:`V`, the number of output ids.
        bos_id, eos_id, pad_id: the special ids of the output vocabulary.
        alpha: the length penalty's exponent (0: rank by log-probability alone).

    Returns:
        The best ids :math:`(B, T)` after ``<bos>`` (``<eos>`` included, then ``<pad>``;
        :math:`T \le` ``max_len``) and their log-probabilities :math:`(B,)`.

    Raises:
        ValueError: unless ``1 <= beam_size <= vocab_size - 2``, the number of tokens that can be
            emitted (all but ``<pad>`` and ``<bos>``).
    """
    K, V = beam_size, vocab_size
    if isinstance(K, bool) or not isinstance(K, int) or not 1 <= K <= V - 2:
        raise ValueError(f"beam_size must be an integer in 1..{V - 2} (the {V} tokens but <pad> and <bos>), "
                         f"got {beam_size!r}")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    state, context = (_map(s, lambda t: t.repeat_interleave(K, dim=0)) for s in (state, context))  # B K rows
    first = _rows(state, context)
    B, dev = first.size(0) // K, first.device
    ys = torch.full((B * K, 1), bos_id, dtype=torch.long, device=dev)  # (B K, 1)
    scores = None
    done = torch.zeros(B, K, dtype=torch.bool, device=dev)
    for _ in range(max_len):
        logits, state = step_fn(ys, state, context)  # (B K, V)
        logp = never_emit(logits.log_softmax(-1), (pad_id, bos_id)).view(B, K, V)  # (B, K, V)
        if scores is None:  # one live hypothesis at the start, so the K beams do not start as copies
            scores = torch.full((B, K), float("-inf"), device=dev, dtype=logp.dtype)
            scores[:, 0] = 0.0
        frozen = torch.full((V,), float("-inf"), device=dev, dtype=logp.dtype)
        frozen[pad_id] = 0.0  # the only continuation of a finished hypothesis
        logp = torch.where(done[..., None], frozen, logp)
        scores, ix = (scores[..., None] + logp).view(B, K * V).topk(K, dim=-1)  # (B, K)
        beam, tok = ix // V, ix % V  # which hypothesis each survivor extends, and with what
        rows = (beam + torch.arange(B, device=dev)[:, None] * K).view(-1)  # (B K,)
        ys = torch.cat([ys[rows], tok.view(-1, 1)], dim=1)  # (B K, t + 1)
        state = _map(state, lambda t: t[rows])  # the context is the same for every beam of a source
        done = done.gather(1, beam) | (tok == eos_id)
        if bool(done.all()):
            break
    out = ys[:, 1:].view(B, K, -1)  # (B, K, T)
    lengths = (out != pad_id).sum(-1)  # (B, K), <eos> included
    best = (scores.double() / length_penalty(lengths, alpha)).argmax(-1)  # (B,)
    pick = torch.arange(B, device=dev)
    return out[pick, best], scores[pick, best]
