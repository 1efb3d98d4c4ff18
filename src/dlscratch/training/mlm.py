r"""Masked-language-model pre-training and classifier fine-tuning for BERT (chapter 26).

:func:`mask_tokens` is BERT's corruption: each ordinary token is *chosen* with probability
:math:`p` (15 %), and a chosen token is replaced by ``[MASK]`` (80 %), by a random ordinary token
(10 %) or kept (10 %); the loss is taken at the chosen positions only. Special tokens are never
chosen. :func:`pretrain_mlm` trains a :class:`~dlscratch.models.bert.BertForMaskedLM` on random
windows ``[CLS] w [SEP]`` of a token stream; :func:`finetune_classifier` trains a
:class:`~dlscratch.models.bert.BertForSequenceClassification`; :func:`encoder_features` and
:func:`fit_linear_head` are feature extraction (a frozen encoder, a linear head). All go
through the book's one loop, :func:`~dlscratch.training.loop.train`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from ..models.bert import IGNORE_INDEX, BertForMaskedLM, BertForSequenceClassification, BertModel, check_labels
from ..optimizers.schedules import warmup_cosine
from .finetune import length_buckets
from .loop import train

__all__ = [
    "mask_tokens",
    "MLMTrainConfig",
    "mlm_batches",
    "pretrain_mlm",
    "finetune_classifier",
    "bert_accuracy",
    "encoder_features",
    "fit_linear_head",
]


def mask_tokens(
    ids: torch.Tensor, *, mask_id: int, special_ids: Sequence[int], vocab_size: int, p: float = 0.15,
    mask_frac: float = 0.8, random_frac: float = 0.1, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""BERT's masking: the corrupted inputs and the labels (the original ids at the chosen positions).

    .. math::

        c_t \sim \operatorname{Bernoulli}(p)\ \text{for ordinary tokens } (c_t = 0 \text{ for special ones}), \qquad
        \tilde{x}_t = \begin{cases}
            \texttt{[MASK]} & c_t = 1,\ u_t < 0.8 \\
            r_t \sim \mathcal{U}(\text{ordinary ids}) & c_t = 1,\ 0.8 \le u_t < 0.9 \\
            x_t & \text{otherwise}
        \end{cases}

    with :math:`u_t \sim \mathcal{U}(0, 1)`; the label is :math:`x_t` where :math:`c_t = 1` and
    :data:`~dlscratch.models.bert.IGNORE_INDEX` elsewhere. Random replacements are drawn from the
    ordinary ids only (the original draws from the whole vocabulary), so a special token never
    appears where there was none. Chapter 26.

    Args:
        ids: token ids, any shape.
        mask_id: the id of ``[MASK]``.
        special_ids: ids that are never chosen nor drawn (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``).
        vocab_size: the ids are ``0 .. vocab_size - 1``.
        p: the probability that an ordinary token is chosen, in :math:`(0, 1)`.
        mask_frac, random_frac: the shares of chosen tokens replaced by ``[MASK]`` and by a random
            token (the rest are kept).
        generator: a seeded generator on ``ids``' device.

    Returns:
        ``(inputs, labels)``, both of ``ids``' shape.

    Raises:
        ValueError: if ``p`` is not in (0, 1) or the shares are not a valid split.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"the mask probability p must be in (0, 1), got p={p!r}")
    if not (0.0 <= mask_frac and 0.0 <= random_frac and mask_frac + random_frac <= 1.0):
        raise ValueError(f"mask_frac and random_frac must be >= 0 with a sum <= 1, got {mask_frac} and {random_frac}")
    special = torch.tensor(sorted(set(special_ids)), dtype=ids.dtype, device=ids.device)
    ordinary = torch.ones(vocab_size, dtype=torch.bool, device=ids.device)
    ordinary[special] = False
    ordinary_ids = ordinary.nonzero().squeeze(1)  # (V_ordinary,)
    draw = partial(torch.rand, ids.shape, generator=generator, device=ids.device)
    chosen = (draw() < p) & ~torch.isin(ids, special)  # c_t
    u = draw()  # what happens to a chosen token
    to_mask = chosen & (u < mask_frac)
    to_random = chosen & (u >= mask_frac) & (u < mask_frac + random_frac)
    random_ids = ordinary_ids[torch.randint(len(ordinary_ids), ids.shape, generator=generator, device=ids.device)]
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), torch.where(to_random, random_ids, ids))
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    return inputs, labels


@dataclass(frozen=True)
class MLMTrainConfig:
    r"""The pre-training recipe: windows, masking and the optimiser (AdamW, warm-up and cosine decay)."""

    steps: int = 1000  # updates
    batch_size: int = 32  # windows per update
    seq_len: int = 64  # tokens per window, [CLS] and [SEP] included
    p: float = 0.15  # probability that an ordinary token is chosen
    lr: float = 1e-3  # peak learning rate
    warmup_steps: int = 100  # linear warm-up
    weight_decay: float = 0.01  # AdamW's, on every parameter
    grad_clip: float = 1.0  # global gradient-norm threshold
    seed: int = 0  # windows and masks

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.seq_len < 3:
            raise ValueError(f"need steps >= 1, batch_size >= 1, seq_len >= 3; got {self.steps}, {self.batch_size}, {self.seq_len}")
        if not 0.0 < self.p < 1.0:
            raise ValueError(f"the mask probability p must be in (0, 1), got p={self.p!r}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be in [0, steps={self.steps}]")


def mlm_batches(
    stream: torch.Tensor, cfg: MLMTrainConfig, *, cls_id: int, sep_id: int, mask_id: int, special_ids: Sequence[int],
    vocab_size: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    r"""Endless batches ``(inputs, labels)`` :math:`(B, T)`: random windows ``[CLS] w [SEP]`` of ``stream``, masked.

    The windows are :math:`T - 2` consecutive tokens from a uniformly random start (they may
    cross sentence boundaries, as RoBERTa's packed inputs do).
    """
    gen = torch.Generator(device=stream.device).manual_seed(cfg.seed)
    W = cfg.seq_len - 2
    if stream.numel() <= W:
        raise ValueError(f"the stream of {stream.numel()} tokens is shorter than a window of {W}")
    rows = stream.unfold(0, W, 1)  # (N - W + 1, W), a view
    ends = torch.tensor([[cls_id], [sep_id]], dtype=stream.dtype, device=stream.device)
    while True:
        starts = torch.randint(rows.size(0), (cfg.batch_size,), generator=gen, device=stream.device)  # (B,)
        B = cfg.batch_size
        ids = torch.cat([ends[0].expand(B, 1), rows[starts], ends[1].expand(B, 1)], dim=1)  # (B, T)
        yield mask_tokens(ids, mask_id=mask_id, special_ids=special_ids, vocab_size=vocab_size, p=cfg.p, generator=gen)


def _adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))


def pretrain_mlm(
    model: BertForMaskedLM, stream: torch.Tensor, cfg: MLMTrainConfig, *, cls_id: int, sep_id: int, mask_id: int,
    special_ids: Sequence[int],
) -> list[float]:
    r"""Pre-train ``model`` by masked language modelling on ``stream``; returns the loss of every update."""
    if cfg.seq_len > model.config.max_position:
        raise ValueError(f"seq_len={cfg.seq_len} exceeds the model's max_position={model.config.max_position}")
    batches = mlm_batches(stream, cfg, cls_id=cls_id, sep_id=sep_id, mask_id=mask_id, special_ids=special_ids,
                          vocab_size=model.config.vocab_size)
    schedule = partial(warmup_cosine, warmup_steps=max(cfg.warmup_steps, 1), total_steps=cfg.steps, min_ratio=0.1)
    state = train(model, batches, _adamw(model, cfg.lr, cfg.weight_decay), schedule, steps=cfg.steps,
                  loss_fn=lambda m, b: m.loss(b[0], b[1]), grad_clip=cfg.grad_clip, progress=False)
    return [float(v) for v in torch.stack(state.losses).cpu()]


def _trim(ids: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    L = int((~pad).sum(1).max())  # the longest sequence of the batch
    return ids[:, :L], pad[:, :L]


def finetune_classifier(
    model: BertForSequenceClassification, ids: torch.Tensor, key_padding_mask: torch.Tensor, labels: torch.Tensor, *,
    epochs: int, batch_size: int = 32, lr: float = 1e-3, warmup_frac: float = 0.1, weight_decay: float = 0.01,
    seed: int = 0,
) -> list[float]:
    r"""Train every parameter of ``model`` on ``(ids, labels)`` for ``epochs`` passes; returns each update's loss.

    Batches group examples of similar length (:func:`~dlscratch.training.finetune.length_buckets`,
    one pool spanning the whole set) and are cut to their
    longest sequence. AdamW with a linear warm-up over ``warmup_frac`` of the updates, then a
    cosine decay.

    Raises:
        ValueError: if a label is not a class of the model (``0 .. n_classes - 1``).
    """
    check_labels(labels, model.n_classes)
    if ids.shape != key_padding_mask.shape or ids.size(0) != labels.size(0):
        raise ValueError(f"ids {tuple(ids.shape)}, key_padding_mask {tuple(key_padding_mask.shape)} and labels {tuple(labels.shape)} disagree")
    gen = torch.Generator().manual_seed(seed)
    lengths = (~key_padding_mask).sum(1).cpu()
    one_pool = len(lengths)  # sort the whole set by length, not pools of it
    plan = [b for _ in range(epochs) for b in length_buckets(lengths, batch_size, gen, pool=one_pool)]
    batches = (_trim(ids[b], key_padding_mask[b]) + (labels[b],) for b in plan)
    steps = len(plan)
    schedule = partial(warmup_cosine, warmup_steps=max(1, round(warmup_frac * steps)), total_steps=steps, min_ratio=0.0)
    state = train(model, batches, _adamw(model, lr, weight_decay), schedule, steps=steps, grad_clip=1.0,
                  loss_fn=lambda m, b: m.loss(b[0], b[2], key_padding_mask=b[1]), progress=False)
    return [float(v) for v in torch.stack(state.losses).cpu()]


@torch.inference_mode()
def bert_accuracy(model: BertForSequenceClassification, ids: torch.Tensor, key_padding_mask: torch.Tensor,
                        labels: torch.Tensor, batch_size: int = 512) -> float:
    r"""Accuracy of ``model`` (in eval mode) on ``(ids, labels)``, in batches of similar length."""
    model.eval()
    order = (~key_padding_mask).sum(1).argsort()  # by length: less padding per batch
    correct = 0
    for s in range(0, ids.size(0), batch_size):
        rows = order[s : s + batch_size]
        x, pad = _trim(ids[rows], key_padding_mask[rows])
        correct += int((model(x, key_padding_mask=pad).argmax(-1) == labels[rows]).sum())
    return correct / ids.size(0)


@torch.no_grad()  # not inference_mode: the features are inputs of a training step afterwards
def encoder_features(encoder: BertModel, ids: torch.Tensor, key_padding_mask: torch.Tensor,
                     poolings: Sequence[str] = ("cls", "mean"), batch_size: int = 512) -> dict[str, torch.Tensor]:
    r"""Frozen features :math:`(N, C)` of one pass: the final ``[CLS]`` vector (``"cls"``) and/or the mean over the non-padding positions (``"mean"``)."""
    unknown = [p for p in poolings if p not in ("cls", "mean")]
    if unknown or not poolings:
        raise ValueError(f"poolings must be a non-empty choice of 'cls' and 'mean', got {tuple(poolings)!r}")
    encoder.eval()
    order = (~key_padding_mask).sum(1).argsort()  # by length: less padding per batch
    out: dict[str, list[torch.Tensor]] = {p: [] for p in poolings}
    for s in range(0, ids.size(0), batch_size):
        rows = order[s : s + batch_size]
        x, pad = _trim(ids[rows], key_padding_mask[rows])
        h = encoder(x, key_padding_mask=pad)  # (b, L, C)
        if "cls" in out:
            out["cls"].append(h[:, 0])  # (b, C)
        if "mean" in out:
            keep = (~pad).unsqueeze(-1).to(h.dtype)  # (b, L, 1)
            out["mean"].append((h * keep).sum(1) / keep.sum(1))  # (b, C)
    inverse = order.argsort()  # back to the input order
    return {p: torch.cat(v)[inverse] for p, v in out.items()}


def fit_linear_head(x: torch.Tensor, y: torch.Tensor, n_classes: int, *, weight_decay: float = 1e-4, steps: int = 300,
                    lr: float = 0.05) -> torch.nn.Linear:
    r"""A linear classifier (softmax regression) on fixed features, full-batch Adam on standardised inputs.

    The features are standardised with the training mean and deviation, folded back into the
    returned layer, so it applies to raw features.
    """
    check_labels(y, n_classes)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    head = torch.nn.Linear(x.size(1), n_classes).to(x.device)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(z), y) + weight_decay * head.weight.square().sum()
        loss.backward()
        opt.step()
    with torch.no_grad():  # W (x - mu) / sd + b = (W / sd) x + (b - W mu / sd)
        head.bias -= (head.weight / sd) @ mu
        head.weight /= sd
    return head
