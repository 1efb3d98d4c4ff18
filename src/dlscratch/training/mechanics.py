r"""Training mechanics: gradient accumulation, clipping and loss scaling (checkpoints: :mod:`~dlscratch.training.checkpoint`).

Introduced in chapter 7, *Optimizers, schedules and training mechanics*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

__all__ = ["accumulate_gradients", "clip_grad_norm", "DynamicLossScaler"]


def accumulate_gradients(
    loss_fn: Callable[..., torch.Tensor], batch: Sequence[torch.Tensor], micro_batches: int
) -> torch.Tensor:
    r"""Backpropagate a batch in ``micro_batches`` pieces; the gradients equal the full batch's.

    ``loss_fn(*micro)`` must return the *mean* loss over a micro-batch of :math:`n_j` examples.
    Scaling each by :math:`n_j / N` before ``backward`` makes the accumulated ``.grad`` the
    gradient of the mean over all :math:`N` examples:

    .. math::

        \nabla \frac{1}{N}\sum_{i=1}^{N} \ell_i = \sum_j \frac{n_j}{N} \, \nabla \frac{1}{n_j} \sum_{i \in j} \ell_i

    Only one micro-batch's activations are alive at a time. Layers that mix examples
    (batch norm) see smaller batches and so are not equivalent.

    Args:
        loss_fn: maps one micro-batch (the tensors of ``batch``, sliced alike) to its mean loss.
        batch: tensors whose first dimension indexes the :math:`N` examples.
        micro_batches: number of pieces, between 1 and :math:`N`.

    Returns:
        The full batch's mean loss (detached).

    Raises:
        ValueError: if ``micro_batches`` is not in ``[1, N]`` or the tensors disagree on ``N``.
    """
    n = batch[0].shape[0]
    if any(t.shape[0] != n for t in batch):
        raise ValueError(f"batch tensors disagree on the number of examples: {[t.shape[0] for t in batch]}")
    if not 1 <= micro_batches <= n:
        raise ValueError(f"micro_batches must be in [1, {n}] for a batch of {n}, got micro_batches={micro_batches}")
    total = torch.zeros((), device=batch[0].device)
    pieces = zip(*(torch.tensor_split(t, micro_batches) for t in batch))
    for micro in pieces:
        loss = loss_fn(*micro) * (micro[0].shape[0] / n)  # weight n_j / N
        loss.backward()  # adds into .grad
        total = total + loss.detach()
    return total


def clip_grad_norm(parameters: Iterable[torch.Tensor] | torch.Tensor, max_norm: float, eps: float = 1e-6) -> torch.Tensor:
    r"""Rescale all gradients together so that their global L2 norm is at most ``max_norm``.

    .. math::

        \lVert \mathbf{g} \rVert = \sqrt{\sum_{p} \sum_i g_{p,i}^2}, \qquad
        \mathbf{g} \leftarrow \mathbf{g} \cdot \min\left(1, \frac{c}{\lVert \mathbf{g} \rVert + \epsilon}\right)

    One factor for every tensor keeps the direction of the update (Pascanu et al., 2013). Same
    result as ``torch.nn.utils.clip_grad_norm_`` (which also adds :math:`\epsilon = 10^{-6}`).

    Args:
        parameters: tensors whose ``.grad`` is clipped in place (those without one are skipped).
        max_norm: the threshold :math:`c > 0`.
        eps: guards the division when the norm is 0.

    Returns:
        The global norm *before* clipping.

    Raises:
        ValueError: if ``max_norm`` is not a positive number.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got max_norm={max_norm!r}")
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.stack([(g * g).sum() for g in grads]).sum().sqrt()  # global L2 norm
    coef = (max_norm / (total + eps)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef)
    return total


class DynamicLossScaler:
    r"""Dynamic loss scaling for float16 training (Micikevicius et al., 2018).

    Small gradients underflow to 0 in float16. Multiplying the loss by :math:`S` multiplies every
    gradient by :math:`S` (chain rule) and lifts them into range; dividing by :math:`S` before the
    update undoes it. :math:`S` adapts: a step whose gradients contain ``inf``/``nan`` is skipped
    and :math:`S \leftarrow S \cdot b`; after ``growth_interval`` clean steps in a row,
    :math:`S \leftarrow S \cdot g`. Same rule and defaults as ``torch.amp.GradScaler``.

    Args:
        init_scale: the first :math:`S`.
        growth_factor: :math:`g > 1`.
        backoff_factor: :math:`b \in (0, 1)`.
        growth_interval: clean steps between growths.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        if not init_scale > 0 or not growth_factor > 1 or not 0 < backoff_factor < 1 or growth_interval < 1:
            raise ValueError(
                f"need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1, growth_interval >= 1; got "
                f"init_scale={init_scale}, growth_factor={growth_factor}, backoff_factor={backoff_factor}, "
                f"growth_interval={growth_interval}"
            )
        self.scale = float(init_scale)  # current S
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self.clean_steps = 0  # finite steps since the last change of S

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`S \cdot` ``loss``; call ``backward`` on this."""
        return loss * self.scale

    def unscale_(self, parameters: Iterable[torch.Tensor]) -> bool:
        r"""Divide every ``.grad`` by :math:`S` in place; return whether any is non-finite."""
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return False
        torch._foreach_div_(grads, self.scale)
        return not bool(torch.stack([g.isfinite().all() for g in grads]).all())  # one device sync for all

    def update(self, found_inf: bool) -> None:
        r"""Back off after an overflow, grow after ``growth_interval`` clean steps."""
        if found_inf:
            self.scale *= self.backoff_factor
            self.clean_steps = 0
        else:
            self.clean_steps += 1
            if self.clean_steps == self.growth_interval:
                self.scale *= self.growth_factor
                self.clean_steps = 0

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        r"""Unscale, step ``optimizer`` unless a gradient overflowed, update :math:`S`.

        Returns:
            Whether the optimizer stepped.
        """
        params = [p for group in optimizer.param_groups for p in group["params"]]
        found_inf = self.unscale_(params)
        if not found_inf:
            optimizer.step()
        self.update(found_inf)
        return not found_inf

    def state_dict(self) -> dict[str, float]:
        r"""The scale and the count of clean steps, for checkpoints."""
        return {"scale": self.scale, "clean_steps": self.clean_steps}

    def load_state_dict(self, state: dict[str, float]) -> None:
        r"""Restore :meth:`state_dict`."""
        self.scale, self.clean_steps = float(state["scale"]), int(state["clean_steps"])
