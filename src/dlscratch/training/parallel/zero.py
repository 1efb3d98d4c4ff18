r"""ZeRO stages 0-3 from scratch: Adam whose state, gradients and parameters are sharded over the ranks.

With Adam in mixed precision, Rajbhandari et al. (2020) count :math:`16\Psi` bytes per rank for
:math:`\Psi` parameters under plain data parallelism: :math:`2\Psi` fp16 weights, :math:`2\Psi`
fp16 gradients and :math:`K\Psi = 12\Psi` of optimizer state (fp32 master weights, momentum,
variance). Our runs are in fp32, where the same total arises as :math:`4\Psi` weights,
:math:`4\Psi` gradients and :math:`8\Psi` of Adam moments. Sharding over :math:`N` ranks:

.. math::

    \text{stage 1: } 8\Psi + \frac{8\Psi}{N}, \qquad
    \text{stage 2: } 4\Psi + \frac{12\Psi}{N}, \qquad
    \text{stage 3: } \frac{16\Psi}{N} .

:class:`ZeRO` wraps an ``nn.Sequential``. Each child (a *unit*) has its parameters flattened into
one vector padded to a multiple of :math:`N`; rank :math:`r` owns the :math:`r`-th slice and keeps
Adam's moments for it alone. Stage 0 all-reduces the gradients (plain data parallelism); stage 1
all-reduces them, updates its slice and all-gathers the parameters; stage 2 reduce-scatters each
unit's gradient during the backward pass, as soon as it is complete, so that each rank keeps
only its slice's and at most one unit's whole gradient exists at a time; stage 3 keeps only its slice of the parameters
too, all-gathers a unit's parameters just before its forward pass, frees them after it, and
gathers them again in the backward pass (where the unit's forward is recomputed:
:mod:`~dlscratch.training.parallel.recompute`). Chapter 37, *Scaling out*.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.func import functional_call

__all__ = ["ZeRO", "zero_bytes_formula"]


def zero_bytes_formula(n_params: int, stage: int, world_size: int, *, mixed_precision: bool = False, element_size: int = 4) -> float:
    r"""Bytes per rank for :math:`\Psi` = ``n_params`` parameters at ZeRO ``stage`` over :math:`N` = ``world_size`` ranks.

    With ``mixed_precision`` the paper's count, :math:`2\Psi` fp16 weights, :math:`2\Psi` fp16
    gradients and :math:`12\Psi` of fp32 Adam state (master weights, momentum, variance):

    .. math::

        16\Psi, \qquad 4\Psi + \frac{12\Psi}{N}, \qquad 2\Psi + \frac{14\Psi}{N}, \qquad \frac{16\Psi}{N}

    for stages 0 to 3. Without it, everything in one dtype of ``element_size`` bytes (4: fp32,
    8: float64) with no master copy: weights, gradients, momentum and variance, each
    :math:`e\Psi`, so :math:`4e\Psi`, :math:`2e\Psi + 2e\Psi/N`, :math:`e\Psi + 3e\Psi/N`,
    :math:`4e\Psi/N` (the same :math:`16\Psi` for fp32).

    Raises:
        ValueError: for a stage outside 0-3 or a world size below 1.
    """
    if stage not in (0, 1, 2, 3) or world_size < 1:
        raise ValueError(f"need a stage in 0-3 and world_size >= 1, got stage={stage!r}, world_size={world_size!r}")
    psi, n = float(n_params), world_size
    if mixed_precision:
        weights, grads, state = 2 * psi, 2 * psi, 12 * psi
    else:
        weights = grads = element_size * psi
        state = 2 * element_size * psi
    sharded = {0: (), 1: ("state",), 2: ("state", "grads"), 3: ("state", "grads", "weights")}[stage]
    parts = {"weights": weights, "grads": grads, "state": state}
    return sum(v / n if k in sharded else v for k, v in parts.items())


class _Unit:
    r"""One child of the ``nn.Sequential``: its parameters' names and shapes, its flat vector's slice on this rank."""

    def __init__(self, module: nn.Module, world: int, rank: int, group: dist.ProcessGroup | None) -> None:
        self.module, self.world, self.rank, self.group = module, world, rank, group
        params = list(module.named_parameters())
        self.names = [n for n, _ in params]
        self.shapes = [p.shape for _, p in params]
        self.numel = sum(p.numel() for _, p in params)
        self.shard_len = math.ceil(self.numel / world)  # padded: N * shard_len >= numel
        flat = torch.zeros(world * self.shard_len, dtype=params[0][1].dtype, device=params[0][1].device)
        flat[: self.numel] = torch.cat([p.detach().reshape(-1) for _, p in params])
        self.flat = flat  # the full parameters (stages 0-2); the model's parameters become views of it
        self.dtype, self.device = flat.dtype, flat.device
        self.lo, self.hi = rank * self.shard_len, (rank + 1) * self.shard_len

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        sizes = [math.prod(s) for s in self.shapes]
        return {n: v.view(s) for n, v, s in zip(self.names, flat[: self.numel].split(sizes), self.shapes)}

    def take_flat_grad(self) -> torch.Tensor:
        r"""The unit's gradients as one padded vector; the parameters' own ``.grad`` are dropped."""
        g = torch.zeros(self.world * self.shard_len, dtype=self.dtype, device=self.device)
        params = list(self.module.parameters())
        g[: self.numel] = torch.cat([p.grad.reshape(-1) for p in params])
        for p in params:
            p.grad = None
        return g

    def gather(self, shard: torch.Tensor) -> torch.Tensor:
        full = torch.empty(self.world * self.shard_len, dtype=shard.dtype, device=shard.device)
        dist.all_gather_single(full, shard.contiguous(), group=self.group)
        return full

    def reduce_scatter_mean(self, full: torch.Tensor) -> torch.Tensor:
        shard = torch.empty(self.shard_len, dtype=full.dtype, device=full.device)
        dist.reduce_scatter_single(shard, full.contiguous(), group=self.group)
        return shard / self.world


class _Stage3Unit(torch.autograd.Function):
    r"""Gather a unit's parameters, run it, free them; in backward gather again, recompute, reduce-scatter."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, shard: torch.Tensor, unit: _Unit) -> torch.Tensor:  # type: ignore[override]
        ctx.unit = unit
        ctx.save_for_backward(x, shard)
        with torch.no_grad():
            return functional_call(unit.module, unit.views(unit.gather(shard)), (x,))  # the gathered copy dies here

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, None]:  # type: ignore[override]
        x, shard = ctx.saved_tensors
        unit = ctx.unit
        full = unit.gather(shard.detach()).requires_grad_(True)
        x_in = x.detach().requires_grad_(x.requires_grad)
        with torch.enable_grad():
            y = functional_call(unit.module, unit.views(full), (x_in,))
        grads = torch.autograd.grad(y, (full, x_in) if x.requires_grad else (full,), grad)
        return (grads[1] if x.requires_grad else None), unit.reduce_scatter_mean(grads[0]), None


class ZeRO:
    r"""Data-parallel training of an ``nn.Sequential`` with Adam, at ZeRO stage 0, 1, 2 or 3.

    Call the object as the model (``loss = loss_fn(zero(x), y)``), then ``loss.backward()``,
    :meth:`step` and :meth:`zero_grad`. Each rank passes its own shard of the batch. The update
    equals ``torch.optim.Adam`` on the whole batch in one process.

    Args:
        model: the layers, equal on every rank at the start (same seed).
        stage: 0 (replicated Adam), 1 (shard the optimizer state), 2 (and the gradients), 3 (and the parameters).
        lr: Adam's learning rate.
        betas: Adam's moment decays.
        eps: Adam's :math:`\epsilon`.
        group: the data-parallel process group (``None``: the default).
    """

    def __init__(self, model: nn.Sequential, stage: int, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, group: dist.ProcessGroup | None = None) -> None:
        if stage not in (0, 1, 2, 3):
            raise ValueError(f"ZeRO stage must be 0, 1, 2 or 3, got {stage!r}")
        self.model, self.stage, self.lr, self.betas, self.eps, self.group = model, stage, lr, betas, eps, group
        self.world, self.rank = dist.get_world_size(group), dist.get_rank(group)
        self.units = [_Unit(m, self.world, self.rank, group) for m in model if any(True for _ in m.parameters())]
        self.n_params = sum(u.numel for u in self.units)
        self.t = 0
        for u in self.units:
            if stage == 3:  # keep only this rank's slice; the module's own tensors are emptied
                u.shard = u.flat[u.lo : u.hi].clone().requires_grad_(True)
                u.flat = None
                for p in u.module.parameters():
                    p.data = torch.empty(0, dtype=p.dtype, device=p.device)
            else:  # the module's parameters become views of the flat vector
                for p, v in zip(u.module.parameters(), u.views(u.flat).values()):
                    p.data = v
            owned = u.shard_len if stage >= 1 else u.flat.numel()
            u.m = torch.zeros(owned, dtype=u.shard.dtype if stage == 3 else u.flat.dtype)
            u.v = torch.zeros_like(u.m)
            u.grad = None
            if stage == 2:  # reduce-scatter each unit's gradient as soon as backward has produced all of it
                u.waiting = len(u.names)
                for p in u.module.parameters():
                    p.register_post_accumulate_grad_hook(lambda p, u=u: self._grad_ready(u))

    def _grad_ready(self, u: _Unit) -> None:
        r"""Stage 2: once a unit's last gradient is in, keep only this rank's slice of the averaged gradient."""
        u.waiting -= 1
        if u.waiting == 0:
            shard = u.reduce_scatter_mean(u.take_flat_grad())  # the unit's full gradient is freed here
            u.grad = shard if u.grad is None else u.grad + shard
            u.waiting = len(u.names)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.stage < 3:
            return self.model(x)
        units = {id(u.module): u for u in self.units}
        for m in self.model:
            x = _Stage3Unit.apply(x, units[id(m)].shard, units[id(m)]) if id(m) in units else m(x)
        return x

    def _adam(self, param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor) -> None:
        b1, b2 = self.betas
        m.mul_(b1).add_(grad, alpha=1 - b1)  # first moment
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)  # second moment
        denom = (v.sqrt() / math.sqrt(1 - b2**self.t)).add_(self.eps)
        param.addcdiv_(m, denom, value=-self.lr / (1 - b1**self.t))  # as torch.optim.Adam

    @torch.no_grad()
    def step(self) -> None:
        r"""Average the gradients over the ranks, update this rank's part, share the new parameters."""
        self.t += 1
        for u in self.units:
            if self.stage == 3:
                self._adam(u.shard, u.shard.grad, u.m, u.v)
                continue
            if self.stage < 2:
                g = u.take_flat_grad()
                dist.all_reduce(g, group=self.group)
                u.grad = g.div_(self.world)  # the whole averaged gradient, on every rank
            if self.stage == 0:
                self._adam(u.flat, g, u.m, u.v)
                continue
            shard = u.flat[u.lo : u.hi]
            self._adam(shard, u.grad if self.stage == 2 else g[u.lo : u.hi], u.m, u.v)
            dist.all_gather_single(u.flat, shard.clone(), group=self.group)

    def zero_grad(self) -> None:
        r"""Drop the gradients (``None``, as ``set_to_none=True``)."""
        for u in self.units:
            u.grad = None
            for p in u.module.parameters():
                p.grad = None
            if self.stage == 3:
                u.shard.grad = None

    def full_parameters(self) -> torch.Tensor:
        r"""All parameters as one vector (gathered at stage 3), in ``model.parameters()`` order."""
        with torch.no_grad():
            flats = [u.gather(u.shard) if self.stage == 3 else u.flat for u in self.units]
            return torch.cat([f[: u.numel] for f, u in zip(flats, self.units)])

    def held_bytes(self) -> dict[str, int]:
        r"""Bytes of the tensors this rank keeps between steps: ``parameters``, ``gradients``, ``optimizer`` (and ``total``).

        Counted from the tensors themselves (``numel * element_size``, each storage once), after
        :meth:`step` and before :meth:`zero_grad`: the state a rank carries from one step to the next.
        """
        def size(ts: list[Any]) -> int:
            seen: dict[int, int] = {}
            for t in ts:
                if t is not None and t.numel():
                    seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return sum(seen.values())

        params = [u.shard if self.stage == 3 else u.flat for u in self.units]
        grads = [u.shard.grad if self.stage == 3 else u.grad for u in self.units]
        out = {"parameters": size(params), "gradients": size(grads),
               "optimizer": size([u.m for u in self.units] + [u.v for u in self.units])}
        out["total"] = sum(out.values())
        return out
