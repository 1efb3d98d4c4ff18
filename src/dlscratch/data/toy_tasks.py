r"""Small generated tasks that need attention (chapter 12) or token order (chapter 13).

Every generator is seeded and returns CPU tensors, so a chapter can train on them in seconds.

- :func:`key_value_retrieval`: a set of (key, value) pairs and a query key; the answer is the
  query's value. A model must *look up* the matching pair: the soft dictionary of attention.
- :func:`previous_token_task`: a random sequence; the target at position :math:`t` is the token
  at :math:`t - \text{shift}`. Without positional information no model can solve it.
- :func:`selective_copying`: a few data tokens scattered at random among blanks, to be
  repeated in order at the end (chapter 25). A time-invariant filter cannot tell where they were.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

__all__ = ["RetrievalData", "key_value_retrieval", "previous_token_task", "selective_copying", "IGNORE_INDEX"]

IGNORE_INDEX = -100  # target of positions with no answer (F.cross_entropy's default ignore_index)


@dataclass(frozen=True)
class RetrievalData:
    r"""A batch of key-value retrieval examples (all ``int64`` / ``bool``, first dim N).

    Slicing (``data[idx]``) and :meth:`to` return a new :class:`RetrievalData`.
    """

    keys: torch.Tensor  # (N, P) key ids in [0, n_keys), distinct within a row; pad_id in padding
    values: torch.Tensor  # (N, P) value ids in [0, n_values); pad_id in padding
    padding_mask: torch.Tensor  # (N, P) bool, True = padding slot (holds no pair)
    query: torch.Tensor  # (N,) the key asked about, one of the row's real keys
    target: torch.Tensor  # (N,) the value paired with the query: the label
    match: torch.Tensor  # (N,) slot index of the query's pair (where attention should look)

    def __len__(self) -> int:
        return self.keys.size(0)

    def __getitem__(self, idx: torch.Tensor | slice | int) -> "RetrievalData":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return RetrievalData(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def to(self, device: torch.device | str) -> "RetrievalData":
        r"""A copy with every tensor on ``device``."""
        return RetrievalData(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def key_value_retrieval(
    n: int,
    n_pairs: int = 8,
    n_keys: int = 16,
    n_values: int = 16,
    *,
    min_pairs: int | None = None,
    pad_id: int = 0,
    seed: int = 0,
) -> RetrievalData:
    r"""Generate ``n`` key-value retrieval examples.

    Each example holds :math:`L` pairs :math:`(k_j, v_j)` with distinct keys drawn from
    ``n_keys`` ids and values drawn uniformly from ``n_values`` ids, padded to ``n_pairs`` slots
    (:math:`L` = ``n_pairs``, or uniform in [``min_pairs``, ``n_pairs``]). The query is the key
    of a uniformly chosen real pair and the target its value, so guessing scores
    :math:`1/\text{n\_values}`. Padding slots hold ``pad_id`` as key and value: a model that
    ignores ``padding_mask`` can be fooled by them.

    Chapter 12, *Attention as modules*.

    Args:
        n: number of examples.
        n_pairs: P, slots per example (at most ``n_keys``, since keys are distinct).
        n_keys: size of the key vocabulary.
        n_values: size of the value vocabulary.
        min_pairs: if given, each example has a uniform random number of real pairs in
            [``min_pairs``, ``n_pairs``]; otherwise every slot is real.
        pad_id: the id written into padding slots.
        seed: seeds a private generator (the global random state is untouched).

    Shape:
        - keys, values, padding_mask: :math:`(N, P)`; query, target, match: :math:`(N,)`
    """
    for name, value in (("n", n), ("n_pairs", n_pairs), ("n_keys", n_keys), ("n_values", n_values)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_pairs > n_keys:
        raise ValueError(f"keys are distinct within an example, so n_pairs={n_pairs} cannot exceed n_keys={n_keys}")
    lo = n_pairs if min_pairs is None else min_pairs
    if not 1 <= lo <= n_pairs:
        raise ValueError(f"min_pairs must be in [1, n_pairs={n_pairs}], got {min_pairs!r}")
    g = torch.Generator().manual_seed(seed)
    keys = torch.rand(n, n_keys, generator=g).argsort(dim=-1)[:, :n_pairs]  # (N, P): distinct keys per row
    values = torch.randint(0, n_values, (n, n_pairs), generator=g)  # (N, P)
    lengths = torch.randint(lo, n_pairs + 1, (n,), generator=g)  # (N,) real pairs per row
    padding_mask = torch.arange(n_pairs)[None, :] >= lengths[:, None]  # (N, P)
    keys = keys.masked_fill(padding_mask, pad_id)
    values = values.masked_fill(padding_mask, pad_id)
    match = (torch.rand(n, generator=g) * lengths).long()  # (N,) uniform in [0, length)
    rows = torch.arange(n)
    return RetrievalData(
        keys=keys,
        values=values,
        padding_mask=padding_mask,
        query=keys[rows, match],
        target=values[rows, match],
        match=match,
    )


def previous_token_task(
    n: int, seq_len: int, vocab_size: int, shift: int = 1, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Random sequences whose target at position :math:`t` is the token at :math:`t - \text{shift}`.

    .. math::

        y_t = x_{t - \text{shift}} \quad (t \ge \text{shift}),
        \qquad y_t = \texttt{IGNORE\_INDEX} \quad (t < \text{shift})

    The multiset of tokens says nothing about which one came ``shift`` steps earlier, so a
    model that is blind to order scores about chance; guessing scores :math:`1/V`.

    Chapter 13, *Positional encoding*.

    Args:
        n: number of sequences.
        seq_len: T.
        vocab_size: V; tokens are uniform in [0, V).
        shift: how far back the answer lies (1 ≤ shift < T).
        seed: seeds a private generator.

    Returns:
        ``(x, y)``: int64 tokens and targets (``IGNORE_INDEX`` where there is no answer).

    Shape:
        - x, y: :math:`(N, T)`
    """
    for name, value in (("n", n), ("seq_len", seq_len), ("vocab_size", vocab_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 1 <= shift < seq_len:
        raise ValueError(f"shift must be in [1, seq_len={seq_len}), got {shift}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (n, seq_len), generator=g)  # (N, T)
    y = torch.full_like(x, IGNORE_INDEX)  # (N, T)
    y[:, shift:] = x[:, :-shift]  # y_t = x_{t - shift}
    return x, y


def selective_copying(
    n: int, seq_len: int, n_tokens: int, n_colors: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The selective-copying task of Gu & Dao (2023): remember the data tokens, skip the blanks.

    Each row has ``seq_len`` positions holding ``n_tokens`` data tokens ("colours", ids
    :math:`1 \ldots` ``n_colors``) at random distinct positions and the blank 0 elsewhere,
    followed by ``n_tokens`` copies of the marker ``n_colors + 1``. At the :math:`j`-th marker
    the target is the :math:`j`-th data token; every other target is ``IGNORE_INDEX``. Where the
    tokens sit changes from row to row, so a model must decide from their *content* what to keep.
    The vocabulary has ``n_colors + 2`` ids. Chapter 25, *State-space models and Mamba*.

    Args:
        n: number of rows.
        seq_len: positions before the markers (at least ``n_tokens``).
        n_tokens: data tokens to copy.
        n_colors: distinct data tokens.
        generator: a seeded CPU generator (``None``: torch's global one).

    Returns:
        ``(x, y)``: int64 inputs and targets.

    Shape:
        - x, y: :math:`(N, \text{seq\_len} + \text{n\_tokens})`
    """
    for name, value in (("n", n), ("seq_len", seq_len), ("n_tokens", n_tokens), ("n_colors", n_colors)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_tokens > seq_len:
        raise ValueError(f"n_tokens={n_tokens} data tokens do not fit in seq_len={seq_len} positions")
    colors = torch.randint(1, n_colors + 1, (n, n_tokens), generator=generator)  # (N, k)
    where = torch.rand(n, seq_len, generator=generator).argsort(dim=1)[:, :n_tokens].sort(dim=1).values  # (N, k) positions
    x = torch.zeros(n, seq_len + n_tokens, dtype=torch.long)  # (N, T)
    x.scatter_(1, where, colors)
    x[:, seq_len:] = n_colors + 1  # the markers
    y = torch.full_like(x, IGNORE_INDEX)  # (N, T)
    y[:, seq_len:] = colors  # in order of position
    return x, y
