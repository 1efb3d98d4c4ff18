"""Contrastive training helpers: the loss floor, distinct-caption encoding, zero-shot weights, the probe, recall@k."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.data.captions import HELD_OUT_TEMPLATE, TRAIN_TEMPLATES, caption, caption_tokenizer, encode_captions
from dlscratch.layers.losses import clip_loss
from dlscratch.models.clip import CLIP, CLIPConfig, CLIPTowerConfig
from dlscratch.training.contrastive import (caption_batches, clip_batch_loss, embed_texts, encode_unique, linear_probe,
                                           loss_floor, label_recall_at_k, train_clip, zeroshot_logits, zeroshot_weights)


@pytest.fixture(scope="module")
def tok():  # noqa: ANN201
    return caption_tokenizer()


def tiny_clip(tok, **kw) -> CLIP:  # noqa: ANN001, ANN003
    tower = CLIPTowerConfig(16, 1, 2, 32)
    cfg = CLIPConfig(vocab_size=tok.vocab_size, eot_id=tok.special_tokens["<eot>"], context_length=40, image_size=8, patch_size=4,
                     vision=tower, text=tower, embed_dim=8, **kw)
    return CLIP(cfg)


def test_loss_floor_is_reached_by_class_embeddings_and_not_beaten() -> None:
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    floor = loss_floor(labels)
    assert floor == pytest.approx((2 * math.log(2) + 3 * math.log(3)) / 7)
    one_hot = torch.nn.functional.one_hot(labels, 4).double()  # ideal embeddings: one direction per class
    assert clip_loss(100 * one_hot @ one_hot.T).item() == pytest.approx(floor, abs=1e-12)
    for _ in range(20):  # no image/text embedding pair that depends on the label alone does better
        e = torch.nn.functional.normalize(torch.randn(4, 5, dtype=torch.float64), dim=-1)[labels]
        assert clip_loss(30 * e @ e.T).item() >= floor - 1e-12
    with pytest.raises(ValueError, match="non-empty"):
        loss_floor(torch.zeros(0, dtype=torch.long))


def test_encode_unique_gives_the_same_values_and_gradients(tok) -> None:  # noqa: ANN001
    model = tiny_clip(tok).double()
    texts = [caption(y, t) for y, t in zip([1, 2, 1, 1, 5, 2], TRAIN_TEMPLATES[:1] * 6)]
    ids, _ = encode_captions(texts, tok)
    a = encode_unique(model, ids)
    (a * torch.arange(a.numel(), dtype=a.dtype).view_as(a)).sum().backward()
    ga = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    b = model.encode_text(ids)
    (b * torch.arange(b.numel(), dtype=b.dtype).view_as(b)).sum().backward()
    torch.testing.assert_close(a, b)
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(ga[n], p.grad, msg=lambda m, n=n: f"{n}: {m}")


def test_batches_and_a_short_training_run(tok) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    images, labels = torch.rand(64, 1, 8, 8), torch.arange(64) % 10
    gen = torch.Generator().manual_seed(0)
    x, ids, y = next(caption_batches(images, labels, tok, 16, gen, word_dropout=0.3, max_text_shift=3))
    assert x.shape == (16, 1, 8, 8) and ids.shape[0] == 16 and y.shape == (16,)
    model = tiny_clip(tok)
    before = clip_batch_loss(model, x, ids).item()
    history = train_clip(model, images, labels, tok, steps=6, batch_size=16, lr=1e-3, generator=gen, warmup=2)
    assert len(history.loss) == len(history.scale) == len(history.floor) == 6
    assert math.isfinite(before) and all(math.isfinite(v) for v in history.loss)
    assert all(s <= 100.0 + 1e-4 for s in history.scale)
    with pytest.raises(ValueError, match="batch_size=100"):
        next(caption_batches(images, labels, tok, 100, gen))


def test_zeroshot_weights_average_the_prompt_embeddings(tok) -> None:  # noqa: ANN001
    model = tiny_clip(tok).double()
    single = [zeroshot_weights(model, tok, [t]) for t in TRAIN_TEMPLATES[:3]]
    both = zeroshot_weights(model, tok, TRAIN_TEMPLATES[:3])
    torch.testing.assert_close(both, torch.nn.functional.normalize(sum(single), dim=-1))
    torch.testing.assert_close(single[0], embed_texts(model, [caption(k, TRAIN_TEMPLATES[0]) for k in range(10)], tok))
    u = torch.nn.functional.normalize(torch.randn(7, 8, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(zeroshot_logits(u, both), u @ both.T)
    assert zeroshot_weights(model, tok, [HELD_OUT_TEMPLATE]).shape == (10, 8)
    with pytest.raises(ValueError, match="at least one template"):
        zeroshot_weights(model, tok, [])
    with pytest.raises(ValueError, match="'a sketch of a 0'"):
        zeroshot_weights(model, tok, ["a sketch of a {digit}"])


def test_linear_probe_separates_separable_features() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 6, generator=gen) * 4
    y = torch.arange(300) % 3
    x = centres[y] + torch.randn(300, 6, generator=gen)
    _, logits = linear_probe(x[:200], y[:200], x[200:], n_classes=3)
    assert (logits.argmax(1) == y[200:]).double().mean().item() > 0.95


def brute_recall(sim, ql, gl, k):  # noqa: ANN001, ANN201
    hits = 0
    for q in range(sim.shape[0]):
        order = sorted(range(sim.shape[1]), key=lambda g: -sim[q, g].item())[:k]
        hits += any(gl[g] == ql[q] for g in order)
    return hits / sim.shape[0]


@pytest.mark.parametrize("Q, G", [(1, 1), (7, 12), (20, 5)])
def test_recall_at_k_matches_a_loop(Q, G) -> None:
    gen = torch.Generator().manual_seed(Q * G)
    sim = torch.randn(Q, G, generator=gen, dtype=torch.float64)
    ql, gl = torch.randint(0, 3, (Q,), generator=gen), torch.randint(0, 3, (G,), generator=gen)
    ks = sorted({1, min(3, G), G})
    got = label_recall_at_k(sim, ql, gl, ks)
    for k in ks:
        assert got[k] == pytest.approx(brute_recall(sim, ql, gl, k))
    if Q == G:  # instance retrieval: labels = indices
        assert label_recall_at_k(torch.eye(Q), torch.arange(Q), torch.arange(G), [1])[1] == 1.0


def test_recall_bad_input() -> None:
    with pytest.raises(ValueError, match=r"every k must lie in \[1, 4\]"):
        label_recall_at_k(torch.randn(3, 4), torch.zeros(3), torch.zeros(4), [5])
    with pytest.raises(ValueError, match="need 3 query labels"):
        label_recall_at_k(torch.randn(3, 4), torch.zeros(2), torch.zeros(4), [1])


def test_noisy_characters_touches_only_characters(tok) -> None:  # noqa: ANN001
    from dlscratch.training.contrastive import noisy_characters

    ids, lengths = encode_captions([caption(7), caption(1, TRAIN_TEMPLATES[1])], tok)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(noisy_characters(ids, lengths, tok, 0.0, gen), ids)
    noisy = noisy_characters(ids, lengths, tok, 0.999, gen)
    n_chars = tok.vocab_size - 2
    for row, (a, b, n) in enumerate(zip(ids, noisy, lengths.tolist())):
        assert torch.equal(a[n - 1:], b[n - 1:])  # <eot> and padding untouched
        assert (b[: n - 1] < n_chars).all() and (a[: n - 1] != b[: n - 1]).any()
    rate = (noisy_characters(ids.repeat(200, 1), lengths.repeat(200), tok, 0.2, gen) != ids.repeat(200, 1)).double().sum()
    assert rate / (200 * (lengths - 1).sum()) == pytest.approx(0.2 * (1 - 1 / n_chars), abs=0.02)
