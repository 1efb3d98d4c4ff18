r"""Chapter 37's multi-process experiments, run by ``torchrun``; rank 0 writes the results as JSON.

.. code-block:: bash

    torchrun --nproc-per-node=2 -m dlscratch.training.parallel.demo --out results.json

Runs in one launch (process start-up is the expensive part on a CPU): our bucketed all-reduce
against one process on the whole batch and against ``DistributedDataParallel``; a
``DistributedSampler`` over two epochs; ZeRO stages 0-3 against ``torch.optim.Adam`` and their
bytes per rank, and FSDP's (``fully_shard``); Megatron's MLP and attention against the dense
layers; GPipe's measured bubble for several micro-batch counts. Chapter 37, *Scaling out*.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ...layers.attention.modules import MultiHeadAttention
from ...layers.feedforward import MLP
from ...layers.tensor_parallel import TensorParallelAttention, TensorParallelMLP
from ...models.llama import LLaMA, LlamaConfig
from .ddp import BucketedAllReduce, broadcast_parameters, shard_batch
from .pipeline import bubble_formula, bubble_fraction, gpipe_step
from .zero import ZeRO, zero_bytes_formula

__all__ = ["main", "ddp_check", "sampler_check", "zero_check", "fsdp_check", "tp_check", "pipeline_check", "mlp_stack"]


def _max_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def ddp_check(rank: int, world: int) -> dict[str, Any]:
    r"""Gradients of a small LLaMA (float64): ours, one process on the whole batch, and ``DistributedDataParallel``."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, ffn_hidden=64)
    model = LLaMA(cfg).double()
    ref, theirs = copy.deepcopy(model), copy.deepcopy(model)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 32, (8, 16), generator=gen), torch.randint(0, 32, (8, 16), generator=gen)
    mine = shard_batch(8, rank, world)
    broadcast_parameters(model)
    sync = BucketedAllReduce(model, bucket_mb=0.02)  # about 20 KB per bucket: several buckets
    model(x[mine], y[mine])[1].backward()
    ref(x, y)[1].backward()  # the whole batch in this one process
    ddp = nn.parallel.DistributedDataParallel(theirs)
    ddp(x[mine], y[mine])[1].backward()
    ours = [p.grad for p in model.parameters()]
    return {"vs_full_batch": _max_diff(ours, [p.grad for p in ref.parameters()]),
            "vs_torch_ddp": _max_diff(ours, [p.grad for p in theirs.parameters()]),
            "buckets": len(sync.buckets), "allreduce_calls": sync.allreduce_calls,
            "n_params": sum(p.numel() for p in model.parameters())}


def sampler_check(rank: int, world: int) -> dict[str, Any]:
    r"""The indices a ``DistributedSampler`` gives this rank from 10 examples, in epochs 0 and 1."""
    sampler = torch.utils.data.DistributedSampler(range(10), num_replicas=world, rank=rank, shuffle=True, seed=0)
    out = {}
    for epoch in (0, 1):
        sampler.set_epoch(epoch)  # without it every epoch repeats epoch 0's order
        out[f"epoch{epoch}"] = list(sampler)
    return out


def mlp_stack(width: int = 128, depth: int = 4) -> nn.Sequential:
    r"""``depth`` blocks of ``Linear(width, width)`` and GELU, then ``Linear(width, 1)``: the ZeRO model."""
    blocks = [nn.Sequential(nn.Linear(width, width), nn.GELU()) for _ in range(depth)]
    return nn.Sequential(*blocks, nn.Linear(width, 1))


def _sharding_problem(steps: int) -> tuple[torch.Tensor, torch.Tensor, nn.Sequential, torch.Tensor]:
    r"""The ZeRO and FSDP runs' data, model (float64) and the weights after ``steps`` of ``torch.optim.Adam`` on the whole batch."""
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(16, 128, generator=gen, dtype=torch.float64), torch.randn(16, 1, generator=gen, dtype=torch.float64)
    torch.manual_seed(0)
    base = mlp_stack().double()
    ref = copy.deepcopy(base)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(ref(x), y).backward()
        opt.step()
    return x, y, base, torch.cat([p.detach().reshape(-1) for p in ref.parameters()])


def zero_check(rank: int, world: int, steps: int = 3) -> dict[str, Any]:
    r"""ZeRO stages 0-3 for ``steps`` Adam steps against ``torch.optim.Adam`` on the whole batch; bytes per rank."""
    x, y, base, want = _sharding_problem(steps)
    mine, out = shard_batch(16, rank, world), {}
    for stage in (0, 1, 2, 3):
        zero = ZeRO(copy.deepcopy(base), stage, lr=1e-2)
        for _ in range(steps):
            zero.zero_grad()
            nn.functional.mse_loss(zero(x[mine]), y[mine]).backward()
            full_grads_left = any(p.grad is not None for p in zero.model.parameters())  # stage 2: freed in backward
            zero.step()
        held = zero.held_bytes()
        out[f"stage{stage}"] = {"max_abs_diff": (zero.full_parameters() - want).abs().max().item(), **held,
                                "full_grads_after_backward": full_grads_left,
                                "formula": zero_bytes_formula(zero.n_params, stage, world, element_size=8)}
    out["n_params"] = zero.n_params
    return out


def fsdp_check(rank: int, world: int, steps: int = 3) -> dict[str, Any]:
    r"""The same run with torch's FSDP (``fully_shard`` on each block), or why it could not run."""
    try:
        from torch.distributed.fsdp import fully_shard

        x, y, model, want = _sharding_problem(steps)
        for m in model:
            fully_shard(m)
        fully_shard(model)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        mine = shard_batch(16, rank, world)
        for _ in range(steps):
            opt.zero_grad(set_to_none=False)
            nn.functional.mse_loss(model(x[mine]), y[mine]).backward()
            opt.step()
        local = [p.to_local() for p in model.parameters()]
        full = torch.cat([p.full_tensor().reshape(-1) for p in model.parameters()])
        state = [t.to_local() for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor) and t.dim()]
        nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
        return {"ran": True, "max_abs_diff": (full - want).abs().max().item(), "parameters": nbytes(local),
                "gradients": nbytes([p.grad.to_local() for p in model.parameters()]), "optimizer": nbytes(state)}
    except Exception as err:  # noqa: BLE001 - report whatever stopped it
        return {"ran": False, "error": f"{type(err).__name__}: {err}"[:300]}


def tp_check(rank: int, world: int) -> dict[str, Any]:
    r"""Megatron's MLP and attention over the ranks against the dense kit layers: outputs and every gradient (float64)."""
    torch.manual_seed(0)
    C, F, nh = 32, 128, 4
    x = torch.randn(2, 6, C, dtype=torch.float64)
    out = {}
    for name, dense, tp in (("mlp", MLP(C, F), TensorParallelMLP(C, F, world)),
                            ("attention", MultiHeadAttention(C, nh, causal=True), TensorParallelAttention(C, nh, world))):
        dense, tp = dense.double(), tp.double()
        tp.load_dense(dense, rank)
        xd, xt = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        yd = dense(xd)
        yd = yd[0] if isinstance(yd, tuple) else yd
        yt = tp(xt)
        (yd.square().sum()).backward()
        (yt.square().sum()).backward()
        check = copy.deepcopy(tp)
        check.load_dense(type("G", (), {k: _grad_linear(getattr(dense, k)) for k in _linears(dense)})(), rank)  # dense grads, sliced
        grads = _max_diff([p.grad for p in tp.parameters()], list(check.parameters()))
        out[name] = max((yd - yt).abs().max().item(), (xd.grad - xt.grad).abs().max().item(), grads)
        out[f"{name}_params_per_rank"] = sum(p.numel() for p in tp.parameters())
        out[f"{name}_params_dense"] = sum(p.numel() for p in dense.parameters())
    return out


def _linears(m: nn.Module) -> list[str]:
    return [k for k in ("up", "down", "q_proj", "k_proj", "v_proj", "out_proj") if hasattr(m, k)]


def _grad_linear(lin: nn.Linear) -> nn.Linear:
    r"""A stand-in ``nn.Linear`` whose weight and bias are ``lin``'s gradients (to slice them as the weights are)."""
    g = copy.deepcopy(lin)
    with torch.no_grad():
        g.weight.copy_(lin.weight.grad)
        if lin.bias is not None:
            g.bias.copy_(lin.bias.grad)
    return g


def pipeline_check(rank: int, world: int, micro: Sequence[int] = (1, 2, 4, 8), repeats: int = 3,
                   width: int = 512, batch: int = 256) -> dict[str, Any]:
    r"""GPipe over ``world`` stages: the gradient against one process, and the measured bubble for each micro-batch count."""
    torch.manual_seed(0)
    full = nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(2 * world)])
    per = len(full) // world
    stage = copy.deepcopy(full[rank * per : (rank + 1) * per])
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(batch, width, generator=gen), torch.randn(batch, width, generator=gen)
    loss_fn = nn.functional.mse_loss
    first, last = rank == 0, rank == world - 1
    kw = {"x": x if first else None, "y": y if last else None, "loss_fn": loss_fn if last else None}
    out: dict[str, Any] = {"stages": world, "micro_batches": list(micro), "measured": [], "slots": [], "formula": []}
    for m in micro:
        fracs, slots = [], []
        for _ in range(repeats):
            stage.zero_grad()
            dist.barrier()
            _, timeline = gpipe_step(stage, m, act_shape=(batch // m, width), **kw)
            timelines = [None] * world
            dist.all_gather_object(timelines, timeline)
            fracs.append(bubble_fraction(timelines))
            slots.append(bubble_fraction(timelines, clock="slots"))
        out["measured"].append(statistics.median(fracs))
        out["slots"].append(statistics.median(slots))
        out["formula"].append(bubble_formula(world, m))
    full(x).sub(y).square().mean().backward()  # one process, whole batch (mse_loss is this mean)
    out["grad_max_abs_diff"] = _max_diff([p.grad for p in stage.parameters()],
                                         [p.grad for p in full[rank * per : (rank + 1) * per].parameters()])
    diffs = [None] * world
    dist.all_gather_object(diffs, out["grad_max_abs_diff"])
    out["grad_max_abs_diff"] = max(diffs)
    out["timeline"] = timelines  # the last run's (m = max(micro))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    r"""Run every check on every rank; rank 0 writes ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the JSON file rank 0 writes")
    parser.add_argument("--quick", action="store_true", help="a small pipeline, run once per micro-batch count (tests)")
    args = parser.parse_args(argv)
    pipe_kw = {"micro": (1, 4), "repeats": 1, "width": 64, "batch": 16} if args.quick else {}
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        results = {"world_size": world, "backend": dist.get_backend()}
        samplers = [None] * world
        dist.all_gather_object(samplers, sampler_check(rank, world))
        results["sampler"] = samplers
        for name, fn in (("ddp", ddp_check), ("zero", zero_check), ("fsdp", fsdp_check), ("tp", tp_check)):
            results[name] = fn(rank, world)
        results["pipeline"] = pipeline_check(rank, world, **pipe_kw)
        if rank == 0:
            with open(args.out, "w") as f:
                json.dump(results, f)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
