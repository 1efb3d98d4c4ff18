r"""Generated tasks for in-context learning (chapter 30): repeated random tokens, linear-regression prompts.

- :func:`repeated_tokens`: a random segment, its exact repeat, then random filler. Once
  the repeat has begun, each next token can be read off the first copy: the job of an
  *induction head* (Olsson et al., 2022). The length of the segment changes from row to row,
  so no fixed offset finds the first copy.
- :func:`regression_prompts`: prompts of points :math:`(x_i, y_i)` with
  :math:`y_i = w^\top x_i + \varepsilon_i` and a fresh :math:`w` in every prompt (Garg et al., 2022).

Every generator takes a seeded ``torch.Generator`` and returns CPU tensors.
"""

from __future__ import annotations

import torch

__all__ = ["repeated_tokens", "regression_prompts"]


def _check_positive(**values: object) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def repeated_tokens(
    n: int, seq_len: int, vocab_size: int, min_len: int | None = None, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A random segment, its exact repeat, then random filler.

    Row :math:`r` draws a length :math:`L_r` uniformly from [``min_len``, ``seq_len // 2``]
    (``min_len`` defaults to ``seq_len // 2``: every row is then one segment and its repeat,
    "the second half repeats the first"): a random segment :math:`s` of :math:`L_r` tokens,
    :math:`s` again, and random filler in the last ``seq_len`` :math:`- 2L_r` positions:

    .. math::

        x_{t} = x_{t - L_r} \quad \text{for } L_r \le t < 2 L_r .

    ``repeat[r, t]`` is ``True`` at the positions of the second copy after its first token: the
    tokens an induction head can predict (the first token of the repeat follows the last token
    of the segment, which says nothing about it). Tokens are uniform in [0, ``vocab_size``), so
    the loss of a model that has not learned to copy is about :math:`\ln V` there.
    Chapter 30, *In-context learning and induction heads*.

    Args:
        n: number of rows.
        seq_len: T, at least 2.
        vocab_size: V.
        min_len: shortest segment, in [1, ``seq_len // 2``] (``None``: ``seq_len // 2``).
        generator: a seeded CPU generator (``None``: torch's global one).

    Returns:
        ``(x, repeat)``: int64 tokens and the bool mask of predictable positions.

    Shape:
        - x, repeat: :math:`(N, T)`
    """
    _check_positive(n=n, seq_len=seq_len, vocab_size=vocab_size)
    half = seq_len // 2
    if half < 1:
        raise ValueError(f"seq_len must be at least 2 (a segment and its repeat), got seq_len={seq_len}")
    min_len = half if min_len is None else min_len
    if isinstance(min_len, bool) or not isinstance(min_len, int) or not 1 <= min_len <= half:
        raise ValueError(f"min_len must be an integer in [1, seq_len // 2 = {half}], got min_len={min_len!r}")
    x = torch.randint(0, vocab_size, (n, seq_len), generator=generator)  # (N, T)
    length = torch.randint(min_len, half + 1, (n,), generator=generator)  # (N,) L_r
    t = torch.arange(seq_len)  # (T,)
    in_copy = (t[None, :] >= length[:, None]) & (t[None, :] < 2 * length[:, None])  # (N, T): L_r <= t < 2 L_r
    source = torch.where(in_copy, t[None, :] - length[:, None], t[None, :])  # (N, T)
    x = torch.gather(x, 1, source)  # x_t = x_{t - L_r} in the repeat
    repeat = in_copy & (t[None, :] > length[:, None])  # (N, T): the repeat after its first token
    return x, repeat


def regression_prompts(
    n: int, n_points: int, dim: int, *, noise_std: float = 0.0, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Prompts of a noisy linear function, a new one in every prompt.

    .. math::

        w \sim \mathcal{N}(0, I_d), \qquad x_i \sim \mathcal{N}(0, I_d), \qquad
        y_i = w^\top x_i + \varepsilon_i, \quad \varepsilon_i \sim \mathcal{N}(0, \sigma^2)

    Predicting :math:`y_i` without context (0) costs :math:`E[y^2] = d + \sigma^2`.
    Chapter 30, *In-context learning and induction heads*.

    Args:
        n: number of prompts.
        n_points: K, points per prompt.
        dim: d.
        noise_std: :math:`\sigma \ge 0`.
        generator: a seeded CPU generator (``None``: torch's global one).

    Returns:
        ``(xs, ys, w)``: float32 inputs, targets and each prompt's weights.

    Shape:
        - xs: :math:`(N, K, d)`; ys: :math:`(N, K)`; w: :math:`(N, d)`
    """
    _check_positive(n=n, n_points=n_points, dim=dim)
    if not noise_std >= 0.0:
        raise ValueError(f"noise_std must be >= 0, got noise_std={noise_std!r}")
    xs = torch.randn(n, n_points, dim, generator=generator)  # (N, K, d)
    w = torch.randn(n, dim, generator=generator)  # (N, d)
    ys = (xs @ w[:, :, None])[..., 0] + noise_std * torch.randn(n, n_points, generator=generator)  # (N, K)
    return xs, ys, w
