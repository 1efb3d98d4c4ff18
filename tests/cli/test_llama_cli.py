"""`python -m dlscratch llama train|sample|export`: the shared command line with LLaMA, and the architecture checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dlscratch.cli.gpt as gpt_cli
import dlscratch.cli.llama as cli
from dlscratch.training.checkpoint import read_checkpoint

TEXT = "".join(f"Line {i}: to be, or not to be; that is the question {i % 7}.\n" for i in range(60))
TINY = ["--n-layer", "1", "--n-head", "4", "--n-kv-head", "2", "--n-embd", "16", "--ffn-hidden", "24",
        "--block-size", "16", "--batch-size", "4", "--warmup-steps", "2", "--device", "cpu"]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(data), "--out", str(out), "--steps", "6", "--eval-every", "3", *TINY]) == 0
    return out


def test_train_resume_and_sample(run: Path, tmp_path: Path, capsys) -> None:
    ckpt = read_checkpoint(run / "ckpt.pt")
    assert ckpt["step"] == 6 and ckpt["model_class"] == "LLaMA" and ckpt["config"]["fields"]["n_kv_head"] == 2
    data = tmp_path / "text.txt"
    before = ckpt["model"]
    assert cli.main(["train", "--data", str(data), "--out", str(run), "--steps", "9", "--eval-every", "3", *TINY, "--resume"]) == 0
    assert read_checkpoint(run / "ckpt.pt")["step"] == 9
    assert any(not torch.equal(before[k], v) for k, v in read_checkpoint(run / "ckpt.pt")["model"].items())
    capsys.readouterr()
    outs = []
    for extra in ([], ["--no-cache"]):
        assert cli.main(["sample", "--ckpt", str(run / "best.pt"), "--prompt", "to be", "--tokens", "20", "--seed", "2", *extra]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and outs[0].startswith("to be") and len(outs[0]) == len("to be") + 20 + 1


def test_export_writes_a_folder_and_refuses_a_full_one(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    assert cli.main(["export", "--ckpt", str(run / "best.pt"), "--out", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    with pytest.raises(ValueError, match=r"hf is not empty \(it holds \['config.json', 'model.safetensors'\]\).*--force"):
        cli.main(["export", "--ckpt", str(run / "best.pt"), "--out", str(folder)])
    assert cli.main(["export", "--ckpt", str(run / "best.pt"), "--out", str(folder), "--force"]) == 0


def test_the_other_architecture_is_refused_by_name(run: Path, tmp_path: Path) -> None:
    data = tmp_path / "text.txt"
    gpt_out = tmp_path / "gpt"
    assert gpt_cli.main(["train", "--data", str(data), "--out", str(gpt_out), "--steps", "3", "--n-layer", "1", "--n-head", "2",
                         "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--warmup-steps", "1", "--device", "cpu"]) == 0
    with pytest.raises(ValueError, match=r"holds no LlamaConfig: expected config class LlamaConfig, found GPTConfig"):
        cli.main(["sample", "--ckpt", str(gpt_out / "ckpt.pt")])
    with pytest.raises(ValueError, match=r"holds no GPTConfig: expected config class GPTConfig, found LlamaConfig"):
        gpt_cli.main(["sample", "--ckpt", str(run / "ckpt.pt")])
    with pytest.raises(ValueError, match=r"holds no LlamaConfig: expected config class LlamaConfig, found GPTConfig"):
        cli.main(["export", "--ckpt", str(gpt_out / "ckpt.pt"), "--out", str(tmp_path / "x")])


def test_bad_head_counts_are_refused() -> None:
    with pytest.raises(ValueError, match=r"n_head=4 must be a multiple of n_kv_head=3"):
        cli.main(["train", "--steps", "3", "--n-head", "4", "--n-kv-head", "3", "--device", "cpu"])


def test_python_dash_m_llama_help() -> None:
    help_ = subprocess.run([sys.executable, "-m", "dlscratch", "llama", "train", "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--resume" in help_.stdout and "--n-kv-head" in help_.stdout
    help_ = subprocess.run([sys.executable, "-m", "dlscratch", "llama", "export", "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--force" in help_.stdout
