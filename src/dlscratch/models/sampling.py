r"""Sampling from next-token logits: temperature, top-k, top-p, and a batched sampler of words.

The filters are small pure functions on a batch of next-token logits :math:`(B, V)`:

.. math::

    p_i = \operatorname{softmax}(z / \tau)_i \ \text{restricted to the kept set } S, \qquad
    S_{\text{top-}k} = \{\, k \text{ largest } z_i \,\}, \qquad
    S_{\text{top-}p} = \text{the smallest prefix of the sorted } p \text{ with mass} \ge p .

**One way of drawing.** Every sampler of the book draws its tokens through
:func:`sample_logits`: one uniform number :math:`u \in [0, 1)` per row and per step from the
``generator`` it is given, on that generator's device, turned into a token by inverting the
cumulative distribution. The same seed therefore gives the same tokens whichever model produced
the logits and wherever it runs: Part II's name models (chapters 3-5, 10) through
:func:`sample_sequences` / :func:`sample_words`, chapter 17's GPT through
:func:`~dlscratch.models.generation.generate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["top_k_filter", "top_p_filter", "sample_logits", "sample_sequences", "sample_words"]

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    r"""Keep the ``k`` largest logits of each row, set the others to :math:`-\infty`.

    Logits tied with the :math:`k`-th largest are kept too. Fan et al. (2018).

    Shape:
        - logits: :math:`(\ldots, V)`; output: same
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k must be a positive integer, got top_k={k!r}")
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1), the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    r"""Nucleus filtering: keep the smallest set of most likely tokens whose probability is :math:`\ge p`.

    Sort the probabilities in decreasing order and keep token :math:`i` of that order iff the
    mass *before* it is still below :math:`p`: :math:`\sum_{j < i} p_{(j)} < p`. The most
    likely token is always kept. Holtzman et al. (2020).

    Shape:
        - logits: :math:`(\ldots, V)`; output: same
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got top_p={p!r}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # (..., V), mass of the tokens ranked above
    drop_sorted = mass_before >= p  # never true for the first token
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Draw one token id per row from ``logits``: divide by the temperature, filter, sample.

    ``temperature=0`` means greedy decoding (the argmax). Filters apply in the order top-k, then
    top-p. The draw inverts the cumulative distribution: with :math:`u \sim \mathcal{U}[0, 1)`,
    the sampled id is the first :math:`i` with :math:`F_i = \sum_{j \le i} p_j > u` (what
    ``torch.multinomial`` does for one sample, in a few small operations; every sampler of the
    book draws this way). :math:`F` is divided by its last entry, so that it ends at exactly 1
    despite rounding and every :math:`u < 1` finds a token of nonzero probability. Sampling runs
    on the generator's device (CPU by default), so a seeded CPU generator gives the same tokens
    whatever device the model is on. Greedy decoding draws nothing.

    Args:
        logits: next-token logits.
        temperature: :math:`\tau \ge 0`; below 1 sharpens, above 1 flattens the distribution.
        top_k: keep only the ``top_k`` most likely tokens (``None``: all).
        top_p: keep the smallest set with probability mass :math:`\ge` ``top_p`` (``None``: all).
        generator: the random stream; the global one when ``None``.

    Returns:
        Token ids, ``torch.long``, on the device of ``logits``.

    Shape:
        - logits: :math:`(B, V)`; output: :math:`(B,)`
    """
    if logits.dim() != 2:
        raise ValueError(f"sample_logits expects logits of shape (B, V), got {tuple(logits.shape)}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got temperature={temperature!r}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    z = logits.float() if temperature == 1 else logits.float() / temperature  # (B, V)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    probs = torch.softmax(z, dim=-1)  # (B, V)
    dev = generator.device if generator is not None else probs.device
    cdf = probs.to(dev).cumsum(dim=-1)  # (B, V), non-decreasing
    cdf = cdf / cdf[:, -1:]  # ends at exactly 1 (x / x == 1 in floating point)
    u = torch.rand(probs.size(0), 1, generator=generator, device=dev)  # (B, 1), in [0, 1)
    ids = torch.searchsorted(cdf, u, right=True)  # (B, 1): first i with cdf_i > u, so p_i > 0
    return ids.squeeze(1).to(logits.device)  # (B,)


@torch.inference_mode()
def sample_sequences(
    logits_fn: LogitsFn,
    block_size: int,
    n: int,
    generator: torch.Generator,
    *,
    max_len: int = 50,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    boundary: int = 0,
    device: torch.device | str = "cpu",
) -> list[list[int]]:
    r"""Draw ``n`` sequences of token ids at once, each ending before its first boundary token.

    Every context starts as ``block_size`` boundary tokens; each step draws

    .. math::

        x_{t+1} \sim \operatorname{softmax}(\text{logits}(x_{t-B+1..t}) / \tau)

    with :func:`sample_logits` for all rows, and slides the contexts by one token. A row is done
    once it draws the boundary token (chapter 3's ``.``, id 0 by default) or has ``max_len`` tokens.

    Args:
        logits_fn: contexts ``(N, block_size)`` → logits ``(N, V)``, e.g. a Part II model's ``logits``.
        block_size: context length the model expects.
        n: number of sequences.
        generator: a seeded CPU :class:`torch.Generator`; the same seed gives the same samples.
        max_len: the most tokens a sequence may have.
        temperature, top_k, top_p: see :func:`sample_logits` (``temperature=0`` is greedy).
        boundary: the id that starts the context and ends a sequence (a tokenizer's ``boundary_id``).
        device: where ``logits_fn`` runs.

    Returns:
        ``n`` lists of token ids (boundary excluded).

    Raises:
        ValueError: on a non-positive ``n``, ``block_size`` or ``max_len``, or a negative ``temperature``.
    """
    for name, value in (("n", n), ("block_size", block_size), ("max_len", max_len)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    ctx = torch.full((n, block_size), boundary, dtype=torch.long, device=device)  # (N, block)
    out = torch.full((n, max_len), boundary, dtype=torch.long)  # (N, max_len)
    alive = torch.ones(n, dtype=torch.bool)
    for t in range(max_len):
        ix = sample_logits(logits_fn(ctx), temperature, top_k, top_p, generator).cpu()  # (N,)
        ix = ix.masked_fill(~alive, boundary)
        out[:, t] = ix
        alive &= ix != boundary
        if not alive.any():
            break
        ctx = torch.cat([ctx[:, 1:], ix.to(ctx.device)[:, None]], dim=1)  # (N, block)
    return [row[: row.index(boundary)] if boundary in row else row for row in out.tolist()]


def sample_words(
    logits_fn: LogitsFn,
    block_size: int,
    n: int,
    seed: int,
    itos: Sequence[str],
    **kwargs: object,
) -> list[str]:
    r"""Sample ``n`` words with a generator seeded by ``seed`` and spell them with ``itos``.

    ``kwargs`` go to :func:`sample_sequences`.
    """
    g = torch.Generator().manual_seed(seed)
    seqs = sample_sequences(logits_fn, block_size, n, g, **kwargs)  # type: ignore[arg-type]
    return ["".join(itos[i] for i in s) for s in seqs]
