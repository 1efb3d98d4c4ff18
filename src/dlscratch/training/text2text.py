r"""Text-to-text training for encoder-decoders: a BPE vocabulary with sentinels, batches, the loop, exact match.

Every task is a pair of strings: an input with a task prefix (``"sentiment: ..."``) and the
output the decoder must write (``"fresh"``). The same model, loss and decoding serve every
task, which is T5's framing (Raffel et al., 2020). Introduced in chapter 28, *T5 and the
encoder-decoder family*.

Symbols: N examples, B batch, S source length, T target length, V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.padding import pad_sequences
from ..tokenizers.bpe import ByteBPETokenizer
from .loop import train

__all__ = ["T5_SPECIALS", "t5_tokenizer", "sentinel_ids", "Text2TextBatch", "encode_text2text",
           "seq2seq_loss", "RelativeStepLR", "train_text2text", "exact_match"]

T5_SPECIALS = ("<pad>", "</s>", "<bos>")  # padding, end of sequence, the decoder's start


def t5_tokenizer(text: str, vocab_size: int = 1024, num_sentinels: int = 32) -> ByteBPETokenizer:
    r"""A byte-level BPE (chapter 14) trained on ``text``, with T5's specials: ``<pad>``, ``</s>``, ``<bos>``, ``<extra_id_0>`` ...

    The specials take the last ids; the merges fill the rest of ``vocab_size``.

    Raises:
        ValueError: if ``num_sentinels`` is not a positive integer or ``vocab_size`` leaves no room for them.
    """
    if isinstance(num_sentinels, bool) or not isinstance(num_sentinels, int) or num_sentinels < 1:
        raise ValueError(f"num_sentinels must be a positive integer, got {num_sentinels!r}")
    specials = [*T5_SPECIALS, *(f"<extra_id_{i}>" for i in range(num_sentinels))]
    return ByteBPETokenizer.train(text, vocab_size, special_tokens=specials)


def sentinel_ids(tok: ByteBPETokenizer) -> torch.Tensor:
    r"""The ids of ``<extra_id_0>``, ``<extra_id_1>``, ... in order: :math:`(K,)`."""
    ids = [i for s, i in tok.special_tokens.items() if s.startswith("<extra_id_")]
    return torch.tensor(ids, dtype=torch.long)


@dataclass(frozen=True)
class Text2TextBatch:
    r"""Padded ids of input-output pairs: ``src`` ends with ``</s>``; ``tgt_in`` = ``<bos>`` + output; ``tgt_out`` = output + ``</s>``."""

    src: torch.Tensor  # (N, S)
    tgt_in: torch.Tensor  # (N, T)
    tgt_out: torch.Tensor  # (N, T)
    pad_id: int  # the padding id of all three

    def __len__(self) -> int:
        return self.src.size(0)

    def take(self, idx: torch.Tensor, device: torch.device | str | None = None) -> "Text2TextBatch":
        r"""The rows ``idx``, cut to their longest input and output, on ``device``."""
        src, tgt_in, tgt_out = self.src[idx], self.tgt_in[idx], self.tgt_out[idx]
        s = int((src != self.pad_id).sum(1).max())
        t = int((tgt_out != self.pad_id).sum(1).max())
        return Text2TextBatch(src[:, :s].to(device), tgt_in[:, :t].to(device), tgt_out[:, :t].to(device), self.pad_id)


def encode_text2text(tok: ByteBPETokenizer, inputs: Sequence[str], outputs: Sequence[str], max_input: int = 256) -> Text2TextBatch:
    r"""Encode pairs (inputs cut to ``max_input`` tokens before ``</s>``) and right-pad them with ``<pad>``.

    Raises:
        ValueError: if the two lists differ in length or are empty.
    """
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError(f"need as many outputs as inputs (and at least one), got {len(inputs)} and {len(outputs)}")
    pad, eos, bos = (tok.special_tokens[s] for s in T5_SPECIALS)
    src, _ = pad_sequences([tok.encode(x)[:max_input] + [eos] for x in inputs], pad)
    out = [tok.encode(y) for y in outputs]
    tgt_in, _ = pad_sequences([[bos] + y for y in out], pad)
    tgt_out, _ = pad_sequences([y + [eos] for y in out], pad)
    return Text2TextBatch(src, tgt_in, tgt_out, pad)


def seq2seq_loss(model: nn.Module, src: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor, pad_id: int) -> torch.Tensor:
    r"""Mean cross-entropy of the output tokens (``</s>`` included, padding ignored), by teacher forcing."""
    logits = model(src, tgt_in)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=pad_id)


class RelativeStepLR(torch.optim.lr_scheduler.LRScheduler):
    r"""Adafactor's relative step size for an optimizer with one tensor :math:`W` per group.

    At update :math:`t` group :math:`W` gets :math:`\eta\, s(t) \max\bigl(\epsilon, \operatorname{RMS}(W_t)\bigr)`,
    with :math:`\eta` the group's base rate, ``schedule`` :math:`s` and :math:`\epsilon` = ``min_scale``.
    Stepped after every update, so the rate of update :math:`t` is set from the weights it updates.

    Raises:
        ValueError: if a group holds more than one tensor.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Callable[[int], float], min_scale: float = 1e-3) -> None:
        sizes = [len(g["params"]) for g in optimizer.param_groups]
        if any(n != 1 for n in sizes):
            raise ValueError(f"RelativeStepLR needs one tensor per parameter group, got groups of {sizes}")
        self.schedule, self.min_scale = schedule, min_scale
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        weights = [g["params"][0] for g in self.optimizer.param_groups]
        with torch.no_grad():
            norms = torch.stack(torch._foreach_norm(weights)).tolist()  # one transfer for all tensors
        scale = self.schedule(self.last_epoch)
        return [base * scale * max(self.min_scale, norm / w.numel() ** 0.5)  # eta s(t) max(eps, RMS(W))
                for base, w, norm in zip(self.base_lrs, weights, norms)]


def train_text2text(model: nn.Module, batch_at: Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]], steps: int,
                    lr: float, *, pad_id: int, warmup: int = 30, clip: float = 1.0, min_scale: float = 1e-3) -> list[float]:
    r"""AdamW with Adafactor's relative step size, linear warm-up and cosine decay to 10 %.

    T5 trained with Adafactor (Shazeer & Stern, 2018), whose update of a tensor :math:`W` is
    proportional to its own scale. We keep AdamW's update and give every tensor the learning rate

    .. math::

        \eta_W(t) = \eta\, s(t) \max\bigl(\epsilon, \operatorname{RMS}(W_t)\bigr)

    with the schedule :math:`s(t)` and :math:`\epsilon` = ``min_scale`` (:class:`RelativeStepLR`):
    T5's embedding, drawn with standard deviation 1, moves as fast, relative to its size, as a
    :math:`W_Q` drawn :math:`\sqrt{C\, d_{kv}}` times smaller. ``batch_at(step)`` gives
    ``(src, tgt_in, tgt_out)``; the updates run through :func:`~dlscratch.training.loop.train`.

    Returns:
        The training loss of every step.

    Raises:
        ValueError: unless ``steps`` is a positive integer.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p]} for p in params], lr=lr, betas=(0.9, 0.98), weight_decay=0.0)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    state = train(model, map(batch_at, range(steps)), opt, RelativeStepLR(opt, schedule, min_scale), steps=steps,
                  loss_fn=lambda m, b: seq2seq_loss(m, *b, pad_id=pad_id), params=params, grad_clip=clip)
    model.eval()
    return torch.stack(state.losses).tolist()


def exact_match(model: nn.Module, tok: ByteBPETokenizer, data: Text2TextBatch, outputs: Sequence[str], *, max_len: int,
                batch_size: int = 256, beam_size: int = 1) -> tuple[float, list[str]]:
    r"""The share of examples whose decoded output equals ``outputs`` exactly, and the decoded strings.

    Decodes with ``model.generate`` (the kit's greedy or beam search) and cuts each output at its
    first ``</s>``.
    """
    eos = tok.special_tokens["</s>"]
    dev = next(model.parameters()).device
    preds: list[str] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(data)))
            out = model.generate(data.take(idx, dev).src, max_len, beam_size=beam_size).tolist()
            for row in out:
                row = row[: row.index(eos)] if eos in row else row
                preds.append(tok.decode(row))
    correct = sum(p == y for p, y in zip(preds, outputs))
    return correct / len(outputs), preds
