r"""Sampling from autoregressive character models, batched and seeded.

A model is any callable that maps a batch of contexts ``(N, block_size)`` of token ids to
next-token logits ``(N, V)``. Sampling draws

.. math::

    x_{t+1} \sim \operatorname{softmax}(\text{logits}(x_{t-B+1..t}) / \tau)

for all ``N`` sequences at once until each has produced the boundary token (id 0) or
``max_len`` tokens. Introduced in chapter 3 (bigram model) and used by every language model of
Part II.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["sample_sequences", "sample_words"]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


@torch.inference_mode()
def sample_sequences(
    logits_fn: LogitsFn,
    block_size: int,
    n: int,
    generator: torch.Generator,
    *,
    max_len: int = 50,
    temperature: float = 1.0,
    boundary: int = 0,
    device: torch.device | str = "cpu",
) -> list[list[int]]:
    r"""Draw ``n`` sequences of token ids, each ending before its first boundary token.

    Args:
        logits_fn: contexts ``(N, block_size)`` → logits ``(N, V)``.
        block_size: context length the model expects.
        n: number of sequences.
        generator: a seeded CPU :class:`torch.Generator`; the same seed gives the same samples.
        max_len: the most tokens a sequence may have.
        temperature: divides the logits (``< 1`` sharper, ``> 1`` flatter).
        boundary: the id that starts the context and ends a sequence.
        device: where ``logits_fn`` runs.

    Returns:
        ``n`` lists of token ids (boundary excluded).

    Raises:
        ValueError: on a non-positive ``n``, ``block_size``, ``max_len`` or ``temperature``.
    """
    for name, value in (("n", n), ("block_size", block_size), ("max_len", max_len), ("temperature", temperature)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    ctx = torch.full((n, block_size), boundary, dtype=torch.long, device=device)  # (N, block)
    out = torch.full((n, max_len), boundary, dtype=torch.long)  # (N, max_len)
    alive = torch.ones(n, dtype=torch.bool)
    for t in range(max_len):
        logits = logits_fn(ctx).float().cpu()  # (N, V)
        probs = torch.softmax(logits / temperature, dim=-1)
        ix = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (N,)
        ix = torch.where(alive, ix, torch.full_like(ix, boundary))
        out[:, t] = ix
        alive &= ix != boundary
        if not alive.any():
            break
        ctx = torch.cat([ctx[:, 1:], ix.to(ctx.device)[:, None]], dim=1)  # (N, block)
    seqs = []
    for row in out.tolist():
        seqs.append(row[: row.index(boundary)] if boundary in row else row)
    return seqs


def sample_words(
    logits_fn: LogitsFn,
    block_size: int,
    n: int,
    seed: int,
    itos: list[str],
    **kwargs: object,
) -> list[str]:
    r"""Sample ``n`` words with a generator seeded by ``seed`` and decode them with ``itos``."""
    g = torch.Generator().manual_seed(seed)
    seqs = sample_sequences(logits_fn, block_size, n, g, **kwargs)  # type: ignore[arg-type]
    return ["".join(itos[i] for i in s) for s in seqs]
