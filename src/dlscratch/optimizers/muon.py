r"""Muon: momentum, orthogonalised by a Newton-Schulz iteration, for hidden weight matrices.

Muon (Jordan et al., 2024) keeps SGD's momentum but replaces each 2-D update by (roughly) the
nearest semi-orthogonal matrix, so that every direction of the update gets a step of about the
same size. It powers the modded-nanoGPT speedruns and, with an RMS-matching learning-rate scale,
Moonshot's large-model training (Liu et al., 2025, "Muon is scalable for LLM training"). It is
meant for the weight matrices of hidden layers only; embeddings, the output head, gains and
biases stay with AdamW (:func:`split_muon_params` does that split).

Matches ``torch.optim.Muon`` (torch 2.13).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .base import ScratchOptimizer, check_flag, check_nonnegative, check_unit_interval

__all__ = ["NS_COEFFICIENTS", "newton_schulz", "muon_lr_scale", "Muon", "split_muon_params"]

# The quintic's (a, b, c) from Keller Jordan's Muon post, chosen for a steep slope at zero.
NS_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


def newton_schulz(
    G: torch.Tensor,
    steps: int = 5,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Approximately orthogonalise a matrix by a quintic Newton-Schulz iteration.

    With the singular value decomposition :math:`G = U \Sigma V^\top`, the nearest
    semi-orthogonal matrix to :math:`G` (in Frobenius norm) is its orthogonal polar factor
    :math:`U V^\top`: the same singular vectors, every singular value set to 1. This function
    approximates it with matrix products only (no SVD, so it is fast on a GPU and in bfloat16):

    .. math::

        X_0 &= \frac{G}{\max(\lVert G \rVert_F,\ \epsilon)} \\
        A_k &= X_k X_k^\top, \qquad
        X_{k+1} = a X_k + \left(b A_k + c A_k^2\right) X_k \qquad (k = 0, \dots, \text{steps} - 1)

    (transposed first when :math:`G` has more rows than columns, so that :math:`A_k` is the
    smaller Gram matrix, and transposed back at the end). Dividing by the Frobenius norm puts
    every singular value in :math:`[0, 1]`. Each step is an odd polynomial in :math:`X`, so it
    keeps :math:`U` and :math:`V` and maps each singular value by the scalar quintic
    :math:`\sigma \mapsto a\sigma + b\sigma^3 + c\sigma^5`. With the classical coefficients
    :math:`(15/8, -10/8, 3/8)` that map converges to 1, i.e. :math:`X_k \to U V^\top`. Muon's
    :math:`(a, b, c) = (3.4445, -4.7750, 2.0315)` trade exactness for speed: the slope at zero
    is :math:`a = 3.4445`, so small singular values grow fast (by up to :math:`a^5 \approx 490`
    in 5 steps), and after 5 steps every singular value with
    :math:`\sigma_i / \lVert G \rVert_F \ge 0.002` lands in roughly :math:`[0.7, 1.2]`
    (:math:`[0.68, 1.21]` by the scalar map) rather than exactly at 1. The result is
    :math:`U S' V^\top` with :math:`S' \approx I`, which trains as well as :math:`U V^\top`.

    Args:
        G: the matrix to orthogonalise (Muon's momentum update).
        steps: number of iterations, :math:`0 \le` ``steps`` :math:`< 100`.
        coefficients: :math:`(a, b, c)`.
        eps: floor :math:`\epsilon` of the norm (``torch.optim.Muon`` clamps the norm; Keller
            Jordan's reference code adds :math:`\epsilon` instead).
        dtype: the dtype to iterate in; ``None`` keeps ``G``'s. ``torch.optim.Muon`` uses
            ``torch.bfloat16``.

    Returns:
        The approximately orthogonal matrix, in ``dtype``.

    Shape:
        - G: :math:`(m, n)`; output: :math:`(m, n)`.

    Raises:
        ValueError: if ``G`` is not 2-D, ``steps`` is out of range or ``coefficients`` is not a
            triple.
    """
    if G.ndim != 2:
        raise ValueError(f"newton_schulz needs a 2-D matrix, got a tensor of shape {tuple(G.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps < 100:
        raise ValueError(f"steps must be an integer in [0, 100), got steps={steps!r}")
    if not isinstance(coefficients, (tuple, list)) or len(coefficients) != 3:
        raise ValueError(f"coefficients must be a triple (a, b, c), got coefficients={coefficients!r}")
    a, b, c = coefficients
    X = G.to(dtype) if dtype is not None else G
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.T  # (n, m): iterate on the smaller Gram matrix
    X = X / X.norm().clamp(min=eps)  # singular values now in [0, 1]; a new tensor, G is untouched
    for _ in range(steps):
        A = X @ X.T  # (m, m) Gram matrix
        B = torch.addmm(A, A, A, beta=b, alpha=c)  # b A + c A^2
        X = torch.addmm(X, B, X, beta=a)  # a X + B X
    return X.T if tall else X


def muon_lr_scale(shape: Sequence[int], adjust_lr_fn: str | None = None) -> float:
    r"""The factor Muon multiplies the learning rate by for a matrix of ``shape`` :math:`(A, B)`.

    .. math::

        \text{original (default)}: \ \sqrt{\max(1, A / B)}, \qquad
        \text{match\_rms\_adamw}: \ 0.2 \sqrt{\max(A, B)}

    An orthogonalised :math:`A \times B` update has RMS :math:`\sqrt{\min(A, B) / (A B)}`.
    Keller Jordan's ``original`` scale makes tall matrices' steps as large per column as square
    ones; Moonshot's ``match_rms_adamw`` gives every update an RMS of about 0.2, like a typical
    AdamW step, so AdamW's learning rate and weight decay can be reused (Liu et al., 2025).

    Args:
        shape: the parameter's shape; its first two sizes are :math:`A` (rows, ``out_features``)
            and :math:`B` (columns, ``in_features``).
        adjust_lr_fn: ``None`` or ``"original"``, or ``"match_rms_adamw"``.

    Raises:
        ValueError: for any other ``adjust_lr_fn``.
    """
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, A / B))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(A, B))
    raise ValueError(f"adjust_lr_fn must be one of {ADJUST_LR_FNS}, got adjust_lr_fn={adjust_lr_fn!r}")


class Muon(ScratchOptimizer):
    r"""Muon (Jordan et al., 2024): SGD momentum whose 2-D update is orthogonalised.

    For each weight matrix :math:`\theta` with gradient :math:`G_t`, momentum :math:`\mu`,
    learning rate :math:`\eta` and decoupled weight decay :math:`\lambda`:

    .. math::

        B_t &= \mu B_{t-1} + (1 - \mu) G_t, \qquad B_0 = 0 \\
        U_t &= \begin{cases} (1 - \mu) G_t + \mu B_t & \text{nesterov} \\ B_t & \text{otherwise} \end{cases} \\
        O_t &= \operatorname{NS}_5(U_t) \approx \text{the polar factor of } U_t \\
        \theta_t &= \theta_{t-1} (1 - \eta\lambda) - \eta\, s(A, B)\, O_t

    with :math:`\operatorname{NS}_5` the 5-step iteration of :func:`newton_schulz` and
    :math:`s(A, B)` from :func:`muon_lr_scale`; the decay uses the unscaled :math:`\eta`.
    The paper writes the momentum as a sum, :math:`B_t = \mu B_{t-1} + G_t` and
    :math:`U_t = G_t + \mu B_t`; that is :math:`1/(1 - \mu)` times the average above, the same
    direction, and :func:`newton_schulz` divides by the norm, so the step is the same (up to
    :math:`\epsilon`). We keep torch's averaged form (``lerp``) so the numbers match it.

    Like ``torch.optim.Muon``, the iteration runs in bfloat16 by default (``ns_dtype``); pass
    ``ns_dtype=None`` to run it in the parameter's own dtype. Only 2-D parameters are accepted.
    One deliberate difference: for a bfloat16 parameter with ``nesterov=False``, torch 2.13
    normalises the momentum buffer itself in place (its ``.bfloat16()`` returns the buffer, not a
    copy, and is then divided by its norm); :func:`newton_schulz` never writes to its input, so
    here the buffer stays the running average.

    Args:
        params: the 2-D parameters to optimize, or a list of parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`.
        weight_decay: decoupled decay :math:`\lambda \ge 0` (torch's default 0.1).
        momentum: :math:`\mu \in [0, 1)`.
        nesterov: use the Nesterov look-ahead :math:`U_t` above.
        ns_coefficients: :math:`(a, b, c)` of the quintic.
        eps: floor of the norm in :func:`newton_schulz`, :math:`\ge 0`.
        ns_steps: Newton-Schulz iterations, an integer in :math:`[0, 100)`.
        adjust_lr_fn: ``None`` (same as ``"original"``) or ``"match_rms_adamw"``; see
            :func:`muon_lr_scale`.
        ns_dtype: dtype of the iteration, or ``None`` for the parameter's dtype.

    Raises:
        ValueError: naming the option, for any value outside the ranges above, and naming the
            shape of any parameter that is not 2-D.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        ns_dtype: torch.dtype | None = torch.bfloat16,
    ) -> None:
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            ns_dtype=ns_dtype,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        r"""Check every option of one group."""
        check_nonnegative("lr", group["lr"])
        check_nonnegative("weight_decay", group["weight_decay"])
        check_unit_interval("momentum", group["momentum"])
        check_flag("nesterov", group["nesterov"])
        coeffs = group["ns_coefficients"]
        if not isinstance(coeffs, (tuple, list)) or len(coeffs) != 3:
            raise ValueError(f"ns_coefficients must be a triple (a, b, c), got ns_coefficients={coeffs!r}")
        check_nonnegative("eps", group["eps"])
        steps = group["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps < 100:
            raise ValueError(f"ns_steps must be an integer in [0, 100), got ns_steps={steps!r}")
        if group["adjust_lr_fn"] not in ADJUST_LR_FNS:
            raise ValueError(f"adjust_lr_fn must be one of {ADJUST_LR_FNS}, got adjust_lr_fn={group['adjust_lr_fn']!r}")
        if group["ns_dtype"] is not None and not isinstance(group["ns_dtype"], torch.dtype):
            raise ValueError(f"ns_dtype must be a torch.dtype or None, got ns_dtype={group['ns_dtype']!r}")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        r"""Add a group after checking its options and that every parameter is 2-D."""
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        for i, p in enumerate(params):
            if isinstance(p, torch.Tensor) and p.ndim != 2:
                raise ValueError(
                    f"Muon only updates 2-D weight matrices, got parameter {i} of group "
                    f"{len(self.param_groups)} with shape {tuple(p.shape)}; give it to AdamW "
                    "(see split_muon_params)"
                )
        super().add_param_group({**param_group, "params": params})

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        r"""One step for the matrix ``p``: momentum, Newton-Schulz, decoupled decay, scaled step."""
        lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
        if not state:
            state["momentum_buffer"] = torch.zeros_like(grad)  # B
        buf = state["momentum_buffer"]
        buf.lerp_(grad, 1 - mu)  # B = mu B + (1 - mu) G
        u = grad.lerp(buf, mu) if group["nesterov"] else buf  # (1 - mu) G + mu B, or B
        o = newton_schulz(u, group["ns_steps"], group["ns_coefficients"], group["eps"], group["ns_dtype"])
        p.mul_(1 - lr * wd)  # decoupled decay with the unscaled lr
        p.add_(o, alpha=-lr * muon_lr_scale(p.shape, group["adjust_lr_fn"]))


def split_muon_params(
    model: nn.Module,
    exclude: Sequence[str] | Callable[[str], bool] = ("embed", "wte", "wpe", "lm_head", "head"),
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    r"""Split a model's parameters into Muon's (hidden weight matrices) and AdamW's (the rest).

    Muon gets the ``weight`` of every :class:`torch.nn.Linear` whose qualified module name is not
    excluded and which is not shared with an :class:`torch.nn.Embedding` (a tied output head).
    Everything else, embeddings, the output head, norm gains and all biases, goes to AdamW, the
    usual split (Jordan et al., 2024). Each parameter appears exactly once, in model order.

    Args:
        model: the model.
        exclude: module names to leave to AdamW, either substrings (a name containing any of
            them is excluded; the default catches this package's GPT and common embedding and
            head names) or a predicate ``exclude(module_name) -> bool``. For a plain
            :class:`torch.nn.Sequential`, name the head, e.g. ``exclude=lambda n: n == "2"``.

    Returns:
        ``(muon_params, adamw_params)``.
    """
    is_excluded = exclude if callable(exclude) else (lambda name: any(s in name for s in exclude))
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    hidden = {
        id(m.weight)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and not is_excluded(name) and id(m.weight) not in embedding_weights
    }
    muon_params, adamw_params = [], []
    for p in model.parameters():  # deduplicated: a tied weight comes once
        (muon_params if id(p) in hidden else adamw_params).append(p)
    return muon_params, adamw_params
