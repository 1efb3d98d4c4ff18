"""The chapter-37 experiments as two real processes on gloo (127.0.0.1, a free port, a time limit): one launch, many checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from dlscratch.training.parallel.launch import run_torchrun
from dlscratch.training.parallel.zero import zero_bytes_formula

pytestmark = pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs torch.distributed with gloo")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = Path(tmp_path_factory.mktemp("demo")) / "results.json"
    run_torchrun(["dlscratch.training.parallel.demo", "--out", str(out), "--quick"], nproc=2, timeout=180)
    return json.loads(out.read_text())


def test_bucketed_allreduce_equals_full_batch_and_torch_ddp(results: dict[str, Any]) -> None:
    ddp = results["ddp"]
    assert results["world_size"] == 2 and results["backend"] == "gloo"
    assert ddp["vs_full_batch"] < 1e-12 and ddp["vs_torch_ddp"] < 1e-12
    assert ddp["buckets"] > 1 and ddp["allreduce_calls"] == ddp["buckets"]  # one collective per bucket, not per tensor


def test_distributed_sampler_splits_and_reshuffles(results: dict[str, Any]) -> None:
    r0, r1 = results["sampler"]
    for epoch in ("epoch0", "epoch1"):
        assert sorted(r0[epoch] + r1[epoch]) == list(range(10))  # disjoint, and together every example once
    assert r0["epoch0"] != r0["epoch1"]  # set_epoch changes the order


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_zero_matches_adam_and_shards_the_bytes(results: dict[str, Any], stage: int) -> None:
    z = results["zero"][f"stage{stage}"]
    assert z["max_abs_diff"] < 1e-10
    want = zero_bytes_formula(results["zero"]["n_params"], stage, 2, element_size=8)
    assert want <= z["total"] <= want + 64 * 8 * 4  # padding to a multiple of N adds at most a few words per unit
    assert z["total"] / results["zero"]["stage0"]["total"] == pytest.approx([1, 0.75, 0.625, 0.5][stage], abs=1e-3)
    assert z["full_grads_after_backward"] == (stage < 2)  # stage 2 reduce-scatters during backward; stage 3 never has them


def test_fsdp_runs_on_gloo_and_agrees(results: dict[str, Any]) -> None:
    fsdp = results["fsdp"]
    assert fsdp["ran"], fsdp.get("error")
    assert fsdp["max_abs_diff"] < 1e-10
    assert fsdp["parameters"] < 0.6 * results["zero"]["stage0"]["parameters"]


def test_tensor_parallel_equals_dense(results: dict[str, Any]) -> None:
    tp = results["tp"]
    assert tp["mlp"] < 1e-12 and tp["attention"] < 1e-12
    assert tp["mlp_params_per_rank"] < tp["mlp_params_dense"]


def test_gpipe_gradients_and_schedule(results: dict[str, Any]) -> None:
    pipe = results["pipeline"]
    assert pipe["grad_max_abs_diff"] < 1e-5  # float32, micro-batch sums in another order
    assert pipe["slots"] == pytest.approx(pipe["formula"], abs=1e-9)
    assert all(0.0 <= b < 1.0 for b in pipe["measured"])
