r"""T5's span corruption: drop random spans of the input, ask the decoder for them.

A fraction ``noise_density`` of each sequence's tokens is corrupted, in spans of
``mean_span_length`` tokens on average. In the input every corrupted span becomes one sentinel
token; the target lists the spans, each after its sentinel, and ends with ``<eos>``:

.. code-block:: text

    text:    Thank you for inviting me to your party last week .
    input:   Thank you <X> me to your party <Y> week .
    target:  <X> for inviting <Y> last <Z>

The noise mask follows T5's ``random_spans_noise_mask``: every sequence of length :math:`L` has
exactly :math:`n = \operatorname{round}(dL)` noise tokens in :math:`s = \operatorname{round}(n/\mu)`
spans, so a batch of equal lengths corrupts into equal lengths. :func:`iid_noise_mask` is the
i.i.d. alternative (each token on its own), for comparison. Everything is batched: no loop over
tokens. Introduced in chapter 28, *T5 and the encoder-decoder family*.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["SpanCounts", "span_counts", "random_spans_noise_mask", "iid_noise_mask", "sentinel_spans", "span_corruption",
           "expected_iid_target_length"]


class SpanCounts(NamedTuple):
    r"""The sizes span corruption gives a sequence of ``length`` tokens."""

    noise: int  # n, corrupted tokens
    spans: int  # s, corrupted spans (and sentinels in the input)
    input_length: int  # L - n + s + 1 (<eos>)
    target_length: int  # n + s + 1 (<eos>)


def _check_noise(noise_density: float, mean_span_length: float | None = None) -> None:
    if isinstance(noise_density, bool) or not isinstance(noise_density, (int, float)) or not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be a number in (0, 1), got {noise_density!r}")
    if mean_span_length is not None and (isinstance(mean_span_length, bool) or not isinstance(mean_span_length, (int, float))
                                         or not mean_span_length >= 1.0):
        raise ValueError(f"mean_span_length must be a number >= 1 (a span has at least one token), got {mean_span_length!r}")


def span_counts(length: int, noise_density: float = 0.15, mean_span_length: float = 3.0) -> SpanCounts:
    r"""T5's counts: :math:`n = \operatorname{round}(dL)` clipped to :math:`[1, L - 1]`, :math:`s = \max(1, \operatorname{round}(n / \mu))`.

    .. math::

        |\text{input}| = L - n + s + 1, \qquad |\text{target}| = n + s + 1

    Raises:
        ValueError: unless ``length >= 2``, ``0 < noise_density < 1`` and ``mean_span_length >= 1``.
    """
    _check_noise(noise_density, mean_span_length)
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an integer >= 2 (a kept and a noise token), got {length!r}")
    noise = min(max(round(length * noise_density), 1), length - 1)
    spans = max(round(noise / mean_span_length), 1)
    return SpanCounts(noise, spans, length - noise + spans + 1, noise + spans + 1)


def _random_segmentation(B: int, items: int, segments: int, generator: torch.Generator | None) -> torch.Tensor:
    r"""Split ``items`` into ``segments`` positive lengths, uniformly over the ways, for each of ``B`` rows: :math:`(B, s)`."""
    cuts = torch.rand(B, items - 1, generator=generator).argsort(dim=1)[:, : segments - 1]  # (B, s - 1) distinct cut points
    is_cut = torch.zeros(B, items, dtype=torch.long).scatter_(1, cuts + 1, 1)  # (B, items): a segment starts here
    segment = is_cut.cumsum(1)  # (B, items): segment id of every item
    return torch.zeros(B, segments, dtype=torch.long).scatter_add_(1, segment, torch.ones_like(segment))  # (B, s)


def random_spans_noise_mask(B: int, length: int, noise_density: float = 0.15, mean_span_length: float = 3.0,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    r"""T5's noise mask: :math:`s` noise spans and :math:`s` kept spans, alternating, kept first.

    The :math:`n` noise tokens and the :math:`L - n` kept ones are each cut into :math:`s`
    positive lengths at random (:func:`span_counts`); the spans then alternate. Drawn on the CPU
    from ``generator``.

    Shape:
        - output: :math:`(B, L)` bool, ``True`` = noise
    """
    n, s, _, _ = span_counts(length, noise_density, mean_span_length)
    noise = _random_segmentation(B, n, s, generator)  # (B, s)
    kept = _random_segmentation(B, length - n, s, generator)  # (B, s)
    ends = torch.stack([kept, noise], dim=2).view(B, 2 * s).cumsum(1)  # (B, 2s): where each span ends
    seg = torch.searchsorted(ends, torch.arange(length).expand(B, length).contiguous(), right=True)  # (B, L)
    return seg % 2 == 1  # odd segments are noise


def iid_noise_mask(B: int, length: int, noise_density: float = 0.15, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Each token is noise with probability ``noise_density``, independently (BERT-style corruption).

    Shape:
        - output: :math:`(B, L)` bool, ``True`` = noise
    """
    _check_noise(noise_density)
    return torch.rand(B, length, generator=generator) < noise_density


def sentinel_spans(tokens: torch.Tensor, noise: torch.Tensor, sentinels: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    r"""Replace every noise span of ``tokens`` by its sentinel (the :math:`k`-th span by ``sentinels[k]``), drop the rest of the span, append ``<eos>``.

    Rows of different final lengths are right-padded with ``pad_id``. The input of span
    corruption is ``sentinel_spans(tokens, noise, ...)``; its target is
    ``sentinel_spans(tokens, ~noise, ...)``. When a row starts with a kept token (T5's masks
    always do), the input's :math:`k`-th sentinel and the target's :math:`k`-th one mark the
    same span.

    Raises:
        ValueError: if a row has more spans than there are sentinels.

    Shape:
        - tokens, noise: :math:`(B, L)`; sentinels: :math:`(K,)`; output: :math:`(B, L')`
    """
    B, L = tokens.shape
    first = noise & ~torch.nn.functional.pad(noise[:, :-1], (1, 0))  # (B, L): the first token of each span
    k = first.cumsum(1) - 1  # (B, L): index of the span a token belongs to
    most = int(first.sum(1).max()) if B else 0  # spans in the busiest row
    if most > len(sentinels):
        raise ValueError(f"a row has {most} noise spans but there are only {len(sentinels)} sentinels; "
                         "add sentinel tokens to the vocabulary or corrupt fewer spans")
    out = torch.where(first, sentinels.to(tokens.device)[k.clamp(min=0)], tokens)  # (B, L)
    keep = ~noise | first  # (B, L): kept tokens and one sentinel per span
    order = (~keep).long().argsort(dim=1, stable=True)  # (B, L): kept positions first, in order
    lengths = keep.sum(1)  # (B,)
    width = (int(lengths.max()) if B else 0) + 1
    packed = torch.nn.functional.pad(out.gather(1, order), (0, 1))[:, :width]  # (B, L'): room for <eos>
    pos = torch.arange(width, device=tokens.device)  # (L',)
    packed = packed.masked_fill(pos >= lengths[:, None], pad_id)  # (B, L')
    return packed.scatter(1, lengths[:, None], eos_id)  # <eos> right after the last kept token


def span_corruption(tokens: torch.Tensor, sentinels: torch.Tensor, *, eos_id: int, pad_id: int, noise_density: float = 0.15,
                    mean_span_length: float = 3.0, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""T5's pre-training pair for every row of ``tokens``: (input with sentinels, target of the spans).

    Raises:
        ValueError: for a density outside :math:`(0, 1)`, a mean span below 1, or more spans than sentinels.

    Shape:
        - tokens: :math:`(B, L)`; output: :math:`(B, L - n + s + 1)` and :math:`(B, n + s + 1)` (:func:`span_counts`)
    """
    B, L = tokens.shape
    counts = span_counts(L, noise_density, mean_span_length)
    if counts.spans > len(sentinels):
        raise ValueError(f"{L} tokens at noise_density={noise_density} and mean_span_length={mean_span_length} give "
                         f"{counts.spans} spans, which need {counts.spans} sentinels; there are {len(sentinels)}")
    noise = random_spans_noise_mask(B, L, noise_density, mean_span_length, generator).to(tokens.device)  # (B, L)
    return (sentinel_spans(tokens, noise, sentinels, eos_id, pad_id),
            sentinel_spans(tokens, ~noise, sentinels, eos_id, pad_id))


def expected_iid_target_length(length: int, noise_density: float) -> float:
    r"""Expected target length of i.i.d. corruption with sentinels, :math:`Ld + \mathbb{E}[\text{sentinels}] + 1`.

    The target holds the :math:`Ld` noise tokens on average, one sentinel per run of kept tokens
    (a run starts at the first token if it is kept, or at a kept token after a noise one) and
    ``<eos>``:

    .. math::

        \mathbb{E}|\text{target}| = Ld + (1 - d) + (L - 1)\,d\,(1 - d) + 1
    """
    _check_noise(noise_density)
    d = noise_density
    return length * d + (1 - d) + (length - 1) * d * (1 - d) + 1

