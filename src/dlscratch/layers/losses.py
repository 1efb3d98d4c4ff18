r"""Classification losses written from tensor operations.

The softmax cross-entropy of logits :math:`\mathbf{z} \in \mathbb{R}^K` against a target
distribution :math:`\mathbf{q}` is :math:`-\sum_k q_k \log \operatorname{softmax}(\mathbf{z})_k`.
With a one-hot target it is the negative log-likelihood of the true class; label smoothing mixes
the one-hot target with the uniform distribution. Introduced in chapter 6 (deep networks); label
smoothing in chapter 8 (regularization).
"""

from __future__ import annotations

import torch

from .activations import log_softmax

__all__ = ["cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Softmax cross-entropy with optional label smoothing, as ``F.cross_entropy``.

    With :math:`\varepsilon` = ``label_smoothing`` the target of example :math:`n` is the mixture
    :math:`\mathbf{q}_n = (1 - \varepsilon)\,\mathbf{e}_{y_n} + \varepsilon\,\mathbf{u}` of its
    one-hot vector and the uniform distribution :math:`u_k = 1/K`, so

    .. math::

        \ell_n = -\sum_{k=1}^{K} q_{nk} \log p_{nk}
        = (1 - \varepsilon)\bigl(-\log p_{n y_n}\bigr)
        + \varepsilon \Bigl(-\frac{1}{K}\sum_{k=1}^{K} \log p_{nk}\Bigr),
        \qquad \mathbf{p}_n = \operatorname{softmax}(\mathbf{z}_n),

    computed with the stable :func:`~dlscratch.layers.activations.log_softmax`. The gradient
    with respect to the logits is :math:`\mathbf{p}_n - \mathbf{q}_n` (divided by :math:`N` for
    ``reduction="mean"``). Derivation: chapter 6; label smoothing: chapter 8.

    Args:
        logits: unnormalised scores, one row per example.
        target: the true class of each example, integers in ``[0, K)``.
        label_smoothing: :math:`\varepsilon \in [0, 1]`; 0 is the plain cross-entropy.
        reduction: ``"mean"`` over examples, ``"sum"``, or ``"none"`` for the per-example losses.

    Returns:
        A scalar, or the ``(N,)`` per-example losses for ``reduction="none"``.

    Raises:
        ValueError: on shapes that do not match, a non-integer target, an out-of-range target on
            the CPU (on a GPU the check would cost two host syncs per step; torch's indexing
            error reports it there), or an invalid ``label_smoothing`` or ``reduction``.

    Shape:
        - logits: :math:`(N, K)`
        - target: :math:`(N,)`
        - output: :math:`()` or :math:`(N,)`
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, K), got {tuple(logits.shape)}")
    N, K = logits.shape
    if target.shape != (N,):
        raise ValueError(f"target must have shape ({N},) to match logits {tuple(logits.shape)}, got {tuple(target.shape)}")
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class ids, got dtype {target.dtype}")
    if N > 0 and target.device.type == "cpu" and (target.min() < 0 or target.max() >= K):  # elsewhere gather raises: no host sync
        raise ValueError(f"target ids must lie in [0, {K}), got min {target.min().item()} and max {target.max().item()}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")

    logp = log_softmax(logits, dim=-1)  # (N, K)
    nll = -logp.gather(1, target.long()[:, None]).squeeze(1)  # (N,) -log p of the true class
    loss = nll
    if label_smoothing > 0.0:
        uniform = -logp.mean(dim=-1)  # (N,) cross-entropy against the uniform distribution
        loss = (1.0 - label_smoothing) * nll + label_smoothing * uniform
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
