r"""Training and evaluating sequence language models (GPT-style) on one long token stream.

* :func:`split_text`: a character vocabulary and the first-90 % / last-10 % split of a text.
* :func:`random_windows`: a batch of random contiguous windows and their next-token targets.
* :func:`evaluate_sequence_nll`: the mean NLL of a *whole* split, every token predicted once
  (the windows it reads: :func:`window_plan`).
* :func:`train_sequence_lm`: AdamW, linear warm-up then cosine decay, gradient clipping,
  periodic validation, over :func:`~dlscratch.training.loop.train`.

Introduced in chapter 17, *GPT*.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from ..optimizers.muon import Muon, split_muon_params
from ..optimizers.schedules import lr_lambda, warmup_cosine
from ..tokenizers.char import CharTokenizer
from ..utils import mixed_precision_dtype
from .callbacks import Evaluate
from .loop import train
from .parallel.ddp import shard_batch

__all__ = [
    "TextSplit",
    "split_text",
    "random_windows",
    "window_plan",
    "evaluate_sequence_nll",
    "LMTrainConfig",
    "OptimizerChain",
    "make_optimizer",
    "LMHistory",
    "train_sequence_lm",
    "steps_for_seconds",
]


@dataclass(frozen=True)
class TextSplit:
    r"""A text's character tokenizer and its token ids, split into training and validation parts."""

    tokenizer: CharTokenizer  # vocabulary: the sorted distinct characters of the whole text
    train: torch.Tensor  # (N_train,) int64, the first train_fraction of the text
    val: torch.Tensor  # (N_val,) int64, the rest


def split_text(text: str, train_fraction: float = 0.9) -> TextSplit:
    r"""Encode ``text`` character by character and cut it at ``int(train_fraction * len(text))``.

    The cut is contiguous (not shuffled), as in nanoGPT's ``shakespeare_char``: the validation
    text is the end of the file, unseen during training.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    if len(text) < 4:
        raise ValueError(f"text of {len(text)} characters is too short to split")
    tok = CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    n = int(train_fraction * len(ids))
    return TextSplit(tok, ids[:n], ids[n:])


def random_windows(
    tokens: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Draw ``batch_size`` windows uniformly at random; the targets are the inputs shifted by one.

    .. math::

        x_b = (t_{s_b}, \ldots, t_{s_b + T - 1}), \quad y_b = (t_{s_b + 1}, \ldots, t_{s_b + T}),
        \quad s_b \sim \mathcal{U}\{0, \ldots, N - T - 1\}

    Args:
        tokens: the token stream (any device; the windows stay on it).
        block_size: window length :math:`T`.
        batch_size: number of windows :math:`B`.
        generator: a seeded CPU generator for the start positions.

    Shape:
        - tokens: :math:`(N,)`; outputs: :math:`(B, T)` each
    """
    N = tokens.numel()
    if not 1 <= block_size < N:
        raise ValueError(f"block_size={block_size} must be in [1, {N - 1}] for {N} tokens")
    starts = torch.randint(N - block_size, (batch_size,), generator=generator)  # (B,)
    rows = tokens.unfold(0, block_size + 1, 1)[starts.to(tokens.device)]  # (B, T + 1), a gather
    return rows[:, :-1], rows[:, 1:]  # (B, T), (B, T)


def window_plan(n_tokens: int, block_size: int, stride: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The windows :func:`evaluate_sequence_nll` reads: every prediction of ``n_tokens`` scored once.

    With :math:`T` = ``min(block_size, n_tokens - 1)``, the first window starts at token 0 and
    scores all its :math:`T` predictions; each later window ends ``stride`` predictions further
    on (the last one at the end of the split) and scores only the predictions it adds.

    Returns:
        ``(starts, first_scored)``: for each window, the index of its first input token and of
        the first prediction it scores (prediction :math:`t` is of token :math:`t + 1`).

    Raises:
        ValueError: if there are fewer than 2 tokens or ``stride`` is not in :math:`[1, T]`.
    """
    n_pred = n_tokens - 1
    if n_pred < 1:
        raise ValueError(f"need at least 2 tokens to evaluate, got {n_tokens}")
    T = min(block_size, n_pred)
    stride = T if stride is None else stride
    if not 1 <= stride <= T:
        raise ValueError(f"stride must be in [1, block_size={T}], got stride={stride}")
    ends = torch.tensor(list(range(T, n_pred, stride)) + [n_pred])  # prediction index just past each window
    first_scored = torch.cat([torch.zeros(1, dtype=torch.long), ends[:-1]])
    return ends - T, first_scored


@torch.inference_mode()
def evaluate_sequence_nll(
    model: Callable[[torch.Tensor], Any],
    tokens: torch.Tensor,
    block_size: int,
    stride: int | None = None,
    batch_size: int = 64,
) -> float:
    r"""Mean NLL of predicting every token of ``tokens`` but the first, each exactly once.

    .. math::

        \text{NLL} = -\frac{1}{N - 1} \sum_{t=1}^{N-1} \log p_\theta(x_t \mid x_{c(t)}, \ldots, x_{t-1})

    The :math:`N - 1` predictions are covered by windows of :math:`T` = ``block_size`` tokens
    (:func:`window_plan`). The first window scores all its :math:`T` predictions (contexts of 1
    to :math:`T` tokens); each later window ends ``stride`` predictions further on and scores
    only its last ``stride`` positions, which therefore see at least :math:`T - \text{stride} + 1`
    tokens of context. With ``stride = block_size`` (the default) the windows do not overlap and
    every context length from 1 to :math:`T` is equally common, as in training: the number
    estimates the same quantity as averaging the loss over random windows, but over the whole
    split. A smaller stride gives more context per prediction at :math:`T/\text{stride}` times
    the cost. The model runs in ``eval()`` mode (restored afterwards) under
    ``torch.inference_mode``; sums are in float64.

    Args:
        model: ``model(x)`` returns logits :math:`(B, T, V)` or a tuple starting with them.
        tokens: the split.
        block_size: the window length :math:`T` (at most the model's context).
        stride: predictions scored per window after the first, in :math:`[1, T]`.
        batch_size: windows per forward pass.

    Returns:
        The mean NLL in nats per token.

    Shape:
        - tokens: :math:`(N,)`, :math:`N \ge 2`
    """
    starts, first_scored = window_plan(tokens.numel(), block_size, stride)
    pos = torch.arange(min(block_size, tokens.numel() - 1))  # (T,)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    total = torch.zeros((), dtype=torch.float64)
    for i in range(0, len(starts), batch_size):
        idx = starts[i : i + batch_size, None] + pos  # (b, T) input positions
        x, y = tokens[idx.to(tokens.device)], tokens[(idx + 1).to(tokens.device)]  # (b, T), (b, T)
        scored = (idx >= first_scored[i : i + batch_size, None]).to(tokens.device)  # (b, T)
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out  # (b, T, V)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16/fp16 -> fp32
        nll = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")  # (b * T,)
        total += nll[scored.flatten()].double().sum().cpu()
    if was_training and hasattr(model, "train"):
        model.train()
    return (total / (tokens.numel() - 1)).item()


@dataclass(frozen=True)
class LMTrainConfig:
    r"""Optimisation settings of a sequence LM run. Presets match :class:`~dlscratch.models.gpt.GPTConfig`'s."""

    batch_size: int = 32  # windows per step (each of the model's block_size tokens)
    steps: int = 2000  # optimizer updates
    lr: float = 1e-3  # peak learning rate
    warmup_steps: int = 100  # linear warm-up from lr / warmup_steps to lr
    min_lr_ratio: float = 0.1  # the cosine ends at min_lr_ratio * lr on the last step
    weight_decay: float = 0.1  # AdamW's decoupled decay, on matrices and embeddings only
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.99  # AdamW second-moment decay (0.99: small batches, nanoGPT)
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 turns clipping off
    seed: int = 0  # seeds the window sampler
    bf16: bool = False  # mixed precision: autocast to bfloat16, or float16 with loss scaling where the GPU lacks bf16 (utils.mixed_precision_dtype)
    optimizer: str = "adamw"  # "adamw"; or "muon": Muon on the hidden matrices, AdamW on the rest (chapter 21)
    muon_lr: float = 0.02  # Muon's peak learning rate (the schedule scales it like lr)

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "muon"):
            raise ValueError(f"optimizer must be 'adamw' or 'muon', got optimizer={self.optimizer!r}")
        for name in ("batch_size", "steps", "warmup_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if self.steps <= self.warmup_steps:
            raise ValueError(f"steps={self.steps} must exceed warmup_steps={self.warmup_steps}")
        if not self.lr > 0 or self.grad_clip < 0 or self.weight_decay < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"need lr > 0, grad_clip >= 0, weight_decay >= 0, 0 <= min_lr_ratio <= 1; got {self}")

    @classmethod
    def cpu(cls) -> LMTrainConfig:
        r"""The chapter's CPU recipe (with :meth:`GPTConfig.cpu <dlscratch.models.gpt.GPTConfig.cpu>`): about a minute on 2 cores.

        Batch 32 windows, 1400 steps (2.9M characters), peak learning rate :math:`1.2 \times 10^{-2}`
        after 50 warm-up steps, cosine decay to 2 % of it.
        """
        return cls(batch_size=32, steps=1400, lr=1.2e-2, warmup_steps=50, min_lr_ratio=0.02)

    @classmethod
    def llama_cpu(cls) -> LMTrainConfig:
        r"""Chapter 21's CPU recipe (with :meth:`LlamaConfig.cpu <dlscratch.models.llama.LlamaConfig.cpu>`): about a minute on 2 cores.

        Chapter 17's recipe at half its peak learning rate: batch 32 windows, 1200 steps, peak
        :math:`6 \times 10^{-3}` after 50 warm-up steps, cosine decay to 2 % of it (GPT's
        :math:`1.2 \times 10^{-2}` is worse for this model: the untied head and the SwiGLU train
        best a little slower).
        """
        return cls(batch_size=32, steps=1200, lr=6e-3, warmup_steps=50, min_lr_ratio=0.02)

    @classmethod
    def llama_gpu(cls) -> LMTrainConfig:
        r"""Chapter 21's GPU recipe: nanoGPT's ``shakespeare_char`` optimisation (:meth:`gpu`) for the LLaMA of that size."""
        return cls.gpu()

    @classmethod
    def reference_cpu(cls) -> LMTrainConfig:
        r"""nanoGPT's README CPU recipe: batch 12, 2000 steps, lr 1e-3 to 1e-4, 100 warm-up steps."""
        return cls(batch_size=12, steps=2000, lr=1e-3, warmup_steps=100, min_lr_ratio=0.1)

    @classmethod
    def gpu(cls) -> LMTrainConfig:
        r"""The GPU preset: :meth:`reference` for half its steps, 2500, so that chapter 17 runs in about five minutes on a Colab T4.

        Batch 64 windows, lr :math:`10^{-3}` to :math:`10^{-4}`, mixed precision. The T4 estimate
        comes from the FLOPs counted by ``bench/t4_presets.py``.
        """
        return replace(cls.reference(), steps=2500)

    @classmethod
    def reference(cls) -> LMTrainConfig:
        r"""nanoGPT's ``shakespeare_char`` recipe: batch 64, 5000 steps, lr 1e-3 to 1e-4, mixed precision."""
        return cls(batch_size=64, steps=5000, lr=1e-3, warmup_steps=100, min_lr_ratio=0.1, bf16=True)

    def lr_at(self, step: int) -> float:
        r"""The learning rate of update ``step`` (0-based): :func:`~dlscratch.optimizers.warmup_cosine` times ``lr``."""
        return self.lr * warmup_cosine(step, self.warmup_steps, self.steps, self.min_lr_ratio)


class OptimizerChain:
    r"""Several optimizers over disjoint parameters, stepped as one (Muon on the matrices, AdamW on the rest).

    It has what the training loop and the checkpoints use: ``param_groups`` (all of them, so a
    schedule scales each group's own base rate), ``zero_grad``, ``step``, ``state_dict`` and
    ``load_state_dict``. Chapter 21.
    """

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("optimizers", [])
        if len(saved) != len(self.optimizers):
            raise ValueError(f"expected the states of {len(self.optimizers)} optimizers, found {len(saved)}")
        for opt, s in zip(self.optimizers, saved):
            opt.load_state_dict(s)


def make_optimizer(model: torch.nn.Module, cfg: LMTrainConfig) -> torch.optim.Optimizer:
    r"""``torch.optim.AdamW`` with weight decay on tensors of rank :math:`\ge 2` only (or Muon and AdamW).

    Matrices and embedding tables are decayed; LayerNorm gains and biases are not (decaying a
    gain towards 0 would shrink the normalised signal, not regularise it). The fused kernel is
    used (one pass over all parameters). With ``cfg.optimizer == "muon"``, the hidden weight
    matrices (:func:`~dlscratch.optimizers.muon.split_muon_params`) go to
    :class:`~dlscratch.optimizers.muon.Muon` at ``cfg.muon_lr`` (momentum 0.95, Nesterov, the
    same decoupled decay; the Newton-Schulz iteration in bfloat16 on a GPU and in the parameters'
    dtype elsewhere), the rest to that AdamW, in an :class:`OptimizerChain`.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    muon: list[torch.nn.Parameter] = []
    if cfg.optimizer == "muon":
        muon, _ = split_muon_params(model)
        ids = {id(p) for p in muon}
        params = [p for p in params if id(p) not in ids]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    adamw = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)
    if not muon:
        return adamw
    ns_dtype = torch.bfloat16 if muon[0].is_cuda else None  # bf16 matmuls are fast on GPUs, slow on CPUs
    muon_opt = Muon(muon, lr=cfg.muon_lr, weight_decay=cfg.weight_decay, momentum=0.95, nesterov=True, ns_dtype=ns_dtype)
    return OptimizerChain(muon_opt, adamw)  # type: ignore[return-value]


@dataclass
class LMHistory:
    r"""What a run measured: per-step training loss, periodic validation loss, time, tokens."""

    train_loss: list[float] = field(default_factory=list)  # loss of each step's batch
    lr: list[float] = field(default_factory=list)  # learning rate of each step
    val_steps: list[int] = field(default_factory=list)  # completed steps at each validation
    val_loss: list[float] = field(default_factory=list)  # validation NLL at those steps
    train_seconds: float = 0.0  # wall-clock seconds in training steps (validation excluded)
    tokens: int = 0  # training tokens processed
    best_step: int = 0  # completed steps at the lowest validation loss (0: never validated)


def train_sequence_lm(
    model: torch.nn.Module,
    train_tokens: torch.Tensor,
    cfg: LMTrainConfig,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    start_step: int = 0,
    val_tokens: torch.Tensor | None = None,
    eval_every: int = 0,
    on_eval: Callable[[int, float], None] | None = None,
    history: LMHistory | None = None,
    keep_best: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> LMHistory:
    r"""Train ``model`` on random windows of ``train_tokens`` for steps ``start_step .. cfg.steps - 1``.

    :func:`~dlscratch.training.loop.train` with batches from :func:`random_windows`, AdamW
    (:func:`make_optimizer`), the learning rate ``cfg.lr_at(step)``, the mean cross-entropy
    ``model(x, y)`` returns, gradient clipping to ``cfg.grad_clip`` and bf16 autocast if
    ``cfg.bf16``. Every ``eval_every`` steps and after the last, if ``val_tokens`` is given, an
    :class:`~dlscratch.training.callbacks.Evaluate` scores the model with
    :func:`evaluate_sequence_nll` and calls ``on_eval(completed_steps, val_nll)`` (the command
    line writes its checkpoint there). To resume exactly, pass the restored optimizer and
    generator and the completed step count.

    Args:
        model: returns ``(logits, loss)`` from ``model(x, y)``; its ``config.block_size`` sets
            the window length. Left in ``train()`` mode.
        train_tokens: the training stream, on the model's device.
        cfg: the optimisation settings.
        optimizer: from :func:`make_optimizer` when ``None``.
        generator: the window sampler's generator; seeded with ``cfg.seed`` when ``None``.
        start_step: completed steps so far (0 for a new run).
        val_tokens: the validation stream for periodic evaluation (``None``: none).
        eval_every: validate every this many steps (0: only after the last).
        on_eval: called after each validation.
        history: extended in place when given (resuming), else a new one.
        keep_best: end with the weights of the validation with the lowest loss (early stopping,
            as nanoGPT keeps its best checkpoint) instead of the last ones.
        rank: this process's rank in data-parallel training (chapter 37).
        world_size: the number of data-parallel processes. Every rank draws the same global
            batch of ``world_size * cfg.batch_size`` windows from ``generator`` and keeps its
            own slice (:func:`~dlscratch.training.parallel.ddp.shard_batch`), so ranks see
            disjoint windows and, with the gradients averaged (e.g. by
            :class:`~dlscratch.training.parallel.ddp.BucketedAllReduce`), ``world_size`` processes
            take the steps one process takes at ``world_size`` times the batch. With 1 (the
            default) the batches are exactly the single-process ones.

    Returns:
        The :class:`LMHistory`.
    """
    T = model.config.block_size
    opt = make_optimizer(model, cfg) if optimizer is None else optimizer
    gen = torch.Generator().manual_seed(cfg.seed) if generator is None else generator
    hist = LMHistory() if history is None else history
    mine = shard_batch(cfg.batch_size * world_size, rank, world_size)
    batches = iter(lambda: tuple(t[mine] for t in random_windows(train_tokens, T, cfg.batch_size * world_size, gen)), None)  # endless
    callbacks = []
    if val_tokens is not None:
        report = None if on_eval is None else lambda state, m: on_eval(state.step, m["val_loss"])
        val = Evaluate(eval_every, lambda m: {"val_loss": evaluate_sequence_nll(m, val_tokens, T)}, "val_loss", keep_best=keep_best, on_eval=report)
        callbacks.append(val)
    try:
        state = train(
            model, batches, opt, lr_lambda(warmup_cosine, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps, min_ratio=cfg.min_lr_ratio),
            steps=cfg.steps, loss_fn=lambda m, b: m(*b)[1], start_step=start_step, grad_clip=cfg.grad_clip,
            autocast=mixed_precision_dtype(next(model.parameters()).device) if cfg.bf16 else None, callbacks=callbacks, progress=rank == 0,  # one bar, on rank 0
        )
    finally:
        if val_tokens is not None:
            hist.val_steps += val.steps
            hist.val_loss += val.values("val_loss")
            if val.best >= 0:
                hist.best_step = val.steps[val.best]
    hist.train_loss += state.train_loss
    hist.lr += state.lrs
    hist.train_seconds += state.train_seconds
    hist.tokens += len(state.losses) * cfg.batch_size * T * world_size  # over all ranks
    return hist


def steps_for_seconds(model: torch.nn.Module, train_tokens: torch.Tensor, cfg: LMTrainConfig, seconds: float) -> int:
    r"""How many steps of ``cfg`` fit in ``seconds`` of training ``model``: the budget of an equal-time comparison.

    Trains a throwaway copy for 6 untimed warm-up steps, then times 21 steps (same batch size,
    optimizer and kernels), and divides. The cosine schedule needs to know where it ends, so an
    equal-time run is an equal-step run at each model's own speed. At least ``warmup_steps + 1``.
    """
    import copy

    probe = copy.deepcopy(model)
    short = replace(cfg, steps=6, warmup_steps=1)
    train_sequence_lm(probe, train_tokens, short)  # the first steps are slow (allocations, caches)
    timed = train_sequence_lm(probe, train_tokens, replace(short, steps=21))
    return max(cfg.warmup_steps + 1, int(seconds / (timed.train_seconds / 21)))
