r"""Classification losses written from tensor operations.

The softmax cross-entropy of logits :math:`\mathbf{z} \in \mathbb{R}^K` against a target
distribution :math:`\mathbf{q}` is :math:`-\sum_k q_k \log \operatorname{softmax}(\mathbf{z})_k`.
With a one-hot target it is the negative log-likelihood of the true class; label smoothing mixes
the one-hot target with the uniform distribution. Introduced in chapter 6 (deep networks); label
smoothing in chapter 8 (regularization). The contrastive losses of chapter 34 (CLIP) are the
same cross-entropy over a similarity matrix, whose diagonal holds the matching pairs.
"""

from __future__ import annotations

import torch

from .activations import log_softmax

__all__ = ["cross_entropy", "info_nce", "clip_loss"]

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


def _check_similarity(logits: torch.Tensor, square: bool) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] == 0:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"expected a non-empty (N, M) matrix of similarity logits, got {shape}")
    N, M = logits.shape
    if square and N != M:
        raise ValueError(f"the CLIP loss needs a square (N, N) matrix (image n pairs with text n), got ({N}, {M})")
    if M < N:
        raise ValueError(f"need at least as many candidates as queries (the positive of row n is column n), got ({N}, {M})")


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    r"""InfoNCE with in-batch negatives: row :math:`n` must pick column :math:`n` among all columns.

    .. math::

        \mathcal{L}_{\text{InfoNCE}} = -\frac{1}{N} \sum_{n=1}^{N}
        \log \frac{\exp(s_{nn})}{\sum_{m=1}^{M} \exp(s_{nm})}

    (van den Oord et al., 2018): the cross-entropy of every row against the "class" on the
    diagonal. :math:`s_{nm}` are logits, similarities already multiplied by the inverse
    temperature. The :math:`M - 1` other columns are the negatives; extra columns beyond
    :math:`N` (hard negatives that pair with no query) are allowed. Chapter 34 (CLIP) and
    chapter 32 (a bi-encoder retriever).

    Raises:
        ValueError: unless ``logits`` is a non-empty :math:`(N, M)` matrix with :math:`M \ge N`.

    Shape:
        - logits: :math:`(N, M)`, :math:`M \ge N`; output: :math:`()`
    """
    _check_similarity(logits, square=False)
    target = torch.arange(logits.shape[0], device=logits.device)  # (N,) the positive of row n is column n
    return cross_entropy(logits, target)


def clip_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    r"""CLIP's symmetric contrastive loss: InfoNCE over the rows (image to text) and the columns (text to image).

    .. math::

        \mathcal{L}_{\text{CLIP}} = \tfrac12 \bigl(\mathcal{L}_{\text{InfoNCE}}(S) + \mathcal{L}_{\text{InfoNCE}}(S^\top)\bigr),
        \qquad S_{nm} = e^{t}\, \hat{\mathbf{u}}_n^\top \hat{\mathbf{v}}_m ,

    with :math:`\hat{\mathbf{u}}_n, \hat{\mathbf{v}}_m` the unit image and text embeddings
    and :math:`e^{t}` the learned inverse temperature (Radford et al., 2021). Equals
    ``transformers``' CLIP contrastive loss on the same logits. Chapter 34.

    Raises:
        ValueError: unless ``logits_per_image`` is a non-empty square matrix.

    Shape:
        - logits_per_image: :math:`(N, N)`, row :math:`n` image :math:`n`, column :math:`m` text :math:`m`; output: :math:`()`
    """
    _check_similarity(logits_per_image, square=True)
    return 0.5 * (info_nce(logits_per_image) + info_nce(logits_per_image.T))
