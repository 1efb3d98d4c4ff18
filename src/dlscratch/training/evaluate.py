r"""Evaluation of language models on a whole split, in inference mode."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["mean_nll"]


@torch.inference_mode()
def mean_nll(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    batch_size: int = 65_536,
) -> float:
    r"""Mean negative log-likelihood of targets ``Y`` given contexts ``X`` over the whole split.

    .. math::

        \text{NLL} = -\frac{1}{N} \sum_{n=1}^{N} \log p_\theta(y_n \mid x_n)

    computed in chunks of ``batch_size`` examples (so any split fits in memory) and summed in
    float64.

    Args:
        logits_fn: contexts ``(N, ...)`` → logits ``(N, V)``.
        X: contexts, first dimension ``N``.
        Y: target ids ``(N,)``.
        batch_size: examples per chunk.

    Returns:
        The mean NLL in nats.

    Raises:
        ValueError: if ``X`` and ``Y`` have different lengths or are empty.
    """
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} examples but Y has {Y.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError("cannot evaluate on an empty split")
    total = torch.zeros((), dtype=torch.float64)
    for i in range(0, X.shape[0], batch_size):
        logits = logits_fn(X[i : i + batch_size])  # (b, V)
        y = Y[i : i + batch_size].to(logits.device)
        total += F.cross_entropy(logits.float(), y, reduction="sum").double().cpu()
    return (total / X.shape[0]).item()
