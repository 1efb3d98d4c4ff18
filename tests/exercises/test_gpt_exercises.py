"""Checkers of the chapter 17 exercises: a correct answer passes, wrong ones fail with a specific hint, ``...`` is open."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import core, grade
from dlscratch.exercises.gpt import FILTER_LOGITS, FILTER_TOP_K, FILTER_TOP_P, INIT_CONFIG, INIT_SHAPE, INIT_STD, PARAMS_CONFIG
from dlscratch.layers.attention.kv_cache import KVCache
from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.models.sampling import top_k_filter, top_p_filter
from tests.exercises.grading import assert_grades


@pytest.fixture(autouse=True)
def _only_gpt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("gpt",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- gpt.cache_vs_weights: the parameters of the model over the cache of one position
def cache_vs_weights_solution() -> float:
    c = PARAMS_CONFIG
    with torch.device("meta"):  # no memory, no initialisation cost
        n = GPT(GPTConfig(**c)).num_parameters(non_embedding=False)
    cache = KVCache(1, c["n_head"], 1, c["n_embd"] // c["n_head"], device="meta", dtype=torch.float32)
    return n / (c["n_layer"] * cache.nbytes() / 4)  # numbers per position: K and V of every layer


def test_cache_vs_weights() -> None:
    T = cache_vs_weights_solution()
    assert math.isclose(T, 10_745_088 / (2 * 6 * 384))
    assert_grades("gpt.cache_vs_weights", lambda: T, [lambda: 2 * T, lambda: "2332"])
    assert grade("gpt.cache_vs_weights", math.ceil(T)).correct
    _wrong("gpt.cache_vs_weights", 2 * T, "keys *and* values")
    _wrong("gpt.cache_vs_weights", (10_745_088 - 256 * 384) / (2 * 6 * 384), "position table")
    _wrong("gpt.cache_vs_weights", 6 * T, "n_head x head size")
    _wrong("gpt.cache_vs_weights", T / 4, "bytes per number cancel")
    _wrong("gpt.cache_vs_weights", 1000, "eq. (params)")


# ---- gpt.filter_probs
def filter_probs_solution() -> list[float]:
    z = torch.tensor(FILTER_LOGITS, dtype=torch.float64)[None]
    return torch.softmax(top_p_filter(top_k_filter(z, FILTER_TOP_K), FILTER_TOP_P), -1)[0].tolist()


def test_filter_probs() -> None:
    assert [p > 0 for p in filter_probs_solution()] == [True, False, False, True, False, False]
    plain = torch.softmax(torch.tensor(FILTER_LOGITS), -1).tolist()
    top_k_only = torch.softmax(top_k_filter(torch.tensor(FILTER_LOGITS)[None], FILTER_TOP_K), -1)[0].tolist()
    assert_grades("gpt.filter_probs", filter_probs_solution, [lambda: plain, lambda: [0.0] * 6, lambda: [1.0] * 3, lambda: top_k_only])
    wrong_order = torch.softmax(top_k_filter(top_p_filter(torch.tensor(FILTER_LOGITS)[None], FILTER_TOP_P), FILTER_TOP_K), -1)
    _wrong("gpt.filter_probs", wrong_order[0].tolist(), "top-p applied first")
    _wrong("gpt.filter_probs", plain, "plain softmax")
    _wrong("gpt.filter_probs", [0.5] * 6, "sum to")


# ---- gpt.sequence_nll
def sequence_nll(model, ids):
    logits, _ = model(ids[:, :-1])  # (B, N - 1, V): position t predicts token t + 1
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(-1, ids[:, 1:, None])[..., 0].sum(-1)  # (B,)


def test_sequence_nll() -> None:
    def unshifted(model, ids):
        return F.cross_entropy(model(ids)[0].transpose(1, 2), ids, reduction="none").sum(1)

    wrongs = {
        "mean per token": lambda m, ids: sequence_nll(m, ids) / (ids.size(1) - 1),
        "not in bits": lambda m, ids: sequence_nll(m, ids) / math.log(2),
        "predict token t + 1": unshifted,
        "shape (B,)": lambda m, ids: sequence_nll(m, ids).sum(),
        "wrong totals": lambda m, ids: sequence_nll(m, ids) + 1,
    }
    assert_grades("gpt.sequence_nll", lambda: sequence_nll, [(lambda f=f: f) for f in wrongs.values()] + [lambda: 3])
    for hint, fn in wrongs.items():
        _wrong("gpt.sequence_nll", fn, hint)
    _wrong("gpt.sequence_nll", lambda m, ids: [1.0], "tensor of shape")


# ---- gpt.init_scale_loss: the reader's measurement, any seed
def measured_init_loss(seed: int) -> float:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**INIT_CONFIG)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                torch.nn.init.normal_(p, std=INIT_STD)
        x = torch.randint(0, INIT_CONFIG["vocab_size"], INIT_SHAPE)
        return model(x[:, :-1], x[:, 1:])[1].item()


def test_init_scale_loss() -> None:
    assert grade("gpt.init_scale_loss", measured_init_loss(3)).correct
    assert_grades("gpt.init_scale_loss", lambda: measured_init_loss(4), [lambda: math.log(65), lambda: "6"])
    _wrong("gpt.init_scale_loss", math.log(65), "confidently wrong")
    _wrong("gpt.init_scale_loss", 26.0, "std 1")
    _wrong("gpt.init_scale_loss", 10.0, "measure it")
