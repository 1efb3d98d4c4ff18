"""Device selection, seeding and presets."""

from __future__ import annotations

import pytest
import torch

from dlscratch.utils import device, pick_preset, preset_name, seed_everything


def test_device_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLSCRATCH_DEVICE", raising=False)
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("DLSCRATCH_DEVICE", "cpu")
    assert device() == torch.device("cpu")


def test_device_bad_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLSCRATCH_DEVICE", "tpu9")
    with pytest.raises(ValueError, match="'tpu9'"):
        device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("DLSCRATCH_DEVICE", "cuda")
        with pytest.raises(ValueError, match="CUDA is not available"):
            device()


def test_seed_reproducible() -> None:
    g1 = seed_everything(7)
    a = torch.randn(5), torch.randn(3, generator=g1)
    g2 = seed_everything(7)
    b = torch.randn(5), torch.randn(3, generator=g2)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="-1"):
        seed_everything(-1)


def test_pick_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLSCRATCH_PRESET", raising=False)
    assert pick_preset("small", "big", torch.device("cpu")) == "small"
    assert pick_preset("small", "big", torch.device("cuda")) == "big"
    assert pick_preset("small", "big", torch.device("cuda"), reference="paper") == "big"  # the reference only when asked


@pytest.mark.parametrize(
    ("env", "dev", "want"),
    [("cpu", "cuda", "small"), ("gpu", "cpu", "big"), ("reference", "cpu", "paper"), (" GPU ", "cpu", "big")],
)
def test_preset_env_overrides_the_device(monkeypatch: pytest.MonkeyPatch, env: str, dev: str, want: str) -> None:
    monkeypatch.setenv("DLSCRATCH_PRESET", env)
    assert pick_preset("small", "big", torch.device(dev), reference="paper") == want
    assert preset_name(torch.device(dev)) == env.strip().lower()


def test_reference_preset_falls_back_to_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLSCRATCH_PRESET", "reference")
    assert pick_preset("small", "big", torch.device("cpu")) == "big"  # the chapter's GPU preset is its reference


def test_unknown_preset_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLSCRATCH_PRESET", "tpu")
    with pytest.raises(ValueError, match=r"DLSCRATCH_PRESET.*'tpu'"):
        preset_name(torch.device("cpu"))
