"""`python -m dlscratch gpt train|sample` on tiny configs: checkpoint, exact resume, sampling, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dlscratch.cli.gpt as cli
import dlscratch.cli.lm as shared  # the code behind both commands
from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.training.checkpoint import read_checkpoint, save_checkpoint
from dlscratch.training.lm import LMTrainConfig, make_optimizer

TEXT = "".join(f"Line {i}: to be, or not to be; that is the question {i % 7}.\n" for i in range(60))
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--warmup-steps", "2", "--dropout", "0.1", "--device", "cpu"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def train(data: Path, out: Path, *extra: str) -> int:
    return cli.main(["train", "--data", str(data), "--out", str(out), "--steps", "6", "--eval-every", "3", *TINY, *extra])


def model_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_train_writes_a_checkpoint_and_resume_continues_exactly(data: Path, tmp_path: Path, monkeypatch) -> None:
    assert train(data, tmp_path / "straight") == 0
    straight = tmp_path / "straight" / "ckpt.pt"
    assert torch.load(straight, weights_only=True)["step"] == 6
    assert not list((tmp_path / "straight").glob("*.tmp"))  # the temporary file was renamed away
    best = read_checkpoint(tmp_path / "straight" / "best.pt")
    assert best["meta"]["best_val"] == read_checkpoint(straight)["meta"]["best_val"] < 10
    assert best["config"]["class"] == "GPTConfig" and best["config"]["fields"]["n_embd"] == 16
    assert "".join(best["tokenizer"]["itos"]) == "".join(sorted(set(TEXT)))

    class Interrupt(Exception):
        pass

    real_save = shared.save_checkpoint

    def save_then_crash(path, **kw):
        real_save(path, **kw)
        if kw["step"] == 3 and Path(path).name == "ckpt.pt":
            raise Interrupt  # the run dies right after its first checkpoint

    monkeypatch.setattr(shared, "save_checkpoint", save_then_crash)
    with pytest.raises(Interrupt):
        train(data, tmp_path / "split")
    monkeypatch.setattr(shared, "save_checkpoint", real_save)
    resumed = tmp_path / "split" / "ckpt.pt"
    assert torch.load(resumed, weights_only=True)["step"] == 3
    assert train(data, tmp_path / "split", "--resume") == 0
    a, b = model_state(straight), model_state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=lambda m, k=k: f"{k}: {m}")


def test_sample_is_seeded_and_cache_free_path_agrees(data: Path, tmp_path: Path, capsys) -> None:
    train(data, tmp_path / "run")
    ckpt = str(tmp_path / "run" / "ckpt.pt")
    capsys.readouterr()

    def sample(*extra: str) -> str:
        assert cli.main(["sample", "--ckpt", ckpt, "--prompt", "to be", "--tokens", "25", *extra]) == 0
        return capsys.readouterr().out

    first = sample("--seed", "3", "--top-k", "5", "--temperature", "0.8")
    assert first.startswith("to be") and len(first) == len("to be") + 25 + 1  # + print's newline
    assert set(first[:-1]) <= set(TEXT)
    assert sample("--seed", "3", "--top-k", "5", "--temperature", "0.8") == first
    assert sample("--seed", "3", "--top-k", "5", "--temperature", "0.8", "--no-cache") == first
    assert len(sample("--seed", "3", "--top-p", "0.9")) == len(first)
    with pytest.raises(ValueError, match="'Z'"):
        sample("--prompt", "Zebra")  # not in the vocabulary


def test_resume_from_another_config_names_path_and_field(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(data, out)
    with pytest.raises(ValueError, match=r"ckpt\.pt is from another GPTConfig: n_embd: expected 32, found 16"):
        cli.main(["train", "--data", str(data), "--out", str(out), "--steps", "6", *TINY, "--n-embd", "32", "--resume"])
    with pytest.raises(ValueError, match=r"ckpt\.pt.*train\.lr: expected 0\.1, found"):
        train(data, out, "--lr", "0.1", "--resume")


def test_a_finished_run_resumes_with_more_steps_on_the_new_schedule(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(data, out)
    before = model_state(out / "ckpt.pt")
    assert train(data, out, "--resume") == 0  # nothing left to do
    assert all(torch.equal(before[k], v) for k, v in model_state(out / "ckpt.pt").items())
    assert cli.main(["train", "--data", str(data), "--out", str(out), "--steps", "9", "--eval-every", "3", *TINY, "--resume"]) == 0
    ckpt = read_checkpoint(out / "ckpt.pt")
    assert ckpt["step"] == 9 and ckpt["meta"]["train"]["steps"] == 9
    lr = ckpt["optimizer"]["param_groups"][0]["lr"]
    cfg = LMTrainConfig.cpu()  # the preset's rates, with TINY's warm-up and the new total
    assert lr == pytest.approx(cfg.lr * cfg.min_lr_ratio)  # the cosine reaches its floor on step 9, not 6


def test_resume_on_another_vocabulary_is_refused(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(data, out)
    other = tmp_path / "other.txt"
    other.write_text(TEXT.replace("q", "Q") + "#", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ckpt\.pt.*vocabulary: expected \d+ characters, found \d+"):
        train(other, out, "--resume")


def test_truncated_or_foreign_checkpoints_are_refused(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(data, out)
    ckpt = out / "ckpt.pt"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"bad\.pt.*truncated or corrupt"):
        cli.main(["sample", "--ckpt", str(bad)])
    (tmp_path / "bad-run").mkdir()
    (tmp_path / "bad-run" / "ckpt.pt").write_bytes(bad.read_bytes())
    with pytest.raises(ValueError, match=r"bad-run/ckpt\.pt.*truncated or corrupt"):
        train(data, tmp_path / "bad-run", "--resume")
    foreign = tmp_path / "foreign.pt"
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4))
    save_checkpoint(foreign, model=model, optimizer=make_optimizer(model, LMTrainConfig()), step=0)
    with pytest.raises(ValueError, match=r"foreign\.pt holds no tokenizer"):
        cli.main(["sample", "--ckpt", str(foreign)])
    with pytest.raises(FileNotFoundError, match="missing"):
        cli.main(["sample", "--ckpt", str(tmp_path / "missing.pt")])
    with pytest.raises(FileNotFoundError, match="ckpt.pt"):
        train(data, tmp_path / "empty", "--resume")


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    run = subprocess.run([sys.executable, "-m", "dlscratch", "gpt", "sample", "--ckpt", str(bad)], capture_output=True, text=True)
    assert run.returncode == 2 and "error:" in run.stderr and "bad.pt" in run.stderr
    help_ = subprocess.run([sys.executable, "-m", "dlscratch", "gpt", "train", "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--resume" in help_.stdout and "--n-embd" in help_.stdout
