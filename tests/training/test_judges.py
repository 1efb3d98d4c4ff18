"""The bag-of-words judge learns word polarities and scores unseen text; AFINN sums valences."""

from __future__ import annotations

import pytest
import torch

from dlscratch.training.judges import BagOfWordsJudge, afinn_scores, words


def test_words_lowercase_and_keep_inner_apostrophes() -> None:
    assert words("It isn't GREAT, it's 'fine'!") == ["it", "isn't", "great", "it's", "fine"]


def test_judge_learns_polarities_and_ignores_unknown_words() -> None:
    texts = ["a great film", "great fun", "a dull film", "dull and long", "great cast", "long and dull"] * 5
    labels = torch.tensor([1, 1, 0, 0, 1, 0] * 5)
    judge = BagOfWordsJudge.fit(texts, labels, min_count=2, steps=200, lr=0.1)
    s = judge.score(["great", "dull", "zzz qqq", "great great great"])
    assert s[0] > 0 > s[1]
    assert s[2].item() == pytest.approx(judge.bias.item())  # no known word: the bias alone
    assert s[3].item() == pytest.approx(s[0].item())  # a set of words: repeating one adds nothing
    with pytest.raises(ValueError, match="one label per text"):
        BagOfWordsJudge.fit(texts, labels[:3])


def test_afinn_scores_sum_the_valences() -> None:
    lexicon = {"good": 3, "bad": -3, "awful": -3}
    assert afinn_scores(["good good bad", "Awful.", "nothing"], lexicon).tolist() == [3.0, -3.0, 0.0]
