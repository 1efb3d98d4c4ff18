r"""Captions for the digit images: text written from the labels, for CLIP and text-to-image.

Chapter 34 (CLIP) trains an image tower and a text tower on (digit, caption) pairs, and chapter
35 conditions a diffusion model on a caption. Both draw captions here. Each label gets several
wordings (``TRAIN_TEMPLATES``); one more wording, ``HELD_OUT_TEMPLATE``, is never used in
training, so a zero-shot test with it measures how much a model depends on the exact prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..tokenizers.char import CharTokenizer
from .padding import pad_sequences

__all__ = [
    "DIGIT_NAMES",
    "TRAIN_TEMPLATES",
    "HELD_OUT_TEMPLATE",
    "caption",
    "random_captions",
    "drop_words",
    "caption_tokenizer",
    "encode_captions",
]

# the words for the ten digits, index = label
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# wordings used in training; {name} is the digit's word, {digit} its numeral
TRAIN_TEMPLATES = (
    "a handwritten {name}",
    "the digit {digit}",
    "a photo of the number {name}",
    "the number {digit}, written by hand",
    "a scan of a {name}",
)
# the wording kept out of every training set (chapter 34's prompt-sensitivity test)
HELD_OUT_TEMPLATE = "an image of the numeral {name}"


def caption(label: int, template: str = TRAIN_TEMPLATES[0]) -> str:
    r"""The caption of digit ``label`` in one wording, e.g. ``caption(7) == "a handwritten seven"``.

    Raises:
        ValueError: if ``label`` is not one of 0..9.
    """
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label <= 9:
        raise ValueError(f"label must be a digit 0..9, got {label!r}")
    return template.format(name=DIGIT_NAMES[label], digit=label)


def drop_words(template: str, keep: torch.Tensor) -> str:
    r"""``template`` without the words where ``keep`` is ``False``; the word holding the digit always stays.

    Words are split on spaces (``"the number {digit}, written by hand"`` has six), so
    ``drop_words("a photo of the number {name}", keep)`` with ``keep = [0, 1, 0, 0, 1, 0]`` is
    ``"photo number {name}"``. Random word deletion (Wei & Zou, 2019) as a caption augmentation:
    chapter 34.

    Raises:
        ValueError: if ``keep`` does not have one entry per word.
    """
    words = template.split(" ")
    if keep.shape != (len(words),):
        raise ValueError(f"need one keep flag per word of {template!r} ({len(words)} words), got shape {tuple(keep.shape)}")
    return " ".join(w for w, k in zip(words, keep.tolist()) if k or "{name}" in w or "{digit}" in w)


def random_captions(
    labels: torch.Tensor | Sequence[int],
    templates: Sequence[str] = TRAIN_TEMPLATES,
    generator: torch.Generator | None = None,
    word_dropout: float = 0.0,
) -> list[str]:
    r"""One caption per label, each in a wording drawn uniformly from ``templates``.

    With ``word_dropout`` :math:`p > 0`, every word of the wording but the digit's is then left
    out with probability :math:`p` (:func:`drop_words`), so the captions vary in length and in the
    position of the digit's word.

    Raises:
        ValueError: if ``templates`` is empty or ``word_dropout`` is not in ``[0, 1)``.
    """
    if len(templates) == 0:
        raise ValueError("need at least one template, got none")
    if not 0.0 <= word_dropout < 1.0:
        raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout!r}")
    labels = [int(y) for y in labels]
    picks = torch.randint(0, len(templates), (len(labels),), generator=generator).tolist()
    if word_dropout == 0.0:
        return [caption(y, templates[k]) for y, k in zip(labels, picks)]
    out = []
    for y, k in zip(labels, picks):
        n_words = templates[k].count(" ") + 1
        keep = torch.rand(n_words, generator=generator) >= word_dropout  # (n_words,)
        out.append(caption(y, drop_words(templates[k], keep)))
    return out


def caption_tokenizer(extra_templates: Sequence[str] = (HELD_OUT_TEMPLATE,)) -> CharTokenizer:
    r"""A character tokenizer over every caption the templates can write, with ``<pad>`` and ``<eot>``.

    The held-out wording's characters are in the vocabulary by default (its *wording* is unseen in
    training; its characters are not), so it can be encoded at test time.
    """
    texts = [caption(y, t) for y in range(10) for t in (*TRAIN_TEMPLATES, *extra_templates)]
    return CharTokenizer.from_text("".join(texts), special_tokens=("<pad>", "<eot>"))


def encode_captions(
    texts: Sequence[str], tokenizer: CharTokenizer, max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Captions as a padded batch: each caption's characters, then ``<eot>``, then ``<pad>``.

    Returns:
        ``ids`` ``(N, L)`` long and ``lengths`` ``(N,)`` long, the ``<eot>`` counted; the last
        real token of row ``n`` (its ``<eot>``) sits at ``lengths[n] - 1`` unless truncated.

    Raises:
        ValueError: naming a caption character that is not in the tokenizer's vocabulary.
    """
    eot, pad = tokenizer.special_tokens["<eot>"], tokenizer.special_tokens["<pad>"]
    seqs = []
    for n, text in enumerate(texts):
        try:
            seqs.append(tokenizer.encode(text) + [eot])
        except ValueError as err:
            raise ValueError(f"caption {n} ({text!r}): {err}") from None
    return pad_sequences(seqs, pad, max_len)
