r"""Low-rank adaptation (LoRA): a frozen linear map plus a trainable rank-:math:`r` update.

* :class:`LoRALinear`: wraps a linear layer (``nn.Linear``, or a frozen 4-bit
  :class:`~dlscratch.layers.quant.NF4Linear` for QLoRA) and adds
  :math:`\tfrac{\alpha}{r} B A x`; :meth:`~LoRALinear.merge` folds the update into the weight.
* :func:`add_lora`: wraps the named linear layers of a model and leaves only the adapters trainable.
* :func:`lora_state_dict` / :func:`load_lora_state_dict`: an adapter on its own, saved and loaded
  per task, so one frozen base serves several tasks.
* :func:`merge_lora` / :func:`unmerge_lora`: every adapter of a model at once.

Introduced in chapter 23, *LoRA and quantized bases (QLoRA)*. Symbols: r the rank,
:math:`d_{in}` and :math:`d_{out}` the layer's input and output widths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = ["low_rank_factors", "LoRALinear", "add_lora", "lora_modules", "lora_state_dict", "load_lora_state_dict", "merge_lora", "unmerge_lora"]


def low_rank_factors(weight: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The best rank-:math:`r` approximation of ``weight``, as factors :math:`B A` (truncated SVD).

    .. math::

        W = U \Sigma V^\top, \qquad B = U_{:, :r} \Sigma_{:r}^{1/2}, \quad A = \Sigma_{:r}^{1/2} V_{:, :r}^\top, \qquad
        \|W - BA\|_F^2 = \sum_{i > r} \sigma_i^2

    By the Eckart–Young theorem no rank-:math:`r` matrix is closer to :math:`W` in the Frobenius
    (or spectral, :math:`\sigma_{r+1}`) norm. Chapter 23.

    Raises:
        ValueError: if ``r`` is not in :math:`[1, \min(d_{out}, d_{in})]`.

    Shape:
        - weight: :math:`(d_{out}, d_{in})`; output: ``(B, A)``, :math:`(d_{out}, r)` and :math:`(r, d_{in})`
    """
    d_out, d_in = weight.shape
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= min(d_in, d_out):
        raise ValueError(f"rank must be an integer in [1, min(d_out, d_in)] = [1, {min(d_in, d_out)}], got r={r!r}")
    U, S, Vh = torch.linalg.svd(weight, full_matrices=False)  # (d_out, k), (k,), (k, d_in)
    root = S[:r].sqrt()  # (r,)
    return U[:, :r] * root, root[:, None] * Vh[:r]  # (d_out, r), (r, d_in)


class LoRALinear(nn.Module):
    r"""A frozen linear layer plus a trainable low-rank update, scaled by :math:`\alpha / r`.

    .. math::

        h = W_0 x + \frac{\alpha}{r} B A x, \qquad
        A \in \mathbb{R}^{r \times d_{in}}, \quad B \in \mathbb{R}^{d_{out} \times r}

    :math:`A` starts Kaiming-uniform (as ``nn.Linear`` and ``peft`` draw it), :math:`B` at zero,
    so at step 0 the layer computes exactly its base. The base's parameters are frozen; only
    ``lora_A`` and ``lora_B`` train. :meth:`merge` adds :math:`\tfrac{\alpha}{r} BA` to
    :math:`W_0` for inference at the base's cost; :meth:`unmerge` subtracts it again.
    Parameter names follow torch's layout (``lora_A`` is :math:`(r, d_{in})`, ``lora_B``
    :math:`(d_{out}, r)`), as ``peft``'s ``lora_A.weight`` and ``lora_B.weight``. Chapter 23.

    Args:
        base: the layer to adapt; it needs ``in_features`` and ``out_features`` (``nn.Linear``
            or :class:`~dlscratch.layers.quant.NF4Linear`).
        r: the rank, in :math:`[1, \min(d_{in}, d_{out})]`.
        alpha: the scale numerator; the update is multiplied by ``alpha / r``.

    Shape:
        - x: :math:`(*, d_{in})`; output: :math:`(*, d_{out})`
    """

    def __init__(self, base: nn.Module, r: int, alpha: float = 1.0) -> None:
        super().__init__()
        d_in, d_out = base.in_features, base.out_features
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= min(d_in, d_out):
            raise ValueError(
                f"LoRA rank must be an integer in [1, min(d_in, d_out)] = [1, {min(d_in, d_out)}] "
                f"for a {d_in} -> {d_out} layer, got r={r!r}"
            )
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got alpha={alpha!r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.in_features, self.out_features = d_in, d_out
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        weight = getattr(base, "weight", None)
        float_weight = isinstance(weight, torch.Tensor) and weight.is_floating_point()
        dtype = weight.dtype if float_weight else base.dtype  # a quantised base says which dtype it computes in
        device = weight.device if float_weight else next(base.buffers()).device
        self.lora_A = nn.Parameter(torch.empty(r, d_in, dtype=dtype, device=device))  # (r, d_in)
        self.lora_B = nn.Parameter(torch.zeros(d_out, r, dtype=dtype, device=device))  # (d_out, r): B = 0
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's and peft's draw
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}, merged={self.merged}"

    def delta_weight(self) -> torch.Tensor:
        r""":math:`\Delta W = \tfrac{\alpha}{r} B A`, of shape :math:`(d_{out}, d_{in})`."""
        return self.scaling * (self.lora_B @ self.lora_A)  # (d_out, r) @ (r, d_in) -> (d_out, d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)  # (*, d_out)
        if self.merged:
            return y
        return y + self.scaling * ((x @ self.lora_A.T) @ self.lora_B.T)  # (*, d_in) -> (*, r) -> (*, d_out)

    def _float_weight(self, action: str) -> torch.Tensor:
        weight = getattr(self.base, "weight", None)
        if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
            raise TypeError(f"cannot {action} into a {type(self.base).__name__}: it has no floating-point weight "
                            "(keep a quantised base unmerged)")
        return weight

    @torch.no_grad()
    def merge(self) -> None:
        r""":math:`W_0 \leftarrow W_0 + \tfrac{\alpha}{r} BA`: afterwards the layer costs what its base costs.

        Raises:
            ValueError: if the adapter is already merged (merging twice would add it twice).
            TypeError: if the base has no floating-point ``weight`` (a quantised base).
        """
        if self.merged:
            raise ValueError(f"this adapter is already merged (merged={self.merged}); merging again would add "
                             f"(alpha/r) BA = ({self.alpha:g}/{self.r}) BA a second time: call unmerge() first")
        self._float_weight("merge").add_(self.delta_weight())
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        r""":math:`W_0 \leftarrow W_0 - \tfrac{\alpha}{r} BA`, undoing :meth:`merge` (up to rounding).

        Raises:
            ValueError: if the adapter is not merged.
        """
        if not self.merged:
            raise ValueError(f"this adapter is not merged (merged={self.merged}); there is nothing to unmerge")
        self._float_weight("unmerge").sub_(self.delta_weight())
        self.merged = False


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    r"""Every :class:`LoRALinear` of ``model``, by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def add_lora(model: nn.Module, targets: Sequence[str], r: int, alpha: float = 1.0) -> list[str]:
    r"""Wrap every linear layer whose name ends in one of ``targets`` in a :class:`LoRALinear`; freeze the rest.

    A layer matches when its last name component is in ``targets`` (``"q_proj"`` matches
    ``blocks.0.attn.q_proj``), as ``peft``'s ``target_modules``. Afterwards only the adapters'
    ``lora_A`` and ``lora_B`` require gradients. Chapter 23.

    Returns:
        The qualified names of the wrapped layers.

    Raises:
        ValueError: if no layer matches, or (from :class:`LoRALinear`) a rank that does not fit a layer.
    """
    names = [n for n, m in model.named_modules() if n.split(".")[-1] in targets and hasattr(m, "in_features")
             and not isinstance(m, LoRALinear)]
    if not names:
        raise ValueError(f"no linear layer of the model is named one of targets={list(targets)}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha))
    return names


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    r"""The adapters alone (every ``lora_A`` and ``lora_B``, cloned): what is saved per task."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.endswith(("lora_A", "lora_B"))}


@torch.no_grad()
def load_lora_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    r"""Put a task's adapters (from :func:`lora_state_dict`) into ``model``: switching tasks.

    Merged adapters are unmerged first and merged again with the new values, so the switch is
    correct in either state.

    Raises:
        ValueError: if the adapter names or shapes differ from the model's.
    """
    mods = lora_modules(model)
    want = {f"{n}.{p}": getattr(m, p).shape for n, m in mods.items() for p in ("lora_A", "lora_B")}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if want.keys() != got.keys() or any(tuple(want[k]) != got[k] for k in want):
        raise ValueError(f"adapter does not fit the model: expected {dict(sorted((k, tuple(s)) for k, s in want.items()))}, got {dict(sorted(got.items()))}")
    for name, m in mods.items():
        was_merged = m.merged
        if was_merged:
            m.unmerge()
        m.lora_A.copy_(state[f"{name}.lora_A"])
        m.lora_B.copy_(state[f"{name}.lora_B"])
        if was_merged:
            m.merge()


def merge_lora(model: nn.Module) -> None:
    r"""Merge every adapter of ``model`` (:meth:`LoRALinear.merge`)."""
    for m in lora_modules(model).values():
        m.merge()


def unmerge_lora(model: nn.Module) -> None:
    r"""Unmerge every adapter of ``model`` (:meth:`LoRALinear.unmerge`)."""
    for m in lora_modules(model).values():
        m.unmerge()
