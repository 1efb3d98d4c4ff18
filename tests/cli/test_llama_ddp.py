"""`torchrun --nproc-per-node=2 -m dlscratch llama train`: two processes on gloo take the steps of one at twice the batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dlscratch.cli.llama as cli
from dlscratch.training.checkpoint import read_checkpoint
from dlscratch.training.parallel.launch import run_torchrun

TEXT = "".join(f"Line {i}: to be, or not to be; that is the question {i % 7}.\n" for i in range(60))
TINY = ["--n-layer", "1", "--n-head", "4", "--n-kv-head", "2", "--n-embd", "16", "--ffn-hidden", "24",
        "--block-size", "16", "--warmup-steps", "2", "--steps", "5", "--eval-every", "5", "--device", "cpu"]


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_two_processes_equal_one_at_twice_the_batch(tmp_path: Path) -> None:
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    proc = run_torchrun(["dlscratch", "llama", "train", "--data", str(data), "--out", str(tmp_path / "ddp"),
                         "--batch-size", "3", *TINY], nproc=2, timeout=120)
    assert "data parallel: 2 processes (gloo) x 3 windows = 6 windows a step" in proc.stdout
    assert proc.stdout.count("done: val loss") == 1  # rank 0 alone logs
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "one"), "--batch-size", "6", *TINY]) == 0
    two, one = read_checkpoint(tmp_path / "ddp" / "ckpt.pt"), read_checkpoint(tmp_path / "one" / "ckpt.pt")
    assert two["step"] == one["step"] == 5
    for name, want in one["model"].items():
        torch.testing.assert_close(two["model"][name], want, rtol=1e-5, atol=1e-5, msg=name)
    assert abs(two["meta"]["best_val"] - one["meta"]["best_val"]) < 1e-5
    # and the comparison can fail: one process at the per-rank batch takes other steps
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "half"), "--batch-size", "3", *TINY]) == 0
    half = read_checkpoint(tmp_path / "half" / "ckpt.pt")
    assert max((half["model"][k] - v).abs().max().item() for k, v in one["model"].items()) > 1e-3
