r"""BERT's input format: ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]``, token types, padding.

The first position holds ``[CLS]``, whose final vector the pooler reads; ``[SEP]`` ends each
segment; the token type is 0 up to and including the first ``[SEP]`` and 1 after it. A pair too
long for ``max_len`` is shortened one token at a time from the end of the longer segment (the
original ``_truncate_seq_pair``), so both keep as much as they can. Chapter 26.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..layers.checks import check_positive_int

__all__ = ["pack_pair", "batch_inputs"]


def pack_pair(
    a: Sequence[int], b: Sequence[int] | None = None, *, cls_id: int, sep_id: int, max_len: int
) -> tuple[list[int], list[int]]:
    r"""Token ids and token types of ``[CLS] a [SEP]`` (or ``[CLS] a [SEP] b [SEP]``), at most ``max_len`` long.

    Args:
        a: the first segment's ids.
        b: the second segment's ids, or ``None`` for a single segment.
        cls_id, sep_id: the ids of ``[CLS]`` and ``[SEP]``.
        max_len: the longest result, special tokens included.

    Returns:
        ``(ids, types)``, two lists of equal length.

    Raises:
        ValueError: if ``max_len`` cannot hold the special tokens and one token of each segment.
    """
    check_positive_int("max_len", max_len)
    a, b = list(a), None if b is None else list(b)
    n_special = 2 if b is None else 3
    need = n_special + 1 + (0 if b is None else 1)
    if max_len < need:
        raise ValueError(f"max_len={max_len} is too small: {n_special} special tokens and a token of each segment need {need}")
    if b is None:
        a = a[: max_len - n_special]
        return [cls_id, *a, sep_id], [0] * (len(a) + 2)
    while len(a) + len(b) > max_len - n_special:  # drop from the end of the longer segment
        (a if len(a) > len(b) else b).pop()
    return [cls_id, *a, sep_id, *b, sep_id], [0] * (len(a) + 2) + [1] * (len(b) + 1)


def batch_inputs(
    texts: Sequence[Sequence[int]], *, cls_id: int, sep_id: int, pad_id: int, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Single segments ``[CLS] s [SEP]`` right-padded to the longest one: ids and the key-padding mask.

    Returns:
        ``ids`` :math:`(N, L)` long and ``key_padding_mask`` :math:`(N, L)` bool (``True`` at padding),
        with :math:`L \le` ``max_len``.
    """
    if len(texts) == 0:
        raise ValueError("need at least one sequence, got none")
    packed = [pack_pair(t, cls_id=cls_id, sep_id=sep_id, max_len=max_len)[0] for t in texts]
    L = max(len(p) for p in packed)
    ids = torch.full((len(packed), L), pad_id, dtype=torch.long)  # (N, L)
    for n, p in enumerate(packed):
        ids[n, : len(p)] = torch.tensor(p, dtype=torch.long)
    lengths = torch.tensor([len(p) for p in packed])  # (N,)
    return ids, torch.arange(L)[None, :] >= lengths[:, None]  # (N, L), (N, L)
