"""BERT: equal to transformers' BertModel / BertForMaskedLM / BertForSequenceClassification, and its bad input."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from dlscratch.models.bert import (
    IGNORE_INDEX,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    check_labels,
)
from dlscratch.models.bert_hf import bert_state_dict_from_hf, hf_bert_config, hf_bert_name

transformers = pytest.importorskip("transformers")

SMALL = BertConfig(vocab_size=37, max_position=16, n_layer=2, n_head=4, n_embd=16, ffn_dim=24, dropout=0.0, pad_id=0)
ODD = replace(SMALL, n_layer=1, n_head=3, n_embd=9, ffn_dim=7, type_vocab_size=3, pad_id=5, eps=1e-5)


def randomise(m: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # norm gains away from 1, biases away from 0: a mix-up would show
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def twins(cfg: BertConfig, kind: str) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    hf_cfg = transformers.BertConfig(**hf_bert_config(cfg, num_labels=3))
    if kind == "model":
        hf, ours, prefix = transformers.BertModel(hf_cfg), BertModel(cfg), ""
    elif kind == "mlm":
        hf, ours, prefix = transformers.BertForMaskedLM(hf_cfg), BertForMaskedLM(cfg), "bert."
    else:
        hf, ours, prefix = transformers.BertForSequenceClassification(hf_cfg), BertForSequenceClassification(cfg, 3), "bert."
    hf = randomise(hf.double()).eval()
    ours = ours.double().eval()
    ours.load_state_dict(bert_state_dict_from_hf(hf.state_dict(), ours.state_dict(), prefix))
    return ours, hf, prefix


def inputs(cfg: BertConfig, B: int, T: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    types = torch.randint(0, cfg.type_vocab_size, (B, T))
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T  # one row without padding
    pad = torch.arange(T)[None, :] >= lengths[:, None]  # (B, T) True at padding
    return idx.masked_fill(pad, cfg.pad_id), types, pad


def run(kind: str, model: torch.nn.Module, idx: torch.Tensor, types: torch.Tensor, pad: torch.Tensor, hf: bool) -> torch.Tensor:
    if not hf:
        out = model(idx, types, pad)
        if kind == "model":
            return torch.cat([out.flatten(1), model.pool(out)], dim=1)  # hidden states and pooled vector
        return out
    o = model(input_ids=idx, token_type_ids=types, attention_mask=(~pad).long())
    if kind == "model":
        return torch.cat([o.last_hidden_state.flatten(1), o.pooler_output], dim=1)
    return o.logits


@pytest.mark.parametrize("kind", ["model", "mlm", "classifier"])
@pytest.mark.parametrize("cfg, T", [(SMALL, 11), (SMALL, 16), (SMALL, 1), (ODD, 6)], ids=["small", "full-length", "T1", "odd"])
def test_equals_hf_output_and_every_gradient(kind: str, cfg: BertConfig, T: int) -> None:
    ours, hf, prefix = twins(cfg, kind)
    idx, types, pad = inputs(cfg, 3, T)
    a, b = run(kind, ours, idx, types, pad, hf=False), run(kind, hf, idx, types, pad, hf=True)
    torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)
    g = torch.randn(a.shape, dtype=a.dtype)
    (a * g).sum().backward()
    (b * g).sum().backward()
    theirs = hf.state_dict(keep_vars=True)
    for name, p in ours.named_parameters():
        q = theirs[hf_bert_name(name, prefix)]
        assert p.grad is not None and q.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, atol=1e-10, rtol=1e-8, msg=lambda m, n=name: f"{n}: {m}")


def test_mlm_loss_on_the_chosen_positions_equals_hf() -> None:
    ours, hf, _ = twins(SMALL, "mlm")
    idx, types, pad = inputs(SMALL, 4, 12)
    labels = torch.where(torch.rand(4, 12) < 0.3, torch.randint(0, SMALL.vocab_size, (4, 12)), torch.full((4, 12), IGNORE_INDEX))
    labels[0, 0] = 3  # at least one chosen position
    theirs = hf(input_ids=idx, token_type_ids=types, attention_mask=(~pad).long(), labels=labels).loss
    torch.testing.assert_close(ours.loss(idx, labels, types, pad), theirs, atol=1e-10, rtol=1e-8)


def test_tied_decoder_and_padding_row() -> None:
    m = BertForMaskedLM(SMALL)
    assert m.decoder.weight is m.bert.embeddings.word.weight
    assert torch.equal(m.bert.embeddings.word.weight[SMALL.pad_id], torch.zeros(SMALL.n_embd))
    enc = BertModel(SMALL)  # the lookup gives the padding row no gradient (the tied decoder would)
    enc(torch.full((2, 5), SMALL.pad_id)).sum().backward()
    assert torch.equal(enc.embeddings.word.weight.grad[SMALL.pad_id], torch.zeros(SMALL.n_embd))


def test_load_encoder_copies_embeddings_and_blocks() -> None:
    mlm = randomise(BertForMaskedLM(SMALL))
    clf = BertForSequenceClassification(SMALL).load_encoder(mlm.bert)
    idx = torch.randint(1, SMALL.vocab_size, (2, 7))
    torch.testing.assert_close(clf.bert(idx), mlm.bert(idx))
    with pytest.raises(ValueError, match="n_embd=16"):
        BertForSequenceClassification(replace(SMALL, n_embd=8, n_head=2)).load_encoder(mlm.bert)


def test_bidirectional_a_later_token_changes_earlier_outputs() -> None:
    m = BertModel(SMALL).eval()
    idx = torch.randint(1, SMALL.vocab_size, (1, 8))
    other = idx.clone()
    other[0, -1] = (idx[0, -1] % (SMALL.vocab_size - 1)) + 1 if idx[0, -1] != SMALL.vocab_size - 1 else 1
    assert not torch.allclose(m(idx)[0, 0], m(other)[0, 0])


def test_too_long_a_sequence_is_refused() -> None:
    m = BertForMaskedLM(SMALL)
    with pytest.raises(ValueError, match=r"T=17 exceeds the model's max_position=16"):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_label_outside_the_label_set_is_refused() -> None:
    clf = BertForSequenceClassification(SMALL, n_classes=2)
    idx = torch.randint(1, SMALL.vocab_size, (3, 5))
    with pytest.raises(ValueError, match=r"label 2 is not in the label set \{0, \.\.\., 1\}"):
        clf.loss(idx, torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="label -1 is not in the label set"):
        check_labels(torch.tensor([-1]), 2)
    with pytest.raises(ValueError, match="integer class ids, got dtype torch.float32"):
        check_labels(torch.tensor([0.0, 1.0]), 2)


@pytest.mark.parametrize("field, value, match", [
    ("n_head", 5, "n_embd=16 must be divisible by n_head=5"),
    ("dropout", 1.0, "dropout must be in"),
    ("pad_id", 37, "pad_id must be a token id in"),
    ("kernels", "cuda", "kernels must be"),
    ("n_layer", 0, "n_layer must be a positive integer, got 0"),
    ("init_std", 0.0, "init_std must be positive, got init_std=0.0"),
])
def test_config_checks(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        replace(SMALL, **{field: value})


def test_fused_kernels_equal_written() -> None:
    written = randomise(BertForMaskedLM(SMALL).double()).eval()
    fused = BertForMaskedLM(replace(SMALL, kernels="fused")).double().eval()
    fused.load_state_dict(written.state_dict())
    idx, types, pad = inputs(SMALL, 3, 9)
    torch.testing.assert_close(fused(idx, types, pad), written(idx, types, pad), atol=1e-10, rtol=1e-8)


def test_hf_names() -> None:
    assert hf_bert_name("bert.blocks.1.mlp.up.weight") == "bert.encoder.layer.1.intermediate.dense.weight"
    assert hf_bert_name("blocks.0.norm1.bias", prefix="") == "encoder.layer.0.attention.output.LayerNorm.bias"
    assert hf_bert_name("decoder.bias") == "cls.predictions.decoder.bias"
    with pytest.raises(ValueError, match="no Hugging Face name for parameter 'bert.nope.weight'"):
        hf_bert_name("bert.nope.weight")


def test_mean_pooling_reads_the_mean_of_the_non_padding_positions() -> None:
    clf = randomise(BertForSequenceClassification(SMALL, 2, pooling="mean")).eval()
    idx, types, pad = inputs(SMALL, 3, 9)
    h = clf.bert(idx, types, pad)
    means = torch.stack([h[b][~pad[b]].mean(0) for b in range(3)])  # (B, C)
    want = clf.classifier(torch.tanh(clf.bert.pooler(means)))
    torch.testing.assert_close(clf(idx, types, pad), want)
    torch.testing.assert_close(clf(idx[:1]), clf.classifier(torch.tanh(clf.bert.pooler(clf.bert(idx[:1]).mean(1)))))
    with pytest.raises(ValueError, match="pooling must be 'cls' or 'mean', got 'max'"):
        BertForSequenceClassification(SMALL, pooling="max")


def test_pool_without_a_pooler_is_refused() -> None:
    enc = BertModel(SMALL, pooler=False)
    with pytest.raises(ValueError, match="built with pooler=False"):
        enc.pool(enc(torch.randint(1, SMALL.vocab_size, (1, 4))))
