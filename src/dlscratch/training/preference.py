r"""Prompts, responses and preference pairs for chapter 31, *Alignment*.

The toy task follows the IMDb experiment of the DPO paper (Rafailov et al., 2023): a prompt is
the start of a review snippet, a response is a fixed number of characters the policy writes
after it, and a judge scores the text. Every row of token ids is ``prompt + response`` with the
same prompt length :math:`P` and response length :math:`R` across a batch, so sampling,
scoring and training are batched tensor operations.

* :func:`encode_prompts`, :func:`sft_rows`: the prompts and the supervised rows, from snippets;
* :func:`sample_responses`: :math:`R` sampled tokens after each prompt (KV-cached generation);
* :func:`response_logprobs`: :math:`\log \pi(y \mid x) = \sum_t \log \pi(y_t \mid x, y_{<t})` over the
  response tokens only, with gradients;
* :class:`PreferencePairs` and :func:`preference_pairs`: chosen and rejected responses, ranked by a judge;
* :func:`sample_kl`, :func:`best_of_n`, :func:`best_of_n_kl`: the measurements of the reward-KL frontier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "encode_prompts",
    "sft_rows",
    "sample_responses",
    "token_logprobs",
    "response_logprobs",
    "PreferencePairs",
    "preference_pairs",
    "sample_kl",
    "best_of_n",
    "best_of_n_kl",
]


def encode_prompts(texts: Sequence[str], tok: Any, prompt_len: int, start: str = "\n") -> torch.Tensor:
    r"""``start`` and the first ``prompt_len - 1`` characters of each text long enough, as token ids :math:`(N, P)`.

    The pre-training stream separates snippets by ``start``, so a prompt begins as a snippet does.
    """
    keep = [t for t in texts if len(t) >= prompt_len - 1]
    return torch.tensor([tok.encode(start + t[: prompt_len - 1]) for t in keep])  # (N, P)


def sft_rows(texts: Sequence[str], tok: Any, prompt_len: int, response_len: int, start: str = "\n") -> tuple[torch.Tensor, torch.Tensor]:
    r"""Supervised rows: inputs ``ids[:, :-1]`` and targets ``ids[:, 1:]`` with the prompt's targets set to ``-1`` (ignored).

    Each row is ``start`` and the first :math:`P + R - 1` characters of a snippet; the loss falls on
    the :math:`R` response characters only, as in supervised fine-tuning on demonstrations.
    """
    rows = encode_prompts(texts, tok, prompt_len + response_len, start)  # (N, P + R)
    targets = rows[:, 1:].clone()  # (N, P + R - 1): position t predicts token t + 1
    targets[:, : prompt_len - 1] = -1  # the prompt's own tokens are given, not learned
    return rows[:, :-1], targets


def _check_fits(model: Any, prompt_len: int, response_len: int) -> None:
    block = model.config.block_size
    if prompt_len + response_len > block:
        raise ValueError(
            f"a prompt of {prompt_len} tokens plus {response_len} response tokens is {prompt_len + response_len} tokens, "
            f"longer than the policy's context block_size={block}"
        )


@torch.inference_mode()
def sample_responses(model: Any, prompts: torch.Tensor, response_len: int, generator: torch.Generator,
                     temperature: float = 1.0, batch_size: int = 1024) -> torch.Tensor:
    r"""``prompts`` followed by ``response_len`` tokens sampled from ``model``: :math:`(N, P + R)`.

    Args:
        model: a :class:`~dlscratch.models.decoder.DecoderLM`, or a
            :class:`~dlscratch.models.scalar_head.ScalarHeadLM` (its LM samples).
        prompts: :math:`(N, P)` token ids.
        response_len: :math:`R`.
        generator: the sampling stream (seeded).
        temperature: the sampling temperature.
        batch_size: rows generated at once.

    Raises:
        ValueError: if :math:`P + R` exceeds the model's ``block_size``.
    """
    lm = getattr(model, "lm", model)
    _check_fits(lm, prompts.size(1), response_len)
    dev = lm.lm_head.weight.device
    out = [lm.generate(p.to(dev), response_len, temperature=temperature, generator=generator) for p in prompts.split(batch_size)]
    return torch.cat(out)  # (N, P + R)


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x_{t+1} \mid x_{\le t})` at every position: logits :math:`(B, T, V)` of ``ids`` :math:`(B, T)` to :math:`(B, T - 1)`."""
    logp = F.log_softmax(logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # (B, T - 1, V): position t predicts t + 1
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T - 1)


def response_logprobs(model: Any, ids: torch.Tensor, prompt_len: int, per_token: bool = False) -> torch.Tensor:
    r"""The log-probability of each row's response given its prompt, summed over the response tokens only.

    .. math::

        \log \pi(y \mid x) = \sum_{t=P}^{P+R-1} \log \pi(x_t \mid x_{<t})

    The prompt's tokens are masked out: they are given, not chosen by the policy. With
    ``per_token``, the :math:`(B, R)` terms of the sum instead. Gradients flow (wrap the call in
    ``torch.no_grad`` for a frozen reference).

    Args:
        model: returns a tuple whose first item is the logits, ``model(ids)[0]`` :math:`(B, T, V)`.
        ids: :math:`(B, T)` rows ``prompt + response``.
        prompt_len: :math:`P \ge 1`, the number of prompt tokens at the start of every row.
        per_token: return the per-token terms.

    Raises:
        ValueError: if ``prompt_len`` leaves no prompt token or no response token.
    """
    if not 1 <= prompt_len < ids.size(1):
        raise ValueError(f"prompt_len must be in [1, {ids.size(1) - 1}] for rows of {ids.size(1)} tokens, got {prompt_len}")
    tok = token_logprobs(model(ids)[0], ids)[:, prompt_len - 1 :]  # (B, R): the response tokens' terms
    return tok if per_token else tok.sum(-1)


@dataclass(frozen=True)
class PreferencePairs:
    r"""Pairs of rows with the same prompt, the chosen one preferred to the rejected one.

    Raises:
        ValueError: if the shapes differ, the rows disagree on their prompts, or a pair's chosen
            and rejected rows are identical (a pair that carries no preference), counting them.
    """

    chosen: torch.Tensor  # (N, P + R) the preferred rows
    rejected: torch.Tensor  # (N, P + R) the other rows
    prompt_len: int  # P: prompt tokens at the start of each row

    def __post_init__(self) -> None:
        if self.chosen.shape != self.rejected.shape or self.chosen.dim() != 2:
            raise ValueError(f"chosen and rejected must be (N, T) of one shape, got {tuple(self.chosen.shape)} and {tuple(self.rejected.shape)}")
        P = self.prompt_len
        if (self.chosen[:, :P] != self.rejected[:, :P]).any():
            raise ValueError("every pair must share its prompt (the first prompt_len tokens)")
        same = int((self.chosen == self.rejected).all(-1).sum())
        if same:
            raise ValueError(f"{same} of {len(self)} pairs have identical chosen and rejected responses; drop them first")

    def __len__(self) -> int:
        return self.chosen.size(0)


def preference_pairs(samples: torch.Tensor, scores: torch.Tensor, prompt_len: int) -> tuple[PreferencePairs, dict[str, int]]:
    r"""For each prompt, its best and its worst of :math:`K` responses by ``scores``, as a pair.

    A prompt whose best and worst responses are identical, or whose responses all score the same,
    gives no pair: they are dropped and counted in the returned ``{"identical": ..., "tied": ...}``.

    Shape:
        - samples: :math:`(N, K, P + R)`; scores: :math:`(N, K)`
    """
    if samples.dim() != 3 or scores.shape != samples.shape[:2] or samples.size(1) < 2:
        raise ValueError(f"need samples (N, K, T) with K >= 2 and scores (N, K), got {tuple(samples.shape)} and {tuple(scores.shape)}")
    rows = torch.arange(samples.size(0))
    last_min = scores.size(1) - 1 - scores.flip(1).argmin(1)  # the last minimum: on a full tie, not the first (the argmax)
    best, worst = samples[rows, scores.argmax(1)], samples[rows, last_min]  # (N, T) each
    identical = (best == worst).all(-1)
    tied = ~identical & (scores.max(1).values == scores.min(1).values)  # different texts, no preference
    keep = ~identical & ~tied
    return PreferencePairs(best[keep], worst[keep], prompt_len), {"identical": int(identical.sum()), "tied": int(tied.sum())}


@torch.no_grad()
def sample_kl(policy: Any, ref: Any, ids: torch.Tensor, prompt_len: int, batch_size: int = 512) -> torch.Tensor:
    r"""Per-row :math:`\log \pi(y \mid x) - \log \pi_\text{ref}(y \mid x)` on rows sampled from :math:`\pi`; its mean estimates :math:`\mathrm{KL}(\pi \Vert \pi_\text{ref})`.

    .. math::

        \mathrm{KL}(\pi \Vert \pi_\text{ref}) = \mathbb{E}_{y \sim \pi}\Bigl[\log \frac{\pi(y \mid x)}{\pi_\text{ref}(y \mid x)}\Bigr]
    """
    out = [response_logprobs(policy, b, prompt_len) - response_logprobs(ref, b, prompt_len) for b in ids.split(batch_size)]
    return torch.cat(out)  # (N,)


def best_of_n(samples: torch.Tensor, proxy: torch.Tensor, n: int) -> torch.Tensor:
    r"""Indices of the best of the first ``n`` samples of each prompt by the ``proxy`` score: :math:`(N,)`.

    Shape:
        - samples: :math:`(N, K, T)`; proxy: :math:`(N, K)`, :math:`n \le K`
    """
    if not 1 <= n <= samples.size(1):
        raise ValueError(f"n must be in [1, K={samples.size(1)}], got n={n}")
    return proxy[:, :n].argmax(1)


def best_of_n_kl(n: int) -> float:
    r"""The KL of best-of-:math:`n` sampling from its base policy (the analytic bound, exact for distinct samples): :math:`\log n - (n - 1)/n`."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got n={n}")
    return math.log(n) - (n - 1) / n

