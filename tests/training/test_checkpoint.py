"""Exact-resume checkpoints: bit-for-bit resume, atomic writes, config/tokenizer metadata, clear errors."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.optimizers import AdamW, lr_lambda, warmup_cosine
from dlscratch.tokenizers.char import CharTokenizer
from dlscratch.training.checkpoint import checkpoint_config, load_checkpoint, read_checkpoint, save_checkpoint


def mlp(hidden: int = 16, p_drop: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Dropout(p_drop), nn.Linear(hidden, 4)).double()


def train_steps(model, opt, sched, n: int, gen: torch.Generator) -> list[float]:
    """Steps drawing from every RNG: torch (dropout, batch), numpy, python, an explicit generator."""
    losses = []
    for _ in range(n):
        x = torch.randn(8, 6, dtype=torch.float64)  # global torch RNG
        y = torch.randint(0, 4, (8,), generator=gen)  # explicit generator
        noise = np.random.standard_normal() * 0.01 + random.random() * 0.01  # numpy and python
        loss = F.cross_entropy(model(x + noise), y)  # dropout draws from the torch RNG
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def make_run(seed: int):
    torch.manual_seed(seed)
    model = mlp(p_drop=0.3)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup_cosine, warmup_steps=3, total_steps=12))
    return model, opt, sched


def seed_all(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


def test_resume_reproduces_uninterrupted_run_bit_for_bit(tmp_path: Path) -> None:
    model_a, opt_a, sched_a = make_run(0)
    gen = seed_all(1)
    losses_a = train_steps(model_a, opt_a, sched_a, 12, gen)

    model_b, opt_b, sched_b = make_run(0)
    gen = seed_all(1)
    losses_b = train_steps(model_b, opt_b, sched_b, 5, gen)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model_b, optimizer=opt_b, scheduler=sched_b, step=5, generator=gen)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind

    model_c, opt_c, sched_c = make_run(123)  # a fresh process: other weights, other RNG states
    gen = seed_all(99)
    step = load_checkpoint(path, model=model_c, optimizer=opt_c, scheduler=sched_c, generator=gen)
    assert step == 5
    losses_c = train_steps(model_c, opt_c, sched_c, 7, gen)

    assert losses_b + losses_c == losses_a
    for a, c in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(a, c)
    assert opt_c.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt, _ = make_run(0)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, step=1)
    before = path.read_bytes()

    def crash(obj, fh) -> None:
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model=model, optimizer=opt, step=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_missing_and_corrupt_checkpoints_raise_clear_errors(tmp_path: Path) -> None:
    model, opt, sched = make_run(0)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_checkpoint(tmp_path / "nowhere.pt", model=model)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, scheduler=sched, step=3)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_checkpoint(truncated, model=model)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_checkpoint(garbage, model=model)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(ValueError, match="foreign.pt.*not a dlscratch-checkpoint"):
        load_checkpoint(foreign, model=model)


def test_checkpoint_from_another_model_is_rejected(tmp_path: Path) -> None:
    model, opt, _ = make_run(0)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, step=3)
    wider = mlp(hidden=32, p_drop=0.3)
    before = [p.detach().clone() for p in wider.parameters()]
    with pytest.raises(ValueError, match=r"ckpt.pt is from another model.*0.weight: checkpoint \(16, 6\) vs model \(32, 6\)"):
        load_checkpoint(path, model=wider)
    assert all(torch.equal(a, b) for a, b in zip(before, wider.parameters()))  # untouched
    renamed = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).double()  # other names
    with pytest.raises(ValueError, match=r"missing \['2.bias', '2.weight'\], unexpected \['3.bias', '3.weight'\]"):
        load_checkpoint(path, model=renamed)
    with pytest.raises(ValueError, match="no scheduler state"):
        load_checkpoint(path, model=model, scheduler=make_run(0)[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resume_with_map_location_cuda(tmp_path: Path) -> None:
    model = mlp(p_drop=0.3).cuda()
    opt = AdamW(model.parameters(), lr=1e-2)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, step=1)
    expected = torch.rand(3)  # the draw that follows the saved state
    assert load_checkpoint(path, model=model, optimizer=opt, map_location="cuda") == 1
    assert torch.equal(torch.rand(3), expected)


def test_optimizer_state_that_does_not_fit_is_rejected(tmp_path: Path) -> None:
    model, opt, _ = make_run(0)
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, optimizer=opt, step=1)
    two_groups = AdamW([{"params": model[0].parameters()}, {"params": model[3].parameters()}])
    with pytest.raises(ValueError, match="optimizer state in .*ckpt.pt does not fit"):
        load_checkpoint(path, model=model, optimizer=two_groups)


@dataclass(frozen=True)
class TinyConfig:
    width: int = 4  # hidden units
    depth: int = 1  # unused by the weights: a config change that leaves every shape alone
    bias: bool = True


class Tiny(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.fc = nn.Linear(3, config.width, bias=config.bias)


class OtherTiny(Tiny):
    pass


def test_config_and_tokenizer_are_stored_and_rebuild_the_model(tmp_path: Path) -> None:
    cfg = TinyConfig(width=5)
    model = Tiny(cfg)
    tok = CharTokenizer.from_text("hello")
    path = save_checkpoint(tmp_path / "ckpt.pt", model=model, step=2, tokenizer=tok, meta={"note": "x", "best": 1.5})
    ckpt = read_checkpoint(path)
    assert ckpt["model_class"] == "Tiny" and ckpt["config"] == {"class": "TinyConfig", "fields": {"width": 5, "depth": 1, "bias": True}}
    assert ckpt["tokenizer"]["itos"] == tok.itos and ckpt["meta"] == {"note": "x", "best": 1.5}
    again = Tiny(checkpoint_config(path, TinyConfig))
    assert load_checkpoint(path, model=again) == 2
    torch.testing.assert_close(again.fc.weight, model.fc.weight, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"ckpt\.pt holds no GPTConfig: expected config class GPTConfig, found TinyConfig"):
        checkpoint_config(path, type("GPTConfig", (), {}))


def test_checkpoint_of_another_class_or_config_is_rejected_naming_the_difference(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ckpt.pt", model=Tiny(TinyConfig()), step=1)
    with pytest.raises(ValueError, match=r"ckpt\.pt is from another model class: expected OtherTiny, found Tiny"):
        load_checkpoint(path, model=OtherTiny(TinyConfig()))
    deeper = Tiny(TinyConfig(depth=3))  # same parameter shapes, other config
    before = deeper.fc.weight.detach().clone()
    with pytest.raises(ValueError, match=r"ckpt\.pt is from another TinyConfig: depth: expected 3, found 1"):
        load_checkpoint(path, model=deeper)
    assert torch.equal(deeper.fc.weight, before)  # untouched
    with pytest.raises(ValueError, match=r"ckpt\.pt holds no optimizer state"):
        load_checkpoint(path, model=Tiny(TinyConfig()), optimizer=torch.optim.SGD(Tiny(TinyConfig()).parameters(), lr=0.1))


def test_a_checkpoint_of_the_old_format_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "old.pt"
    torch.save({"format": "dlscratch-checkpoint-v1", "step": 0}, old)
    with pytest.raises(ValueError, match=r"old\.pt is not a dlscratch-checkpoint-v2 file"):
        load_checkpoint(old, model=mlp())
