r"""Classification losses written from tensor operations.

The softmax cross-entropy of logits :math:`\mathbf{z} \in \mathbb{R}^K` against a target
distribution :math:`\mathbf{q}` is :math:`-\sum_k q_k \log \operatorname{softmax}(\mathbf{z})_k`.
With a one-hot target it is the negative log-likelihood of the true class; label smoothing mixes
the one-hot target with the uniform distribution. Introduced in chapter 6 (deep networks); label
smoothing in chapter 8 (regularization); knowledge distillation, the same loss against a
teacher's softened distribution, in chapter 36 (model compression). The contrastive losses of
chapter 34 (CLIP) are the same cross-entropy over a similarity matrix, whose diagonal holds the
matching pairs.
"""

from __future__ import annotations

import torch

from .activations import log_softmax

__all__ = ["cross_entropy", "distillation_loss", "info_nce", "clip_loss"]

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


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    r"""Knowledge distillation (Hinton et al., 2015): match the teacher's softened distribution, plus the hard labels.

    .. math::

        \mathcal L = \alpha\, T^2\, \frac{1}{N}\sum_n \operatorname{KL}\bigl(\mathbf q^T_n \,\Vert\, \mathbf p^T_n\bigr)
        + (1 - \alpha)\, \frac{1}{N}\sum_n -\log p_{n y_n}, \qquad
        \mathbf p^T = \operatorname{softmax}(\mathbf z / T), \quad \mathbf q^T = \operatorname{softmax}(\mathbf v / T)

    with student logits :math:`\mathbf z` and teacher logits :math:`\mathbf v`. The gradient of
    the soft term with respect to :math:`z_k` is :math:`\alpha T (p^T_k - q^T_k) / N`: without the
    :math:`T^2` it would shrink as :math:`1/T^2` for large :math:`T` (Hinton et al.'s argument), and
    the balance with the hard term would change with the temperature. Chapter 36.

    Args:
        student_logits: the student's logits :math:`\mathbf z`, one row per example.
        teacher_logits: the teacher's logits :math:`\mathbf v` (no gradient flows into them).
        target: the true classes, integers in ``[0, K)``.
        temperature: :math:`T > 0`; 1 is the plain softmax, larger is softer.
        alpha: the weight :math:`\alpha \in [0, 1]` of the soft term.

    Returns:
        The scalar loss.

    Raises:
        ValueError: on logits of different shapes, :math:`T \le 0` or :math:`\alpha` outside [0, 1].

    Shape:
        - student_logits, teacher_logits: :math:`(N, K)`; target: :math:`(N,)`
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits must have the same shape, got {tuple(student_logits.shape)} "
                         f"and {tuple(teacher_logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got temperature={temperature!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got alpha={alpha!r}")
    log_p = log_softmax(student_logits / temperature, dim=-1)  # (N, K) student, softened
    log_q = log_softmax(teacher_logits.detach() / temperature, dim=-1)  # (N, K) teacher, softened
    kl = (log_q.exp() * (log_q - log_p)).sum(dim=-1).mean()  # KL(q || p), mean over examples
    return alpha * temperature**2 * kl + (1 - alpha) * cross_entropy(student_logits, target)
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
