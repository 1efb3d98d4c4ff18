r"""Autoregressive generation: temperature, top-k and top-p (nucleus) sampling, KV-cached decoding.

The sampling helpers are small pure functions on a batch of next-token logits :math:`(B, V)`:

.. math::

    p_i = \operatorname{softmax}(z / \tau)_i \ \text{restricted to the kept set } S, \qquad
    S_{\text{top-}k} = \{\, k \text{ largest } z_i \,\}, \qquad
    S_{\text{top-}p} = \text{the smallest prefix of the sorted } p \text{ with mass} \ge p .

:func:`generate` works with any :class:`~dlscratch.models.decoder.DecoderLM`, such as
:class:`dlscratch.models.gpt.GPT`, or its :class:`~dlscratch.models.fused_decoder.FusedDecoder`. Introduced in chapter 17, *GPT*.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["top_k_filter", "top_p_filter", "sample_logits", "generate", "GenerationTiming", "time_generation"]


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
    ``torch.multinomial`` does for one sample, in a few small operations). :math:`F` is divided
    by its last entry, so that it ends at exactly 1 despite rounding and every :math:`u < 1`
    finds a token of nonzero probability. Sampling runs on the generator's device (CPU by
    default), so a seeded CPU generator gives the same tokens whatever device the model is on.

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
def generate(
    model: Any,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    r"""Append ``max_new_tokens`` tokens to ``idx``, each sampled from the model's next-token logits.

    Every token is conditioned on the last ``block_size`` tokens. Without the cache, each step
    runs the model on that whole window (full recomputation). With it, the model's attention
    layers get KV caches (``model.start_cache``): the first step feeds the prompt, each later step
    only the newest token. Both compute the same logits, so with the same seeded ``generator``
    they sample the same tokens. Once the sequence outgrows ``block_size`` the window slides, and
    with learned positions every position of the window changes: no cached key is valid any
    more, so from then on the caches are dropped and the window recomputed (exact either way).
    The caches are dropped at the end.

    Put the model in ``eval()`` mode first: dropout would make the two paths differ.

    Args:
        model: a :class:`~dlscratch.models.decoder.DecoderLM` (such as
            :class:`~dlscratch.models.gpt.GPT`) or its
            :class:`~dlscratch.models.fused_decoder.FusedDecoder`: ``model(idx)`` returns
            ``(logits, _)``; ``start_cache``, ``stop_cache``, ``cache_length`` and ``config.block_size``.
        idx: the prompt, at least one token per row.
        max_new_tokens: number of tokens to append.
        temperature, top_k, top_p, generator: see :func:`sample_logits`.
        use_cache: decode with KV caches.

    Returns:
        The prompt followed by the new tokens.

    Shape:
        - idx: :math:`(B, T_0)`; output: :math:`(B, T_0 + \text{max\_new\_tokens})`
    """
    if idx.dim() != 2 or idx.size(1) < 1:
        raise ValueError(f"idx must be (B, T) with T >= 1, got shape {tuple(idx.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    block = model.config.block_size
    B, T0 = idx.shape
    out = torch.empty(B, T0 + max_new_tokens, dtype=idx.dtype, device=idx.device)  # (B, T0 + n)
    out[:, :T0] = idx
    cached = use_cache and T0 <= block
    if cached:
        model.start_cache(B)
    try:
        for t in range(T0, T0 + max_new_tokens):  # t tokens so far
            if cached and t > block:  # the window slides: recompute from now on
                model.stop_cache()
                cached = False
            if cached:
                logits, _ = model(out[:, model.cache_length() : t])  # the prompt, then one token
            else:
                logits, _ = model(out[:, max(0, t - block) : t])  # (B, T, V): the whole window
            out[:, t] = sample_logits(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
    finally:
        model.stop_cache()
    return out


@dataclass(frozen=True)
class GenerationTiming:
    r"""Best wall-clock times of generating ``n_tokens`` tokens with and without the KV cache."""

    n_tokens: int
    cached_seconds: float
    full_seconds: float  # full recomputation of the window at every step

    @property
    def speedup(self) -> float:
        r"""How many times faster the cached generation is: ``full_seconds / cached_seconds``."""
        return self.full_seconds / self.cached_seconds


def time_generation(model: Any, n_tokens: int = 512, rounds: int = 3, seed: int = 0) -> GenerationTiming:
    r"""Time :func:`generate` of ``n_tokens`` tokens from a one-token prompt, with and without the cache.

    Each way runs once untimed (the first run pays one-off costs, such as fresh memory for every
    new sequence length), then ``rounds`` times, alternating between the two so that a slow spell
    of the machine hits both; the best time of each is kept. Batch 1, sampling at temperature 1
    with a generator seeded by ``seed``; the two ways must produce the same tokens.

    Args:
        model: in ``eval()`` mode, with ``config.block_size > n_tokens`` so that every step
            stays inside one context (the cache is then used throughout).
        n_tokens: tokens to generate.
        rounds: timed runs of each way.
        seed: seed of the sampling generator (the same for every run).

    Returns:
        The :class:`GenerationTiming`.

    Raises:
        ValueError: if ``block_size`` cannot hold the prompt and all the tokens, or ``rounds < 1``.
        RuntimeError: if the two ways generate different tokens.
    """
    if model.config.block_size < n_tokens + 1:
        raise ValueError(f"time_generation needs block_size >= n_tokens + 1 = {n_tokens + 1}, got {model.config.block_size}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    dev = next(model.parameters()).device
    start = torch.zeros(1, 1, dtype=torch.long, device=dev)  # (1, 1): one token, id 0
    times: dict[bool, list[float]] = {True: [], False: []}
    outputs: dict[bool, torch.Tensor] = {}
    for rnd in range(rounds + 1):  # round 0 is the warm-up
        for use_cache in (True, False):
            t0 = time.perf_counter()
            outputs[use_cache] = generate(
                model, start, n_tokens, generator=torch.Generator().manual_seed(seed), use_cache=use_cache
            )
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if rnd > 0:
                times[use_cache].append(time.perf_counter() - t0)
    if not torch.equal(outputs[True], outputs[False]):
        raise RuntimeError("generation with and without the KV cache produced different tokens")
    return GenerationTiming(n_tokens, min(times[True]), min(times[False]))
