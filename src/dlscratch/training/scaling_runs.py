r"""The runs of a scaling sweep: small GPTs trained for a budget of FLOPs (:math:`6ND`) or of tokens.

* :func:`ladder_config`: chapter 17's GPT at a given depth and width.
* :func:`train_run`: build, train (chapter 17's recipe, with a cosine as long as the run) and
  score one model; the budget is converted to steps, so a run is the same on every machine.

Introduced in chapter 29, *Scaling laws*.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.gpt import GPT, GPTConfig
from ..utils import seed_everything
from .lm import LMTrainConfig, evaluate_sequence_nll, train_sequence_lm
from .scaling import parameter_counts

__all__ = ["ScalingRun", "ladder_config", "train_run"]


@dataclass(frozen=True)
class ScalingRun:
    r"""What one run of a sweep was and what it reached."""

    n_layer: int  # L: blocks
    n_embd: int  # C: width
    n_params: int  # N, every parameter once (tied head and token table once)
    n_params_non_embedding: int  # N without the token and position tables (Kaplan's convention)
    tokens: int  # D: training tokens actually seen, steps * batch_size * block_size
    steps: int  # optimizer updates
    flops: float  # 6 N D with N = n_params
    val_loss: float  # mean validation NLL, nats per token
    train_seconds: float  # wall-clock training time (not part of the budget)


def ladder_config(n_layer: int, n_embd: int, vocab_size: int, block_size: int) -> GPTConfig:
    r"""A GPT of ``n_layer`` blocks ``n_embd`` wide: 2 heads up to 32 wide, heads 16 wide above; PyTorch's fused kernels."""
    if n_embd % 2 or (n_embd > 32 and n_embd % 16):
        raise ValueError(f"n_embd must be even, and a multiple of 16 above 32; got n_embd={n_embd}")
    n_head = 2 if n_embd <= 32 else n_embd // 16
    return GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd, kernels="fused")


def train_run(
    config: GPTConfig,
    train_tokens: torch.Tensor,
    val_tokens: torch.Tensor,
    *,
    flops: float | None = None,
    tokens: int | None = None,
    batch_size: int = 32,
    lr: float = 1e-2,
    seed: int = 0,
) -> ScalingRun:
    r"""Train a fresh GPT of ``config`` for a budget of ``flops`` (:math:`D = C / 6N`) or of ``tokens``, and score it.

    .. math::

        \text{steps} = \operatorname{round}\!\left(\frac{D}{B\,T}\right), \qquad
        D = \frac{C}{6N} \text{ (FLOP budget)}

    The weights come from ``seed_everything(seed)``; the recipe is chapter 17's: random windows,
    AdamW, a linear warm-up over a tenth of the steps (at most 20) and a cosine decay to a tenth
    of ``lr`` that ends with the run, as Hoffmann et al. (2022) match the schedule to the run.
    The validation loss is :func:`~dlscratch.training.lm.evaluate_sequence_nll` over all of
    ``val_tokens``.

    Raises:
        ValueError: unless exactly one of ``flops`` and ``tokens`` is given, positive, and
            worth at least 2 steps.
    """
    if (flops is None) == (tokens is None):
        raise ValueError(f"give exactly one budget, flops or tokens; got flops={flops!r}, tokens={tokens!r}")
    budget = flops if flops is not None else tokens
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ValueError(f"the budget must be a positive number, got {budget!r}")
    dev = train_tokens.device
    seed_everything(seed)
    model = GPT(config).to(dev)
    counts = parameter_counts(model)
    n = counts["with_embeddings"]
    d = flops / (6 * n) if flops is not None else tokens
    per_step = batch_size * config.block_size
    steps = round(d / per_step)
    if steps < 2:
        raise ValueError(f"the budget buys {d:.0f} tokens, {steps} steps of {per_step} tokens; need at least 2 steps")
    warmup = max(1, min(20, steps // 10))
    cfg = LMTrainConfig(batch_size=batch_size, steps=steps, lr=lr, warmup_steps=warmup, min_lr_ratio=0.1, seed=seed,
                        bf16=dev.type == "cuda" and torch.cuda.get_device_capability(dev)[0] >= 8)
    hist = train_sequence_lm(model, train_tokens, cfg)
    val = evaluate_sequence_nll(model, val_tokens, config.block_size, batch_size=256)
    seen = steps * per_step
    return ScalingRun(config.n_layer, config.n_embd, n, counts["non_embedding"], seen, steps, 6.0 * n * seen, val, hist.train_seconds)
