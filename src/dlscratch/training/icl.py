r"""Measuring in-context learning (chapter 30): token losses, head scores, the ICL score, regression baselines.

- :func:`token_losses` and :func:`masked_mean`: the loss of every next-token prediction, averaged
  over chosen positions (the repeated half of :func:`~dlscratch.data.icl_tasks.repeated_tokens`).
- :func:`previous_token_score` and :func:`prefix_matching_score`: how much of a head's attention
  goes to the previous token, and to the token after an earlier occurrence of the current one
  (the signature of an induction head, Olsson et al., 2022).
- :func:`icl_score`: the loss late in the context minus the loss early in it.
- :func:`least_squares_predictions` and :func:`averaging_predictions`: the baselines of in-context
  linear regression (Garg et al., 2022); :func:`squared_errors` scores any of them.
- :func:`few_shot_prompt`: a zero-, one- or few-shot prompt in the format of GPT-3 (Brown et al., 2020).

Symbols: B batch (prompts), nh heads, T time, K points, d dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "token_losses",
    "masked_mean",
    "previous_token_score",
    "prefix_matching_score",
    "icl_score",
    "least_squares_predictions",
    "averaging_predictions",
    "squared_errors",
    "few_shot_prompt",
]


def token_losses(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""The cross-entropy of each next-token prediction, :math:`\ell_t = -\log p(x_{t} \mid x_{<t})`.

    Shape:
        - logits: :math:`(B, T - 1, V)`, the model's output on ``x[:, :-1]``; x: :math:`(B, T)`
        - output: :math:`(B, T)`, ``nan`` at :math:`t = 0` (nothing predicts the first token)
    """
    if logits.dim() != 3 or x.dim() != 2 or logits.shape[:2] != (x.size(0), x.size(1) - 1):
        raise ValueError(f"expected logits (B, T - 1, V) for tokens (B, T), got {tuple(logits.shape)} and {tuple(x.shape)}")
    loss = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")  # (B, T - 1)
    return torch.cat([loss.new_full((x.size(0), 1), float("nan")), loss], dim=1)  # (B, T)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    r"""The mean of ``values`` where ``mask`` is ``True`` (e.g. the losses on the repeated half)."""
    if values.shape != mask.shape or mask.dtype != torch.bool:
        raise ValueError(f"expected values and a bool mask of the same shape, got {tuple(values.shape)} and {tuple(mask.shape)} ({mask.dtype})")
    if not mask.any():
        raise ValueError("the mask selects no position")
    return values[mask].mean().item()


def _check_weights(weights: torch.Tensor, tokens: torch.Tensor | None = None) -> None:
    if weights.dim() != 4 or weights.size(-1) != weights.size(-2):
        raise ValueError(f"weights must be (B, nh, T, T) self-attention weights, got shape {tuple(weights.shape)}")
    if tokens is not None and (tokens.dim() != 2 or tokens.shape != (weights.size(0), weights.size(-1))):
        raise ValueError(f"tokens must be (B, T) = {(weights.size(0), weights.size(-1))}, got shape {tuple(tokens.shape)}")


def previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    r"""Each head's mean attention on the previous token, :math:`\frac{1}{B(T-1)} \sum_{b, t \ge 1} \alpha_{t, t-1}`.

    Shape:
        - weights: :math:`(B, nh, T, T)`; output: :math:`(nh,)`
    """
    _check_weights(weights)
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 2))  # (B, nh, T - 1) -> (nh,)


def prefix_matching_score(weights: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    r"""Each head's mean attention on the tokens that followed earlier copies of the current token.

    For the query at :math:`t`, the *prefix matches* are the keys :math:`j \le t` whose previous
    token is the current one, :math:`x_{j-1} = x_t`. The score is the attention mass on them,
    averaged over the queries that have at least one:

    .. math::

        \text{score}_h = \operatorname{mean}_{(b, t):\, M_{bt} \neq \emptyset}\; \sum_{j \in M_{bt}} \alpha^{(h)}_{b, t, j},
        \qquad M_{bt} = \{\, 1 \le j \le t : x_{b, j-1} = x_{b, t} \,\}

    An induction head scores near 1 on repeated random tokens; other heads near the share of
    keys that match by chance (Olsson et al., 2022).

    Shape:
        - weights: :math:`(B, nh, T, T)`; tokens: :math:`(B, T)`; output: :math:`(nh,)`
    """
    _check_weights(weights, tokens)
    T = tokens.size(1)
    prev = torch.cat([tokens.new_full((tokens.size(0), 1), -1), tokens[:, :-1]], dim=1)  # (B, T): x_{j-1}, -1 at j = 0
    causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()  # (T, T): j <= t
    match = (tokens[:, :, None] == prev[:, None, :]) & causal  # (B, T, T): x_{j-1} == x_t
    has = match.any(dim=-1)  # (B, T)
    if not has.any():
        raise ValueError("no query has a prefix match: the tokens never repeat")
    mass = (weights * match[:, None].to(weights.dtype)).sum(-1)  # (B, nh, T)
    return mass.permute(1, 0, 2)[:, has].mean(dim=-1)  # (nh, B, T) -> (nh, matched queries) -> (nh,)


def icl_score(losses: torch.Tensor, early: int, late: int) -> float:
    r"""The in-context-learning score: the mean loss at token ``late`` minus that at token ``early``.

    .. math::

        \text{ICL score} = \operatorname{mean}_b\, \ell_{b,\,\text{late}} - \operatorname{mean}_b\, \ell_{b,\,\text{early}}

    Negative when the context helps. Olsson et al. (2022) use the 500th and the 50th token.

    Shape:
        - losses: :math:`(B, T)`, e.g. from :func:`token_losses`
    """
    if losses.dim() != 2:
        raise ValueError(f"losses must be (B, T), got shape {tuple(losses.shape)}")
    T = losses.size(1)
    if not 1 <= early < late < T:
        raise ValueError(f"expected 1 <= early < late < T = {T}, got early={early}, late={late}")
    return (losses[:, late].mean() - losses[:, early].mean()).item()


def least_squares_predictions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    r"""Predict each :math:`y_i` by least squares on the pairs before it (minimum norm when underdetermined).

    .. math::

        \hat{y}_i = x_i^\top \hat{w}_i, \qquad \hat{w}_i = X_{<i}^{+}\, y_{<i}

    with :math:`X_{<i} \in \mathbb{R}^{(i-1) \times d}` the earlier inputs and :math:`^{+}` the
    pseudo-inverse; :math:`\hat{y}_1 = 0`. Without noise and with :math:`i - 1 \ge d` points it is exact.

    Shape:
        - xs: :math:`(B, K, d)`; ys: :math:`(B, K)`; output: :math:`(B, K)`
    """
    _check_points(xs, ys)
    preds = torch.zeros_like(ys)  # (B, K)
    for i in range(1, xs.size(1)):  # one solve per prompt length, batched over prompts
        w = torch.linalg.pinv(xs[:, :i]) @ ys[:, :i, None]  # (B, d, i) @ (B, i, 1) -> (B, d, 1)
        preds[:, i] = (xs[:, i, None, :] @ w)[:, 0, 0]  # (B, 1, d) @ (B, d, 1)
    return preds


def averaging_predictions(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    r"""Predict each :math:`y_i` with the average of :math:`y_j x_j` over the pairs before it.

    .. math::

        \hat{y}_i = x_i^\top \hat{w}_i, \qquad \hat{w}_i = \frac{1}{i - 1} \sum_{j < i} y_j x_j

    Since :math:`E[x x^\top] = I`, :math:`E[y x] = w`: an unbiased but noisy estimate (one step of
    gradient descent from 0), the "averaging" baseline of Garg et al. (2022). :math:`\hat{y}_1 = 0`.

    Shape:
        - xs: :math:`(B, K, d)`; ys: :math:`(B, K)`; output: :math:`(B, K)`
    """
    _check_points(xs, ys)
    B, K, d = xs.shape
    sums = torch.cumsum(ys[..., None] * xs, dim=1)  # (B, K, d): sum over j <= i of y_j x_j
    counts = torch.arange(1, K + 1, device=xs.device, dtype=xs.dtype)[None, :, None]  # (1, K, 1)
    w = torch.cat([xs.new_zeros(B, 1, d), (sums / counts)[:, :-1]], dim=1)  # (B, K, d): from j < i
    return (w * xs).sum(-1)  # (B, K)


def squared_errors(preds: torch.Tensor, ys: torch.Tensor, dim: int) -> torch.Tensor:
    r"""The mean squared error at each prompt position divided by :math:`d` (Garg et al.'s normalisation).

    Shape:
        - preds, ys: :math:`(B, K)`; output: :math:`(K,)`
    """
    if preds.shape != ys.shape:
        raise ValueError(f"preds and ys must have the same shape, got {tuple(preds.shape)} and {tuple(ys.shape)}")
    return ((preds - ys) ** 2).mean(dim=0) / dim


def _check_points(xs: torch.Tensor, ys: torch.Tensor) -> None:
    if xs.dim() != 3 or ys.shape != xs.shape[:2]:
        raise ValueError(f"expected xs (B, K, d) and ys (B, K), got {tuple(xs.shape)} and {tuple(ys.shape)}")


def few_shot_prompt(
    demonstrations: Sequence[tuple[str, str]], query: str, *, instruction: str | None = None,
    input_prefix: str = "Input: ", output_prefix: str = "Output: ",
) -> str:
    r"""A GPT-3-style prompt: an optional instruction, the demonstrations, then the query left open.

    Zero-shot has no demonstrations (an instruction tells the task), one-shot one, few-shot
    several. Each demonstration is ``input_prefix + x``, a newline, ``output_prefix + y``;
    blocks are separated by a blank line; the prompt ends with ``output_prefix`` stripped of
    trailing spaces, so the model's next tokens are the answer (Brown et al., 2020).

    Raises:
        ValueError: with neither an instruction nor a demonstration, nothing says what the task is.
    """
    if not demonstrations and not instruction:
        raise ValueError("a prompt needs an instruction or at least one demonstration, got neither")
    blocks = [instruction] if instruction else []
    blocks += [f"{input_prefix}{x}\n{output_prefix}{y}" for x, y in demonstrations]
    blocks.append(f"{input_prefix}{query}\n{output_prefix.rstrip()}")
    return "\n\n".join(blocks)
