"""Speaker turns, held-out questions."""

from __future__ import annotations

import pytest

from dlscratch.data.shakespeare_turns import rag_split, speaker_turns, word_tokens

PLAY = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?
Speak, speak.

MENENIUS:
What work's, my countrymen, in hand? where go you
With bats and clubs? The matter? speak, I pray you.
"""


def test_turns() -> None:
    turns = speaker_turns(PLAY)
    assert [t.speaker for t in turns] == ["First Citizen", "All", "First Citizen", "MENENIUS"]
    assert turns[3].lines[1] == "With bats and clubs? The matter? speak, I pray you."
    assert turns[1].text == "All:\nSpeak, speak."
    with pytest.raises(ValueError, match="no speaker turn"):
        speaker_turns("just prose")


def test_word_tokens() -> None:
    assert word_tokens("What work's, my Countrymen?") == ["what", "work's", "my", "countrymen"]


def test_questions_are_unique_lines_of_held_out_turns() -> None:
    turns = speaker_turns(PLAY)
    split = rag_split(turns, n_questions=2, min_words=5, seed=1)
    assert set(split.train_turns) | set(split.question_turns) == set(range(4))
    assert not set(split.train_turns) & set(split.question_turns)
    for i, q, a in zip(split.question_turns, split.questions, split.answers):
        assert q in turns[i].lines and turns[i].speaker == a and len(word_tokens(q)) >= 5
        assert q != "Speak, speak."  # repeated in the text: not a valid question
    with pytest.raises(ValueError, match="only 3 turns"):
        rag_split(turns, n_questions=4, min_words=5)
