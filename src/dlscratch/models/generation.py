r"""Autoregressive generation: temperature, top-k and top-p (nucleus) sampling, KV-cached decoding.

The sampling helpers are small pure functions on a batch of next-token logits :math:`(B, V)`:

.. math::

    p_i = \operatorname{softmax}(z / \tau)_i \ \text{restricted to the kept set } S, \qquad
    S_{\text{top-}k} = \{\, k \text{ largest } z_i \,\}, \qquad
    S_{\text{top-}p} = \text{the smallest prefix of the sorted } p \text{ with mass} \ge p .

:func:`generate` works with any model whose ``forward(idx, kv_cache=...)`` returns
``(logits, loss)`` and that has ``config.block_size`` and ``new_kv_cache(batch_size)``, such as
:class:`dlscratch.models.gpt.GPT`. Introduced in chapter 17, *GPT*.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["top_k_filter", "top_p_filter", "sample_logits", "generate"]


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
    top-p. Sampling runs on the generator's device (CPU by default), so a seeded CPU generator
    gives the same tokens whatever device the model is on.

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
    z = logits.float() / temperature  # (B, V)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    probs = torch.softmax(z, dim=-1)  # (B, V)
    dev = generator.device if generator is not None else probs.device
    ids = torch.multinomial(probs.to(dev), num_samples=1, generator=generator)  # (B, 1)
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
    runs the model on that whole window (full recomputation). With it, the first step feeds the
    prompt into a :class:`~dlscratch.layers.attention.kv_cache.KVCache` and each later step
    feeds only the newest token. Both compute the same logits, so with the same seeded
    ``generator`` they sample the same tokens. Once the sequence outgrows ``block_size`` the
    window slides, every position embedding of the window changes and no cached key is valid
    any more: from then on the cached path also recomputes the window (so it stays exact).

    Put the model in ``eval()`` mode first: dropout would make the two paths differ.

    Args:
        model: e.g. a :class:`dlscratch.models.gpt.GPT`.
        idx: the prompt, at least one token per row.
        max_new_tokens: number of tokens to append.
        temperature, top_k, top_p, generator: see :func:`sample_logits`.
        use_cache: decode with a KV cache.

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
    cache = model.new_kv_cache(idx.size(0)) if use_cache else None
    for _ in range(max_new_tokens):
        if cache is not None and idx.size(1) <= block:
            logits, _ = model(idx[:, cache.length :], kv_cache=cache)  # the prompt, then one token
        else:
            logits, _ = model(idx[:, -block:])  # (B, T, V): the whole window
        nxt = sample_logits(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
        idx = torch.cat([idx, nxt[:, None]], dim=1)  # (B, T + 1)
    return idx
