"""The bigram models: counts against pure Python, the layer against torch's one-hot and cross-entropy."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from dlscratch.models import BigramCounts, NeuralBigram, one_hot
from dlscratch.tokenizers import CharVocab
from tests.helpers import assert_same_forward_backward

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "x", "zzz"]
V = 27


def python_counts(words: list[str]) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    for w in words:
        chars = ["."] + list(w) + ["."]
        for a, b in zip(chars, chars[1:]):
            counts[a, b] += 1
    return counts


def test_counts_equal_a_pure_python_count() -> None:
    model = BigramCounts.fit(WORDS)
    itos = CharVocab().itos
    want = python_counts(WORDS)
    assert model.counts.shape == (V, V) and model.counts.dtype == torch.long
    for i, a in enumerate(itos):
        for j, b in enumerate(itos):
            assert model.counts[i, j].item() == want.get((a, b), 0), (a, b)
    assert model.counts.sum().item() == sum(len(w) + 1 for w in WORDS)


def test_custom_vocabulary() -> None:
    vocab = CharVocab("ab")
    model = BigramCounts.fit(["ab", "b"], vocab)
    # rows/cols: . a b ; bigrams .a ab b. .b b.
    assert model.counts.tolist() == [[0, 1, 1], [0, 0, 1], [2, 0, 0]]


@pytest.mark.parametrize("smoothing", [0.0, 0.5, 1.0, 3.0])
def test_smoothed_rows_sum_to_one(smoothing: float) -> None:
    # every character of the alphabet starts a word, so no row is empty even without smoothing
    words = WORDS + list("abcdefghijklmnopqrstuvwxyz")
    P = BigramCounts.fit(words).probs(smoothing, dtype=torch.float64)
    torch.testing.assert_close(P.sum(dim=1), torch.ones(V, dtype=torch.float64))
    assert (P >= 0).all()
    if smoothing > 0:
        assert (P > 0).all()


def test_add_k_formula() -> None:
    model = BigramCounts.fit(WORDS)
    N = model.counts.double()
    P = model.probs(2.0, dtype=torch.float64)
    torch.testing.assert_close(P, (N + 2) / (N.sum(1, keepdim=True) + 2 * V))


def test_nll_of_plus_one_smoothing_by_hand() -> None:
    # corpus "ab", "b": rows . -> {a:1, b:1}, a -> {b:1}, b -> {.:2}; add 1 to each of 27 cells
    model = BigramCounts.fit(["ab", "b"])
    p_a_start = (1 + 1) / (2 + 27)  # p(a | .)
    p_b_a = (1 + 1) / (1 + 27)  # p(b | a)
    p_end_b = (2 + 1) / (2 + 27)  # p(. | b)
    p_b_start = (1 + 1) / (2 + 27)  # p(b | .)
    bigrams = [p_a_start, p_b_a, p_end_b, p_b_start, p_end_b]
    want = -sum(math.log(p) for p in bigrams) / len(bigrams)
    assert model.nll(["ab", "b"], smoothing=1.0) == pytest.approx(want, abs=1e-12)


def test_logits_work_with_the_shared_evaluator() -> None:
    from dlscratch.data import build_examples
    from dlscratch.training import mean_nll

    model = BigramCounts.fit(WORDS)
    X, Y = build_examples(WORDS, block_size=1)
    logits = model.logits(X)
    torch.testing.assert_close(logits.softmax(-1), model.probs(1.0)[X[:, 0]])
    assert mean_nll(model.logits, X, Y) == pytest.approx(model.nll(WORDS), abs=1e-6)


def test_unsmoothed_nll_is_infinite_on_an_unseen_bigram() -> None:
    model = BigramCounts.fit(WORDS + list("abcdefghijklmnopqrstuvwxyz"))
    assert model.nll(["qz"], smoothing=0.0) == math.inf
    assert math.isfinite(model.nll(["qz"], smoothing=1.0))


def test_unknown_character_is_named() -> None:
    with pytest.raises(ValueError, match="é"):
        BigramCounts.fit(["emma", "josé"])
    model = BigramCounts.fit(WORDS)
    with pytest.raises(ValueError, match="Q"):
        model.nll(["anQa"])


@pytest.mark.parametrize("k", [-1.0, -0.5, float("nan")])
def test_negative_smoothing_is_named(k: float) -> None:
    model = BigramCounts.fit(WORDS)
    with pytest.raises(ValueError, match=str(k)):
        model.probs(k)
    with pytest.raises(ValueError, match=str(k)):
        model.nll(WORDS, smoothing=k)


def test_empty_row_without_smoothing_is_an_error() -> None:
    model = BigramCounts.fit(["ab"])  # no word contains 'q'
    with pytest.raises(ValueError, match="'q'"):
        model.probs(0.0)


def test_bad_counts_shape() -> None:
    with pytest.raises(ValueError, match=r"\(27, 27\)"):
        BigramCounts(torch.zeros(26, 26, dtype=torch.long))


# ---- the neural bigram


@pytest.mark.parametrize("n", [1, 7, 64])
def test_one_hot_equals_torch(n: int) -> None:
    idx = torch.randint(0, V, (n,))
    torch.testing.assert_close(one_hot(idx, V), F.one_hot(idx, V).float())


@pytest.mark.parametrize("n", [1, 5, 200])
def test_row_lookup_equals_one_hot_matmul(n: int) -> None:
    # forward and the gradient w.r.t. W: lookup W[ix] versus F.one_hot(ix) @ W, in float64
    idx = torch.randint(0, V, (n,))
    W = torch.randn(V, V, dtype=torch.float64)
    assert_same_forward_backward(
        lambda w: w[idx],
        lambda w: F.one_hot(idx, V).to(w.dtype) @ w,
        [W],
    )
    assert_same_forward_backward(
        lambda w: one_hot(idx, V, w.dtype) @ w,
        lambda w: F.one_hot(idx, V).to(w.dtype) @ w,
        [W],
    )


def test_forward_is_the_lookup() -> None:
    model = (torch.manual_seed(0), NeuralBigram(V))[1]
    idx = torch.randint(0, V, (50, 1))
    torch.testing.assert_close(model(idx), F.one_hot(idx[:, 0], V).float() @ model.weight)


@pytest.mark.parametrize("n", [1, 3, 500])
def test_nll_equals_cross_entropy(n: int) -> None:
    idx = torch.randint(0, V, (n, 1))
    y = torch.randint(0, V, (n,))
    W = torch.randn(V, V, dtype=torch.float64)

    def ours(w: torch.Tensor) -> torch.Tensor:
        model = NeuralBigram(V)
        del model.weight
        model.weight = w  # plain tensor in place of the parameter, so the helper sees its gradient
        return model.nll(idx, y)

    assert_same_forward_backward(ours, lambda w: F.cross_entropy(F.one_hot(idx[:, 0], V).to(w.dtype) @ w, y), [W])


def test_loss_adds_the_penalty() -> None:
    model = (torch.manual_seed(1), NeuralBigram(V, reg=0.3))[1]
    idx, y = torch.randint(0, V, (40, 1)), torch.randint(0, V, (40,))
    want = F.cross_entropy(model(idx), y) + 0.3 * model.weight.pow(2).sum() / V**2
    torch.testing.assert_close(model.loss(idx, y), want)


def test_generator_makes_init_reproducible() -> None:
    a = (torch.manual_seed(5), NeuralBigram(V))[1].weight
    b = (torch.manual_seed(5), NeuralBigram(V))[1].weight
    assert torch.equal(a, b)


def test_log_counts_are_a_stationary_point() -> None:
    # W = log(N + 1) gives softmax rows equal to the +1-smoothed counts: no NLL gradient on smoothed data
    counts = BigramCounts.fit(WORDS)
    model = NeuralBigram(V, reg=0.0)
    with torch.no_grad():
        model.weight.copy_((counts.counts.float() + 1).log())
    torch.testing.assert_close(model.log_probs().exp(), counts.probs(1.0))


@pytest.mark.parametrize(("kwargs", "value"), [({"vocab_size": 0}, "0"), ({"reg": -0.1}, "-0.1")])
def test_bad_constructor_arguments(kwargs: dict, value: str) -> None:
    with pytest.raises(ValueError, match=value):
        NeuralBigram(**kwargs)
