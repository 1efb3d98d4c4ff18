r"""Autoregressive generation with a KV cache; each token is drawn by :func:`~dlscratch.models.sampling.sample_logits`.

:func:`generate` works with any :class:`~dlscratch.models.decoder.DecoderLM`, such as
:class:`dlscratch.models.gpt.GPT`, or its :class:`~dlscratch.models.fused_decoder.FusedDecoder`. Introduced in chapter 17, *GPT*.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from .sampling import sample_logits

__all__ = ["generate", "GenerationTiming", "time_generation"]


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
