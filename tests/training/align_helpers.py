"""Small random policies and rows for the alignment tests (chapter 31)."""

from __future__ import annotations

import torch

from dlscratch.models import GPT, GPTConfig

V, BLOCK, P = 11, 16, 5


def tiny_gpt(seed: int = 0, dtype: torch.dtype = torch.float64) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=V, block_size=BLOCK, n_layer=1, n_head=2, n_embd=16)).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))  # away from the initialisation, so the logits are not flat
    return model


def pair_rows(n: int, T: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    chosen = torch.randint(0, V, (n, T), generator=g)
    rejected = torch.randint(0, V, (n, T), generator=g)
    rejected[:, :P] = chosen[:, :P]
    return chosen, rejected
