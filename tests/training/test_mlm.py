"""BERT's masking (proportions, special tokens, labels), pre-training batches, fine-tuning and features."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from dlscratch.models.bert import IGNORE_INDEX, BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel
from dlscratch.models.bert_inputs import batch_inputs
from dlscratch.training.finetune import length_buckets
from dlscratch.training.mlm import (
    MLMTrainConfig,
    bert_accuracy,
    encoder_features,
    finetune_classifier,
    fit_linear_head,
    mask_tokens,
    mlm_batches,
    pretrain_mlm,
)

V, PAD, CLS, SEP, MASK = 50, 0, 1, 2, 3
SPECIAL = (PAD, CLS, SEP, MASK)
TINY = BertConfig(vocab_size=V, max_position=16, n_layer=1, n_head=2, n_embd=8, ffn_dim=16, dropout=0.0, pad_id=PAD)


def sample(n: int = 400_000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = torch.randint(4, V, (n,))
    ids[::7] = torch.tensor(SPECIAL).repeat(n // 28 + 1)[: len(ids[::7])]  # specials sprinkled in
    inputs, labels = mask_tokens(ids, mask_id=MASK, special_ids=SPECIAL, vocab_size=V, generator=torch.Generator().manual_seed(0))
    return ids, inputs, labels


def test_proportions_on_a_large_sample() -> None:
    ids, inputs, labels = sample()
    ordinary = ~torch.isin(ids, torch.tensor(SPECIAL))
    chosen = labels != IGNORE_INDEX
    n = int(chosen.sum())
    assert abs(n / int(ordinary.sum()) - 0.15) < 0.003  # 15 % of the ordinary tokens
    masked = (inputs == MASK) & chosen
    replaced = (inputs != ids) & (inputs != MASK)
    kept = chosen & (inputs == ids)
    assert abs(int(masked.sum()) / n - 0.8) < 0.006
    # a random draw equal to the original (1 in 46 here) looks "kept": 10 % random, of which 1/46 unchanged
    assert abs(int(replaced.sum()) / n - 0.1 * 45 / 46) < 0.006
    assert abs(int(kept.sum()) / n - (0.1 + 0.1 / 46)) < 0.006
    assert not (replaced & ~chosen).any() and not ((inputs == MASK) & (ids != MASK) & ~chosen).any()  # nothing changes unless chosen


def test_special_tokens_are_never_chosen_nor_drawn() -> None:
    ids, inputs, labels = sample()
    special = torch.isin(ids, torch.tensor(SPECIAL))
    assert (labels[special] == IGNORE_INDEX).all() and torch.equal(inputs[special], ids[special])
    drawn = inputs[(inputs != ids) & (inputs != MASK)]
    assert drawn.numel() > 0 and not torch.isin(drawn, torch.tensor(SPECIAL)).any()


def test_labels_hold_the_original_ids_and_the_generator_decides() -> None:
    ids, inputs, labels = sample(10_000)
    chosen = labels != IGNORE_INDEX
    assert torch.equal(labels[chosen], ids[chosen])
    again = mask_tokens(ids, mask_id=MASK, special_ids=SPECIAL, vocab_size=V, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_mask_probability_outside_the_open_interval_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match=rf"mask probability p must be in \(0, 1\), got p={p}"):
        mask_tokens(torch.arange(4, 10), mask_id=MASK, special_ids=SPECIAL, vocab_size=V, p=p)
    with pytest.raises(ValueError, match="mask probability p must be in"):
        MLMTrainConfig(p=p)


def test_bad_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="mask_frac and random_frac"):
        mask_tokens(torch.arange(4, 10), mask_id=MASK, special_ids=SPECIAL, vocab_size=V, mask_frac=0.95, random_frac=0.1)


def test_mlm_batches_are_cls_window_sep() -> None:
    stream = torch.arange(4, 44)
    cfg = MLMTrainConfig(batch_size=5, seq_len=8, p=0.5)
    inputs, labels = next(mlm_batches(stream, cfg, cls_id=CLS, sep_id=SEP, mask_id=MASK, special_ids=SPECIAL, vocab_size=V))
    assert inputs.shape == labels.shape == (5, 8)
    assert (inputs[:, 0] == CLS).all() and (inputs[:, -1] == SEP).all()
    original = torch.where(labels != IGNORE_INDEX, labels, inputs)[:, 1:-1]
    assert (original.diff(dim=1) == 1).all()  # consecutive tokens of the stream


def test_pretraining_lowers_the_loss_and_fine_tuning_learns_a_rule() -> None:
    torch.manual_seed(0)
    stream = torch.arange(4, 20).repeat(60)  # a periodic stream: every token follows from its neighbours
    mlm = BertForMaskedLM(replace(TINY, n_embd=32, ffn_dim=64))
    losses = pretrain_mlm(mlm, stream, MLMTrainConfig(steps=300, batch_size=16, seq_len=12, lr=3e-3, warmup_steps=10),
                          cls_id=CLS, sep_id=SEP, mask_id=MASK, special_ids=SPECIAL)
    assert sum(losses[-20:]) / 20 < math.log(16) - 0.2  # below the entropy of the stream's 16 tokens: context is used
    seqs = [torch.randint(4, V, (int(n),)).tolist() for n in torch.randint(2, 10, (200,))]
    y = torch.tensor([int(s[0] < 27) for s in seqs])  # the class is the first token's half
    ids, pad = batch_inputs(seqs, cls_id=CLS, sep_id=SEP, pad_id=PAD, max_len=12)
    clf = BertForSequenceClassification(mlm.config).load_encoder(mlm.bert)
    finetune_classifier(clf, ids, pad, y, epochs=15, batch_size=16, lr=1e-2)
    assert bert_accuracy(clf, ids, pad, y) > 0.9


def test_fine_tuning_refuses_a_label_outside_the_set() -> None:
    clf = BertForSequenceClassification(TINY, n_classes=2)
    ids, pad = batch_inputs([[5, 6], [7]], cls_id=CLS, sep_id=SEP, pad_id=PAD, max_len=8)
    with pytest.raises(ValueError, match=r"label 3 is not in the label set \{0, \.\.\., 1\}"):
        finetune_classifier(clf, ids, pad, torch.tensor([0, 3]), epochs=1)
    with pytest.raises(ValueError, match="label 2 is not in the label set"):
        fit_linear_head(torch.randn(2, 4), torch.tensor([2, 0]), 2)


def test_one_pool_length_buckets_cover_every_example_once() -> None:
    lengths = torch.randint(1, 30, (103,))
    batches = length_buckets(lengths, 10, torch.Generator().manual_seed(0), pool=len(lengths))  # as finetune_classifier
    assert sorted(torch.cat(batches).tolist()) == list(range(103))
    spread = sum(int(lengths[b].max() - lengths[b].min()) for b in batches) / len(batches)
    assert spread < 5  # similar lengths inside a batch


def test_features_and_linear_head() -> None:
    enc = BertModel(TINY).eval()
    ids, pad = batch_inputs([[5, 6, 7], [8], [9, 10]], cls_id=CLS, sep_id=SEP, pad_id=PAD, max_len=8)
    feats = encoder_features(enc, ids, pad)
    cls_f, mean_f = feats["cls"], feats["mean"]
    assert list(encoder_features(enc, ids, pad, ("mean",))) == ["mean"]
    h = enc(ids, key_padding_mask=pad)
    torch.testing.assert_close(cls_f, h[:, 0])
    torch.testing.assert_close(mean_f[1], h[1, :3].mean(0))  # [CLS] 8 [SEP]: three positions
    with pytest.raises(ValueError, match=r"poolings must be a non-empty choice of 'cls' and 'mean', got \('max',\)"):
        encoder_features(enc, ids, pad, ("max",))
    x = torch.randn(200, 3) * torch.tensor([1.0, 10.0, 0.1]) + 5
    y = (x[:, 1] > 5).long()
    head = fit_linear_head(x, y, 2)
    assert (head(x).argmax(-1) == y).float().mean() > 0.95  # the standardisation is folded into the raw-feature layer


def test_pretraining_refuses_windows_longer_than_the_positions_and_short_streams() -> None:
    mlm = BertForMaskedLM(TINY)
    with pytest.raises(ValueError, match="seq_len=17 exceeds the model's max_position=16"):
        pretrain_mlm(mlm, torch.arange(4, 40), MLMTrainConfig(steps=1, seq_len=17, warmup_steps=0),
                     cls_id=CLS, sep_id=SEP, mask_id=MASK, special_ids=SPECIAL)
    with pytest.raises(ValueError, match="stream of 5 tokens is shorter than a window of 6"):
        next(mlm_batches(torch.arange(4, 9), MLMTrainConfig(seq_len=8), cls_id=CLS, sep_id=SEP, mask_id=MASK,
                         special_ids=SPECIAL, vocab_size=V))
    with pytest.raises(ValueError, match="warmup_steps=20 must be in"):
        MLMTrainConfig(steps=10, warmup_steps=20)
