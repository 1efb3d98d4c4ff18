r"""Right-padding of variable-length token sequences into one batch tensor."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["pad_sequences"]


def pad_sequences(
    seqs: Sequence[Sequence[int]], pad_id: int, max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Stack token sequences into ``(N, L)``, right-padded with ``pad_id``.

    ``L`` is the longest sequence's length, or ``max_len`` when given; a sequence longer than
    ``max_len`` is cut to its first ``max_len`` tokens. The key-padding mask of a batch is
    ``ids == pad_id`` or, equivalently, ``arange(L) >= lengths[:, None]``.

    Args:
        seqs: ``N`` sequences of token ids.
        pad_id: the id written after each sequence's end.
        max_len: the width of the batch (and the length sequences are truncated to).

    Returns:
        ``ids`` ``(N, L)`` long and ``lengths`` ``(N,)`` long (after truncation).

    Raises:
        ValueError: if there are no sequences, a sequence is empty, or ``max_len`` < 1.
    """
    if len(seqs) == 0:
        raise ValueError("need at least one sequence to pad, got none")
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)  # (N,)
    if (lengths == 0).any():
        raise ValueError(f"sequence {int((lengths == 0).nonzero()[0])} is empty; every sequence needs a token")
    if max_len is not None:
        lengths = lengths.clamp(max=max_len)
    L = int(lengths.max()) if max_len is None else max_len
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)  # (N, L)
    for n, s in enumerate(seqs):
        ids[n, : lengths[n]] = torch.as_tensor(list(s[: lengths[n]]), dtype=torch.long)
    return ids, lengths
