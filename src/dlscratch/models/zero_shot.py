r"""Zero-shot classification with a language model: compare the likelihoods of label words after a prompt.

GPT-2 (Radford et al., 2019) does tasks it was never trained on by writing them as text. For a
classification, each label :math:`k` gets a word (or a few tokens) :math:`w_k`; the text :math:`x`
is wrapped in a prompt, and the model picks the label whose word it finds most likely next:

.. math::

    \hat{y}(x) = \arg\max_k \log P(w_k \mid \operatorname{prompt}(x))
    = \arg\max_k \sum_{j=1}^{|w_k|} \log P\bigl(w_{k,j} \mid \operatorname{prompt}(x), w_{k,<j}\bigr) .

Chapter 27, *GPT-1 and GPT-2*. Symbols: N sequences, L padded length, K labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["continuation_logprobs", "label_word_scores"]


@torch.inference_mode()
def continuation_logprobs(
    model: nn.Module, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], batch_size: int = 256
) -> torch.Tensor:
    r"""The log-probability :math:`\log P(\text{continuation} \mid \text{prompt})` under ``model``, summed over the continuation's tokens.

    Each pair is written as one row ``prompt + continuation``, right-padded; one forward pass per
    batch scores every continuation token at once (a gather of the log-softmax at the positions
    that predict them). The model runs in evaluation mode (restored afterwards).

    Args:
        model: a decoder LM returning ``(logits, loss)`` from ``model(idx)``, with ``config.block_size``.
        prompts: ``N`` non-empty token lists.
        continuations: ``N`` non-empty token lists, one per prompt.
        batch_size: rows scored per forward pass.

    Returns:
        ``(N,)`` float32 log-probabilities, on the CPU.

    Raises:
        ValueError: if the lists differ in length, a prompt or continuation is empty, or a row is
            longer than the model's ``block_size`` (naming both lengths).
    """
    if len(prompts) != len(continuations) or not prompts:
        raise ValueError(f"need as many prompts as continuations (and some), got {len(prompts)} and {len(continuations)}")
    if any(len(p) == 0 for p in prompts) or any(len(c) == 0 for c in continuations):
        raise ValueError("every prompt and every continuation needs at least one token")
    block = model.config.block_size
    longest = max(len(p) + len(c) for p, c in zip(prompts, continuations))
    if longest > block:
        raise ValueError(f"a prompt with its continuation has {longest} tokens, longer than the model's block_size={block}")
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for s in range(0, len(prompts), batch_size):
            P, Cs = prompts[s : s + batch_size], continuations[s : s + batch_size]
            rows = [list(p) + list(c) for p, c in zip(P, Cs)]
            L = max(map(len, rows))
            ids = torch.zeros(len(rows), L, dtype=torch.long)  # (n, L), padded with token 0 after each row
            for i, r in enumerate(rows):
                ids[i, : len(r)] = torch.tensor(r)
            start = torch.tensor([len(p) for p in P])  # (n,) index of the first continuation token
            end = start + torch.tensor([len(c) for c in Cs])  # (n,) one past its last
            logp = model(ids.to(dev))[0].float().log_softmax(-1)[:, :-1].cpu()  # (n, L - 1, V): position t predicts t + 1
            tok = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (n, L - 1) log P(ids[t + 1] | ids[<= t])
            t = torch.arange(1, L)  # (L - 1,) the predicted positions
            keep = (t >= start[:, None]) & (t < end[:, None])  # (n, L - 1) the continuation's tokens
            out.append((tok * keep).sum(-1))  # (n,)
    finally:
        model.train(was_training)
    return torch.cat(out)


def label_word_scores(
    model: nn.Module, prompts: Sequence[Sequence[int]], label_words: Sequence[Sequence[int]], batch_size: int = 256
) -> torch.Tensor:
    r"""The score :math:`\log P(w_k \mid \operatorname{prompt}_n)` of every label word after every prompt: :math:`(N, K)`.

    The zero-shot prediction is ``scores.argmax(-1)``.
    """
    if len(label_words) < 2:
        raise ValueError(f"need at least two label words to choose from, got {len(label_words)}")
    N, K = len(prompts), len(label_words)
    flat_p = [p for p in prompts for _ in range(K)]  # prompt n repeated K times
    flat_c = [w for _ in range(N) for w in label_words]
    return continuation_logprobs(model, flat_p, flat_c, batch_size).view(N, K)  # (N, K)
