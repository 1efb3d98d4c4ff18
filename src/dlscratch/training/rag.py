r"""Training and running the retriever and the reader of chapter 32, *Retrieval-augmented generation*.

The bi-encoder learns with in-batch negatives (DPR): in a batch of :math:`B` questions and their
:math:`B` passages, each passage is the positive of its question and a negative of every other,
so the loss is the cross-entropy of the :math:`(B, B)` similarity matrix with targets
:math:`0, 1, \ldots, B - 1`. CLIP (chapter 34) symmetrises the same loss over rows and columns.
The reader is a classifier trained on open-book and closed-book inputs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

import torch

from ..data.padding import pad_sequences
from ..data.shakespeare_turns import word_tokens
from ..layers.losses import cross_entropy, info_nce
from ..models.bert_inputs import pack_pair
from ..models.bi_encoder import BiEncoder, SpeakerReader
from ..tokenizers.vocab import WordVocab
from .loop import train
from .state import TrainState

__all__ = [
    "in_batch_negatives_loss",
    "word_ids",
    "encode_texts",
    "embed",
    "reader_inputs",
    "train_bi_encoder",
    "train_reader",
]


def in_batch_negatives_loss(sim: torch.Tensor) -> torch.Tensor:
    r"""DPR's loss: question :math:`i`'s positive is passage :math:`i`, the other :math:`B - 1` are its negatives.

    .. math::

        \mathcal{L} = -\frac{1}{B} \sum_{i=1}^{B} \log
        \frac{e^{\operatorname{sim}(q_i, p_i)}}{\sum_{j=1}^{B} e^{\operatorname{sim}(q_i, p_j)}}

    :func:`~dlscratch.layers.losses.info_nce` on a square matrix: the cross-entropy of the rows of
    the similarity matrix against targets ``arange(B)``.

    Shape:
        - sim: :math:`(B, B)`; output: scalar
    """
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"need a square (B, B) similarity matrix, got {tuple(sim.shape)}")
    return info_nce(sim)


def word_ids(text: str, stoi: dict[str, int]) -> list[int]:
    r"""The ids (``stoi``, a vocabulary's word → id) of the words (:func:`~dlscratch.data.shakespeare_turns.word_tokens`) of ``text``; unknown words are dropped."""
    return [stoi[w] for w in word_tokens(text) if w in stoi]


def encode_texts(texts: Sequence[str], vocab: WordVocab, max_len: int) -> list[list[int]]:
    r"""``[CLS] words [SEP]`` ids of each text (``<bos>`` and ``<eos>`` as the two markers), at most ``max_len`` long."""
    stoi = vocab.stoi  # built once: the property makes a new dict on every call
    return [pack_pair(word_ids(t, stoi), cls_id=vocab.bos_id, sep_id=vocab.eos_id, max_len=max_len)[0] for t in texts]


@torch.inference_mode()
def embed(encode: Callable[[torch.Tensor], torch.Tensor], seqs: Sequence[Sequence[int]], pad_id: int = 0,
          batch_size: int = 512, device: torch.device | str = "cpu") -> torch.Tensor:
    r"""Vectors of many id sequences, in batches sorted by length (less padding): :math:`(N, C)` in input order."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out: list[torch.Tensor] = [torch.empty(0)] * len(seqs)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        ids, _ = pad_sequences([seqs[i] for i in idx], pad_id)
        for i, v in zip(idx, encode(ids.to(device)).float().cpu()):
            out[i] = v
    return torch.stack(out)


def reader_inputs(passages: Sequence[Sequence[int] | None], questions: Sequence[Sequence[int]], vocab: WordVocab,
                  max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Reader batch: ``[CLS] passage [SEP] question [SEP]``, or ``[CLS] question [SEP]`` where the passage is ``None``.

    ``passages`` and ``questions`` are word ids without markers. Returns ids and token types,
    each :math:`(B, L)`, right-padded.
    """
    packed = [pack_pair(q, cls_id=vocab.bos_id, sep_id=vocab.eos_id, max_len=max_len) if p is None
              else pack_pair(p, q, cls_id=vocab.bos_id, sep_id=vocab.eos_id, max_len=max_len) for p, q in zip(passages, questions)]
    ids, _ = pad_sequences([p[0] for p in packed], vocab.pad_id)
    types, _ = pad_sequences([p[1] for p in packed], 0)
    return ids, types


def _pairs(positives: Sequence[int], batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless batches of example indices whose positives are all distinct (no false negative in a batch)."""
    rng = random.Random(seed)
    by_passage: dict[int, list[int]] = {}
    for i, p in enumerate(positives):
        by_passage.setdefault(p, []).append(i)
    keys = sorted(by_passage)
    if len(keys) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} distinct passages, got {len(keys)}")
    while True:
        yield [rng.choice(by_passage[p]) for p in rng.sample(keys, batch_size)]


def train_bi_encoder(model: BiEncoder, questions: Sequence[Sequence[int]], positives: Sequence[int],
                     passages: Sequence[Sequence[int]], *, steps: int, batch_size: int = 64, lr: float = 2e-3,
                     seed: int = 0) -> TrainState:
    r"""Train ``model`` with in-batch negatives on (question, positive passage) pairs.

    Args:
        model: the bi-encoder.
        questions: the training questions' ids (``[CLS] ... [SEP]``).
        positives: for each question, the index of its passage in ``passages``.
        passages: the passages' ids (``[CLS] ... [SEP]``).
        steps: Adam updates.
        batch_size: :math:`B`; every batch holds :math:`B` distinct passages.
        lr: AdamW's learning rate (warm-up over 5 % of the steps, then a linear decay).
        seed: seeds the batches.

    Returns:
        The final :class:`~dlscratch.training.state.TrainState` (its ``losses``).
    """
    if len(questions) != len(positives):
        raise ValueError(f"need one positive per question: {len(questions)} questions, {len(positives)} positives")
    dev = next(model.parameters()).device

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in _pairs(positives, batch_size, seed):
            q, _ = pad_sequences([questions[i] for i in idx], model.config.encoder.pad_id)
            p, _ = pad_sequences([passages[positives[i]] for i in idx], model.config.encoder.pad_id)
            yield q.to(dev), p.to(dev)

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    return train(model, batches(), opt, lambda s: min((s + 1) / warm, (steps - s) / (steps - warm + 1)), steps=steps,
                 loss_fn=lambda m, b: in_batch_negatives_loss(m(*b)), grad_clip=1.0)


def train_reader(model: SpeakerReader, passages: Sequence[Sequence[int]], questions: Sequence[Sequence[int]],
                 labels: Sequence[int], vocab: WordVocab, *, steps: int, batch_size: int = 64, lr: float = 2e-3,
                 max_len: int = 64, closed_book: float = 0.5, seed: int = 0) -> TrainState:
    r"""Train the reader on (passage, question, speaker) triples, a fraction ``closed_book`` of each batch without its passage.

    Args:
        model: the reader.
        passages: the passage of each example (word ids, no markers).
        questions: the question of each example (word ids, no markers).
        labels: the speaker id of each example.
        vocab: the word vocabulary (its ``<bos>``, ``<eos>`` and ``<pad>`` ids).
        steps: Adam updates.
        batch_size: examples per update.
        lr: AdamW's learning rate.
        max_len: longest input, markers included.
        closed_book: the probability that an example is shown without its passage.
        seed: seeds the batches.
    """
    if not len(passages) == len(questions) == len(labels):
        raise ValueError(f"need as many passages, questions and labels, got {len(passages)}, {len(questions)}, {len(labels)}")
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    y_all = torch.as_tensor(labels)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        while True:
            idx = torch.randint(0, len(labels), (batch_size,), generator=gen).tolist()
            drop = (torch.rand(batch_size, generator=gen) < closed_book).tolist()
            ids, types = reader_inputs([None if d else passages[i] for i, d in zip(idx, drop)], [questions[i] for i in idx], vocab, max_len)
            yield ids.to(dev), types.to(dev), y_all[idx].to(dev)

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    return train(model, batches(), opt, lambda s: min((s + 1) / warm, (steps - s) / (steps - warm + 1)), steps=steps,
                 loss_fn=lambda m, b: cross_entropy(m(b[0], b[1]), b[2]), grad_clip=1.0)
