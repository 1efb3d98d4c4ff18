r"""Data parallelism from scratch: one model per process, gradients averaged by a bucketed all-reduce.

Every rank holds the whole model and sees :math:`1/N` of each batch. After ``loss.backward()``
each rank has the gradient of its own shard's mean loss; the mean over ranks is the gradient of
the whole batch's mean loss (the shards are equal in size):

.. math::

    g = \frac{1}{N} \sum_{r=0}^{N-1} \nabla_\theta \frac{1}{B/N} \sum_{i \in \text{shard}_r} \ell_i
      = \nabla_\theta \frac{1}{B} \sum_{i=1}^{B} \ell_i .

:class:`BucketedAllReduce` computes it during the backward pass, as PyTorch's
``DistributedDataParallel`` does (Li et al. 2020): the parameters are grouped in reverse order
into buckets of about ``bucket_mb`` megabytes; when the last gradient of a bucket is ready, the
bucket is flattened and its all-reduce starts (asynchronously) while autograd goes on with the
earlier layers. Chapter 37, *Scaling out*.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

__all__ = ["DistEnv", "init_distributed", "shard_batch", "BucketedAllReduce", "broadcast_parameters", "make_buckets"]


@dataclass(frozen=True)
class DistEnv:
    r"""Where this process stands in a data-parallel run."""

    rank: int = 0  # this process's index, 0 .. world_size - 1
    world_size: int = 1  # the number of processes
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where this process computes

    @property
    def is_main(self) -> bool:
        r"""Whether this is rank 0, the one that logs and writes files."""
        return self.rank == 0


def init_distributed(device: torch.device | None = None) -> DistEnv:
    r"""Join the process group that ``torchrun`` describes, or stay alone.

    ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` for each process it starts. With ``WORLD_SIZE`` > 1 this initialises
    ``torch.distributed`` with NCCL when the device is a GPU (each process on ``cuda:LOCAL_RANK``)
    and gloo on the CPU. Without them (a plain ``python`` run) nothing is initialised and the
    result is rank 0 of 1 on ``device``.

    Args:
        device: the device a single process uses (``None``: the CPU).

    Returns:
        The :class:`DistEnv` of this process.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device("cpu") if device is None else device
    if world <= 1:
        return DistEnv(0, 1, dev)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(dist.get_rank(), dist.get_world_size(), dev)


def shard_batch(batch_size: int, rank: int, world_size: int) -> slice:
    r"""The rows ``rank`` takes from a global batch of ``batch_size``: the ``rank``-th of ``world_size`` equal slices.

    Raises:
        ValueError: if ``world_size`` does not divide ``batch_size`` (unequal shards would weight
            the ranks' mean losses unequally, and the average would not be the full-batch gradient).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need world_size >= 1 and 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if batch_size % world_size:
        raise ValueError(f"world size {world_size} does not divide the batch of {batch_size}: "
                         f"each rank needs an equal share (try a batch of {batch_size + world_size - batch_size % world_size})")
    n = batch_size // world_size
    return slice(rank * n, (rank + 1) * n)


def broadcast_parameters(model: torch.nn.Module, src: int = 0) -> None:
    r"""Copy rank ``src``'s parameters and buffers to every rank, so all replicas start equal."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t, src)


def make_buckets(params: Sequence[torch.Tensor], bucket_mb: float) -> list[list[torch.Tensor]]:
    r"""Group ``params`` in *reverse* order into buckets of at most ``bucket_mb`` MB (at least one tensor each).

    Reverse, because backward produces the last layers' gradients first: the first bucket is
    ready first and its all-reduce overlaps the rest of the backward pass.
    """
    if bucket_mb <= 0:
        raise ValueError(f"bucket_mb must be positive, got {bucket_mb}")
    cap, buckets, size = bucket_mb * 2**20, [[]], 0.0
    for p in reversed(list(params)):
        nbytes = p.numel() * p.element_size()
        if buckets[-1] and size + nbytes > cap:
            buckets.append([])
            size = 0.0
        buckets[-1].append(p)
        size += nbytes
    return buckets


class BucketedAllReduce:
    r"""Average the gradients of ``model`` over the ranks during ``backward``, one bucket at a time.

    A post-accumulate-grad hook on each parameter counts the bucket's ready gradients; the
    bucket's last one flattens the bucket into one buffer and starts ``all_reduce`` on it
    (``async_op=True``). When every parameter's gradient has arrived, the hook waits for all
    the buckets, divides by :math:`N` and copies the averages back into ``p.grad``. So, after
    ``loss.backward()`` returns, ``p.grad`` holds :math:`g` on every rank. Every trainable parameter
    must receive a gradient in each backward pass (as with ``find_unused_parameters=False``).

    Args:
        model: the replica (already equal on all ranks: :func:`broadcast_parameters`).
        bucket_mb: bucket capacity in megabytes (PyTorch's default is 25).
        group: the process group (``None``: the default one).
    """

    def __init__(self, model: torch.nn.Module, bucket_mb: float = 25.0, group: dist.ProcessGroup | None = None) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.buckets = make_buckets(self.params, bucket_mb)
        self.group, self.world = group, dist.get_world_size(group)
        self._bucket_of = {id(p): i for i, b in enumerate(self.buckets) for p in b}
        self._pending: list[int] = []
        self._handles: list[tuple[torch.Tensor, int, object]] = []
        self.allreduce_calls = 0  # collectives launched so far (one per bucket per backward)
        self._reset()
        self._hooks = [p.register_post_accumulate_grad_hook(self._ready) for p in self.params]

    def _reset(self) -> None:
        self._pending = [len(b) for b in self.buckets]
        self._left, self._handles = len(self.params), []

    def _ready(self, p: torch.Tensor) -> None:
        i = self._bucket_of[id(p)]
        self._pending[i] -= 1
        self._left -= 1
        if self._pending[i] == 0:  # the bucket is complete: start its all-reduce, go on with backward
            flat = torch.cat([q.grad.reshape(-1) for q in self.buckets[i]])
            self._handles.append((flat, i, dist.all_reduce(flat, group=self.group, async_op=True)))
            self.allreduce_calls += 1
        if self._left == 0:  # the last gradient of this backward: wait, average, write back
            for flat, j, work in self._handles:
                work.wait()
                flat /= self.world
                for q, g in zip(self.buckets[j], flat.split([q.numel() for q in self.buckets[j]])):
                    q.grad.copy_(g.view_as(q.grad))
            self._reset()

    def remove(self) -> None:
        r"""Remove the hooks: ``backward`` no longer communicates."""
        for h in self._hooks:
            h.remove()
