"""Chapter 37's pieces in one process: shards and buckets, tensor-parallel shards, recomputation, the meters and formulas."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlscratch.layers.attention.modules import MultiHeadAttention
from dlscratch.layers.feedforward import MLP
from dlscratch.layers.tensor_parallel import ColumnParallelLinear, RowParallelLinear, TensorParallelAttention, TensorParallelMLP
from dlscratch.training.parallel import (
    SavedTensorMeter,
    bubble_formula,
    bubble_fraction,
    checkpoint_sequential,
    make_buckets,
    shard_batch,
    split_micro_batches,
    torchrun_command,
    zero_bytes_formula,
)
from dlscratch.training.parallel.zero import ZeRO


def test_shard_batch_slices_and_refuses_an_uneven_split() -> None:
    assert [shard_batch(12, r, 3) for r in range(3)] == [slice(0, 4), slice(4, 8), slice(8, 12)]
    with pytest.raises(ValueError, match=r"world size 5 does not divide the batch of 12"):
        shard_batch(12, 0, 5)
    with pytest.raises(ValueError, match=r"rank=2, world_size=2"):
        shard_batch(4, 2, 2)


def test_buckets_are_reversed_and_capped() -> None:
    params = [torch.zeros(1000) for _ in range(5)]  # 4000 bytes each
    buckets = make_buckets(params, bucket_mb=8500 / 2**20)
    assert [len(b) for b in buckets] == [2, 2, 1] and buckets[0][0] is params[-1]
    assert len(make_buckets(params, bucket_mb=1e-6)) == 5  # one tensor at least per bucket
    with pytest.raises(ValueError, match="bucket_mb must be positive"):
        make_buckets(params, 0)


def test_tensor_parallel_degree_must_divide_the_heads() -> None:
    with pytest.raises(ValueError, match=r"tensor-parallel degree 3 does not divide num_heads=4"):
        TensorParallelAttention(32, 4, 3)
    with pytest.raises(ValueError, match=r"tensor-parallel degree 3 does not divide out_features=8"):
        ColumnParallelLinear(4, 8, 3)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_shards_sum_to_the_dense_layers(world: int) -> None:
    r"""Without a process group the reduce is the identity, so each rank's output is its partial sum: they add up to dense."""
    torch.set_default_dtype(torch.float64)
    x = torch.randn(2, 5, 16)
    for dense, make in ((MLP(16, 32), lambda: TensorParallelMLP(16, 32, world)),
                        (MultiHeadAttention(16, 4, causal=True), lambda: TensorParallelAttention(16, 4, world))):
        with torch.no_grad():
            for p in dense.parameters():
                p.add_(0.1 * torch.randn_like(p))  # non-zero biases
        parts = []
        for rank in range(world):
            tp = make()
            tp.load_dense(dense, rank)
            parts.append(tp(x) - tp.down.bias if isinstance(tp, TensorParallelMLP) else tp(x) - tp.out_proj.bias)
        want = dense(x)
        want = want[0] if isinstance(want, tuple) else want
        bias = dense.down.bias if isinstance(dense, MLP) else dense.out_proj.bias
        torch.testing.assert_close(sum(parts) + bias, want)


def test_row_parallel_load_dense_slices_columns() -> None:
    dense = nn.Linear(8, 3)
    row = RowParallelLinear(8, 3, 2)
    row.load_dense(dense, 1)
    assert torch.equal(row.weight, dense.weight[:, 4:]) and torch.equal(row.bias, dense.bias)


def _stack(n: int, width: int = 16) -> list[nn.Module]:
    return [nn.Sequential(nn.Linear(width, width), nn.GELU()) for _ in range(n)]


@pytest.mark.parametrize("n, segments", [(1, 1), (6, 2), (7, 3), (9, 9)])
def test_recompute_equals_plain_backward_and_torch_checkpoint(n: int, segments: int) -> None:
    torch.set_default_dtype(torch.float64)
    layers = _stack(n)
    x = torch.randn(4, 16, requires_grad=True)
    grads = []
    for how in ("plain", "ours", "torch"):
        for layer in layers:
            layer.zero_grad(set_to_none=True)
        x.grad = None
        if how == "plain":
            y = nn.Sequential(*layers)(x)
        elif how == "ours":
            y = checkpoint_sequential(layers, segments, x)
        else:
            y = torch.utils.checkpoint.checkpoint_sequential(nn.Sequential(*layers), segments, x, use_reentrant=True)
        y.square().sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for layer in layers for p in layer.parameters()])
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"segments must be in \[1, 1\]"):
        checkpoint_sequential(_stack(1), 2, x)


def test_meter_counts_activations_and_frees_them() -> None:
    layers = _stack(8, 32)
    params = [p for layer in layers for p in layer.parameters()]
    x = torch.randn(10, 32, requires_grad=True)
    act = 10 * 32 * 4  # one (10, 32) float32 activation
    with SavedTensorMeter(params) as plain:
        nn.Sequential(*layers)(x).sum().backward()
    assert plain.peak == 8 * 2 * act and plain.current == 0  # Linear and GELU inputs; all freed by backward
    with SavedTensorMeter(params) as ckpt:
        checkpoint_sequential(layers, 4, x).sum().backward()
    assert ckpt.peak == 3 * act + 2 * 2 * act and ckpt.current == 0  # 3 checkpoints + one segment of 2 layers


def test_pipeline_formula_fraction_and_micro_batches() -> None:
    assert bubble_formula(4, 12) == pytest.approx(3 / 15)
    p, m = 2, 3
    slots = [[("F", i, 0.0, 1.0, r + i) for i in range(m)] + [("B", i, 0.0, 1.0, 2 * (m + p - 1) - 1 - r - (m - 1 - i))
              for i in reversed(range(m))] for r in range(p)]
    assert bubble_fraction(slots, clock="slots") == pytest.approx(bubble_formula(p, m))
    wall = [[("F", 0, 0.0, 1.0, 0)], [("F", 0, 1.0, 2.0, 1)]]
    assert bubble_fraction(wall) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="3 micro-batches do not divide the batch of 8"):
        split_micro_batches(torch.zeros(8, 2), 3)
    with pytest.raises(ValueError, match="clock must be"):
        bubble_fraction(wall, clock="cpu")


def test_zero_formulas_match_the_paper() -> None:
    psi, n = 7.5e9, 64  # the ZeRO paper's Figure 1: 120, 31.4, 16.6 and 1.9 GB
    got = [zero_bytes_formula(psi, s, n, mixed_precision=True) / 1e9 for s in range(4)]
    assert got == pytest.approx([120.0, 31.4, 16.6, 1.9], abs=0.05)
    assert zero_bytes_formula(10, 0, 4) == 160 and zero_bytes_formula(10, 3, 4) == 40
    with pytest.raises(ValueError, match=r"stage=4"):
        zero_bytes_formula(10, 4, 2)
    with pytest.raises(ValueError, match=r"ZeRO stage must be 0, 1, 2 or 3, got 5"):
        ZeRO(nn.Sequential(nn.Linear(2, 2)), 5)


def test_torchrun_command_uses_loopback() -> None:
    cmd = torchrun_command(["pkg.mod", "--x"], nproc=3, port=1234)
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--master-addr=127.0.0.1" in cmd and "--master-port=1234" in cmd
    assert cmd[-3:] == ["-m", "pkg.mod", "--x"] and "--nproc-per-node=3" in cmd


def test_without_torchrun_a_process_is_rank_0_of_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlscratch.training.parallel import init_distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    env = init_distributed(torch.device("cpu"))
    assert (env.rank, env.world_size, env.device.type, env.is_main) == (0, 1, "cpu", True)
    assert not torch.distributed.is_initialized()
