r"""TinyShakespeare as a retrieval corpus: speaker turns as passages, quoted lines as questions.

A *turn* is one speech: the speaker's name on its own line (``"First Citizen:"``), then the lines
spoken, up to a blank line. The task of chapter 32, *Retrieval-augmented generation*, is "Who
speaks this line?": a question quotes one line of a turn, the answer is the speaker's name, and
the passage that answers it is the turn. :func:`rag_split` holds out a set of turns: one line of
each becomes a question, and nothing trained in the chapter (the dense retriever, the reader)
sees those turns; the retrieval corpus holds every turn, as a search engine's index would.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["Turn", "RagSplit", "speaker_turns", "rag_split", "word_tokens"]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")


def word_tokens(text: str) -> list[str]:
    r"""Lowercase words of ``text`` (letters, digits, inner apostrophes): ``"Is't a verdict?"`` → ``["is't", "a", "verdict"]``."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Turn:
    r"""One speaker turn of the play text."""

    speaker: str  # the name as written, without the colon: "First Citizen", "KING RICHARD III"
    lines: tuple[str, ...]  # the spoken lines, in order

    @property
    def text(self) -> str:
        r"""The passage as it is indexed and read: ``"SPEAKER:\nline 1\nline 2 ..."``."""
        return f"{self.speaker}:\n" + "\n".join(self.lines)


def speaker_turns(text: str) -> list[Turn]:
    r"""Split a play text into its speaker turns, in order.

    Args:
        text: blocks separated by blank lines, each a ``"NAME:"`` line and the lines spoken.

    Returns:
        One :class:`Turn` per block that has a name line and at least one spoken line.

    Raises:
        ValueError: if the text holds no turn.
    """
    turns = []
    for block in text.split("\n\n"):
        rows = [r for r in block.strip("\n").split("\n") if r.strip()]
        if len(rows) >= 2 and rows[0].endswith(":"):
            turns.append(Turn(rows[0][:-1].strip(), tuple(rows[1:])))
    if not turns:
        raise ValueError("found no speaker turn (a 'NAME:' line followed by spoken lines) in the text")
    return turns


@dataclass(frozen=True)
class RagSplit:
    r"""The held-out questions of "Who speaks this line?" and the turns left for training."""

    train_turns: tuple[int, ...]  # indices of the turns that training may use
    question_turns: tuple[int, ...]  # the turn each question quotes (the relevant passage)
    questions: tuple[str, ...]  # the quoted line
    answers: tuple[str, ...]  # the speaker of that turn


def rag_split(turns: list[Turn], n_questions: int = 1000, min_words: int = 6, seed: int = 0) -> RagSplit:
    r"""Hold out ``n_questions`` turns and quote one line of each as a question.

    A line can be a question when it has at least ``min_words`` words and occurs exactly once in
    the whole text (so exactly one passage is relevant). The held-out turns are drawn at random
    among the turns that have such a line; one of their eligible lines is drawn as the question.
    Every other turn is a training turn.

    Args:
        turns: the corpus, from :func:`speaker_turns`.
        n_questions: how many questions (and held-out turns).
        min_words: the fewest words (:func:`word_tokens`) a quoted line may have.
        seed: seeds the draw.

    Returns:
        A :class:`RagSplit`.

    Raises:
        ValueError: if fewer than ``n_questions`` turns have an eligible line, or an argument is not positive.
    """
    if n_questions < 1 or min_words < 1:
        raise ValueError(f"n_questions and min_words must be at least 1, got {n_questions} and {min_words}")
    counts = Counter(line for t in turns for line in t.lines)
    eligible = {i: [ln for ln in t.lines if counts[ln] == 1 and len(word_tokens(ln)) >= min_words] for i, t in enumerate(turns)}
    candidates = [i for i, lines in eligible.items() if lines]
    if len(candidates) < n_questions:
        raise ValueError(f"only {len(candidates)} turns have a unique line of >= {min_words} words, asked for {n_questions} questions")
    rng = random.Random(seed)
    held = sorted(rng.sample(candidates, n_questions))
    questions = tuple(rng.choice(eligible[i]) for i in held)
    held_set = set(held)
    return RagSplit(
        train_turns=tuple(i for i in range(len(turns)) if i not in held_set),
        question_turns=tuple(held),
        questions=questions,
        answers=tuple(turns[i].speaker for i in held),
    )
