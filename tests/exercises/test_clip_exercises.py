"""Checkers of the chapter 34 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import core
from dlscratch.exercises.clip import FLOOR_VALUES, INIT_VALUES
from tests.exercises.grading import assert_grades, assert_hint


@pytest.fixture(autouse=True)
def _only_clip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("clip",))


def clip_loss_solution(logits):  # noqa: ANN001, ANN201
    target = torch.arange(logits.shape[0])
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def recall_solution(sim, ql, gl, k, mode="any"):  # noqa: ANN001, ANN201
    top = sim.topk(k, dim=1, largest=mode != "smallest").indices
    if mode == "instance":
        return (top == torch.arange(sim.shape[0])[:, None]).any(1).double().mean().item()
    rel = gl[top] == ql[:, None]
    return (rel.double().mean() if mode == "precision" else rel.any(1).double().mean()).item()


B, K = INIT_VALUES["batch_size"], FLOOR_VALUES["n_classes"]
N_FLOOR = FLOOR_VALUES["batch_size"]

CASES: list[tuple[str, Any, list[Any]]] = [
    ("clip.loss", lambda: clip_loss_solution,
     [lambda: lambda z: F.cross_entropy(z, torch.arange(len(z))), lambda: lambda z: 2 * clip_loss_solution(z),
      lambda: lambda z: z.sum(), lambda: 3]),
    ("clip.recall", lambda: recall_solution,
     [lambda: lambda *a: recall_solution(*a, mode="precision"), lambda: lambda *a: recall_solution(*a, mode="smallest"),
      lambda: lambda *a: 0.5]),
    ("clip.initial_loss", lambda: math.log(B), [lambda: math.log2(B), lambda: 2 * math.log(B), lambda: 0.0]),
    ("clip.floor", lambda: math.log(N_FLOOR / K), [lambda: 0.0, lambda: math.log(N_FLOOR), lambda: math.log(K), lambda: 1.0]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_specific_hints() -> None:
    assert_hint("clip.loss", lambda z: F.cross_entropy(z, torch.arange(len(z))), "one direction only")
    assert_hint("clip.loss", lambda z: F.cross_entropy(z.T, torch.arange(len(z))), "one direction only")
    assert_hint("clip.loss", lambda z: 2 * clip_loss_solution(z), "not added")
    assert_hint("clip.loss", lambda z: len(z) * clip_loss_solution(z), "not a sum")
    assert_hint("clip.loss", lambda z: -clip_loss_solution(z), "sign")
    assert_hint("clip.loss", lambda z: torch.zeros(3), "one-element tensor")
    assert_hint("clip.recall", lambda *a: recall_solution(*a, mode="precision"), "precision@k")
    assert_hint("clip.recall", lambda *a: recall_solution(*a, mode="smallest"), "least")
    assert_hint("clip.recall", lambda *a: recall_solution(*a, mode="instance"), "label equals")
    assert_hint("clip.initial_loss", math.log2(B), "bits")
    assert_hint("clip.initial_loss", 2 * math.log(B), "averaged")
    assert_hint("clip.floor", 0.0, "cannot tell")
    assert_hint("clip.floor", math.log(N_FLOOR), "learned nothing")
    assert_hint("clip.floor", math.log(K), "ln K")


def test_initial_loss_is_what_an_untrained_clip_measures() -> None:
    # the exercise's second half: by Jensen, logsumexp(s) >= ln B + mean(s), so the loss is at least ln B plus how much
    # the average logit exceeds the matching one; an untrained CLIP, whose logits spread, sits above ln B
    from dlscratch.data.captions import caption_tokenizer, encode_captions, random_captions
    from dlscratch.models.clip import CLIP, CLIPConfig

    tok = caption_tokenizer()
    torch.manual_seed(0)
    model = CLIP(CLIPConfig.cpu(tok.vocab_size, tok.special_tokens["<eot>"], context_length=40)).eval()
    labels = torch.arange(B) % 10
    ids, _ = encode_captions(random_captions(labels, generator=torch.Generator().manual_seed(0)), tok)
    with torch.inference_mode():
        out = model(torch.rand(B, 1, 28, 28), ids)
    S = out.logits_per_image.double()
    assert out.loss.item() >= math.log(B) + (S.mean() - S.diagonal().mean()).item() - 1e-5
    assert out.loss.item() > math.log(B) + 0.1
