r"""A generated sequence-to-sequence task: rewriting dates into ISO format.

Each example maps a date written the way people write it to its ISO 8601 form::

    "4 mar 1997"    -> "1997-03-04"
    "sep 30, 2041"  -> "2041-09-30"

The sources use two formats (day first, or month first with a comma), a three-letter month and
no leading zero on the day; years run from 1950 to 2049. The split is fixed by a seed and held
out by *date*: no calendar day of the test set appears in the training set, in either format.
Sources have at most 12 characters and targets exactly 10. Introduced in chapter 10
(*Recurrent networks*), where an encoder-decoder with attention learns the task.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..tokenizers.vocab import SeqVocab, SpecialTokenVocab

__all__ = [
    "MONTHS",
    "DATE_VOCAB",
    "Seq2SeqSplit",
    "Seq2SeqTensors",
    "format_date",
    "date_split",
    "encode_pairs",
]

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
FORMATS = ("{d} {mon} {y}", "{mon} {d}, {y}")  # the two source formats
FIRST_DAY, LAST_DAY = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)


DATE_VOCAB = SeqVocab("".join(sorted(set(" ,-0123456789" + "".join(MONTHS)))))


def format_date(day: datetime.date, fmt: int) -> tuple[str, str]:
    r"""The (source, target) pair of ``day`` with source format ``fmt`` (0 or 1)."""
    src = FORMATS[fmt].format(d=day.day, mon=MONTHS[day.month - 1], y=day.year)
    return src, day.isoformat()


@dataclass(frozen=True)
class Seq2SeqSplit:
    r"""Train / test (source, target) pairs of a generated task and its vocabulary."""

    train: list[tuple[str, str]]
    test: list[tuple[str, str]]
    vocab: SeqVocab


def date_split(n_train: int = 10_000, n_test: int = 1_000, seed: int = 0) -> Seq2SeqSplit:
    r"""Draw ``n_train + n_test`` distinct days with ``random.Random(seed)``; the last ``n_test`` are held out.

    Each day gets one of the two source formats at random.

    Raises:
        ValueError: if the sizes are not positive or ask for more days than the range holds.
    """
    n_days = (LAST_DAY - FIRST_DAY).days + 1
    if n_train <= 0 or n_test <= 0 or n_train + n_test > n_days:
        raise ValueError(f"need 0 < n_train, 0 < n_test and n_train + n_test <= {n_days}, got {n_train} and {n_test}")
    rng = random.Random(seed)
    offsets = rng.sample(range(n_days), n_train + n_test)  # distinct days
    pairs = [format_date(FIRST_DAY + datetime.timedelta(days=o), rng.randrange(len(FORMATS))) for o in offsets]
    return Seq2SeqSplit(pairs[:n_train], pairs[n_train:], DATE_VOCAB)


@dataclass(frozen=True)
class Seq2SeqTensors:
    r"""A padded batch of pairs: ``tgt_in`` is ``<bos>`` + target, ``tgt_out`` is target + ``<eos>``."""

    src: torch.Tensor  # (N, S) source ids, padded with <pad>
    src_len: torch.Tensor  # (N,) number of real source tokens
    tgt_in: torch.Tensor  # (N, T) decoder inputs: <bos>, y_1 .. y_{n}, <pad> ...
    tgt_out: torch.Tensor  # (N, T) decoder targets: y_1 .. y_{n}, <eos>, <pad> ...

    def to(self, device: torch.device | str) -> "Seq2SeqTensors":
        r"""The same batch on ``device``."""
        return Seq2SeqTensors(*(t.to(device) for t in (self.src, self.src_len, self.tgt_in, self.tgt_out)))

    def __getitem__(self, ix: torch.Tensor | slice) -> "Seq2SeqTensors":
        r"""The examples ``ix`` (an index tensor or a slice)."""
        return Seq2SeqTensors(self.src[ix], self.src_len[ix], self.tgt_in[ix], self.tgt_out[ix])

    def __len__(self) -> int:
        return self.src.shape[0]


def encode_pairs(
    pairs: Sequence[tuple[str, str]], vocab: SpecialTokenVocab, tgt_vocab: SpecialTokenVocab | None = None
) -> Seq2SeqTensors:
    r"""Encode and pad (source, target) pairs into tensors (see :class:`Seq2SeqTensors`).

    Args:
        pairs: (source, target) texts.
        vocab: the source vocabulary (and the target one unless ``tgt_vocab`` is given).
        tgt_vocab: the target vocabulary, when it differs (chapter 16: words to digits).

    Raises:
        ValueError: on an empty list, an empty source, or an unknown token.
    """
    tgt_vocab = vocab if tgt_vocab is None else tgt_vocab
    if not pairs:
        raise ValueError("no pairs to encode")
    srcs = [vocab.encode(s) for s, _ in pairs]
    tgts = [tgt_vocab.encode(t) for _, t in pairs]
    if any(len(s) == 0 for s in srcs):
        raise ValueError(f"every source needs at least one of its {vocab.kind}")
    pad, bos, eos = tgt_vocab.pad_id, tgt_vocab.bos_id, tgt_vocab.eos_id
    N, S, T = len(pairs), max(map(len, srcs)), max(map(len, tgts)) + 1
    src = torch.full((N, S), vocab.pad_id, dtype=torch.long)
    tgt_in = torch.full((N, T), pad, dtype=torch.long)
    tgt_out = torch.full((N, T), pad, dtype=torch.long)
    for n, (s, t) in enumerate(zip(srcs, tgts)):
        src[n, : len(s)] = torch.tensor(s)
        tgt_in[n, : len(t) + 1] = torch.tensor([bos, *t])
        tgt_out[n, : len(t) + 1] = torch.tensor([*t, eos])
    src_len = torch.tensor([len(s) for s in srcs], dtype=torch.long)
    return Seq2SeqTensors(src, src_len, tgt_in, tgt_out)
