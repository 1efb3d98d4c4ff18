"""Shared fixtures: every test starts from the same random state."""

from __future__ import annotations

import pytest
import torch

from dlscratch.utils import seed_everything


@pytest.fixture(autouse=True)
def _seed() -> None:
    seed_everything(1234)
    torch.set_default_dtype(torch.float32)
